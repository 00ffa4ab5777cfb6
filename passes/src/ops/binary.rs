//! Numpy-broadcasting binary and variadic ops (arithmetic, bitwise, comparisons, Where):
//! shape rules with constant folding, gradient rules that sum each input's gradient back
//! to its own shape, and the variadic ops' cost.
//! Spec: https://onnx.ai/onnx/operators/ (e.g. https://onnx.ai/onnx/operators/onnx__Add.html,
//! https://onnx.ai/onnx/operators/onnx__Where.html; broadcasting:
//! https://onnx.ai/onnx/repo-docs/Broadcasting.html), opsets 13–24.
//!
//! Gradients saved: Add/Sub, Sum/Mean nothing; Mul the other input; Div the divisor (and the
//! output for the divisor's gradient); Pow base, exponent (and output for the exponent's
//! gradient); Where the condition; Max/Min both inputs.

use super::cost::numel;
use super::ctx::{broadcast, OpCtx, OutInfo, RuleResult};
use super::fold;
use crate::autodiff::{dy0, GradCtx, GradResult, Grads};
use crate::error::RuleError;
use crate::ir::{Attribute, DType, Graph, Node, Tensor, ValueId};

// Shape and type rules.

/// Numpy broadcast of all present inputs; type of input 0.
pub fn broadcast_shape(c: &OpCtx) -> Result<Option<crate::ir::Shape>, RuleError> {
    let mut shapes = Vec::new();
    for i in 0..c.num_inputs() {
        if !c.has_input(i) {
            continue;
        }
        match c.shape_opt(i) {
            Some(s) => shapes.push(s),
            None => return Ok(None),
        }
    }
    Ok(Some(broadcast(&shapes)?))
}

fn idiv(a: i64, b: i64) -> Option<i64> {
    (b != 0).then(|| a.div_euclid(b) - i64::from(a.rem_euclid(b) != 0 && b < 0))
}

/// Add, Sub, Mul, Div, Pow, Mod, Max, Min, Sum, Mean, BitShift, PRelu.
pub fn binary(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let shape = broadcast_shape(c)?;
    if c.num_inputs() == 2 {
        if let (Some(a), Some(b)) = (c.constant(0), c.constant(1)) {
            let folded = match c.node.op_type.as_str() {
                "Add" => fold::binary(a, b, dt, |x, y| x + y, Some(&|x, y| x.checked_add(y))),
                "Sub" => fold::binary(a, b, dt, |x, y| x - y, Some(&|x, y| x.checked_sub(y))),
                "Mul" => fold::binary(a, b, dt, |x, y| x * y, Some(&|x, y| x.checked_mul(y))),
                "Div" => fold::binary(
                    a,
                    b,
                    dt,
                    |x, y| x / y,
                    Some(&|x, y| (y != 0).then(|| x.wrapping_div(y))),
                ),
                "Mod" if c.attr_int("fmod", 0) == 0 => fold::binary(
                    a,
                    b,
                    dt,
                    |x, y| x - (x / y).floor() * y,
                    Some(&|x, y| idiv(x, y).map(|q| x - q * y)),
                ),
                "Pow" => fold::binary(a, b, dt, f64::powf, None),
                "Max" => fold::binary(a, b, dt, f64::max, Some(&|x, y| Some(x.max(y)))),
                "Min" => fold::binary(a, b, dt, f64::min, Some(&|x, y| Some(x.min(y)))),
                _ => None,
            };
            if let Some(t) = folded {
                return Ok(vec![OutInfo::constant(t)]);
            }
        }
    }
    Ok(vec![OutInfo {
        dtype: dt,
        shape,
        constant: None,
    }])
}

/// Equal, Less, Greater, LessOrEqual, GreaterOrEqual, And, Or, Xor: bool output.
pub fn compare(c: &OpCtx) -> RuleResult {
    c.dtype(0)?;
    let shape = broadcast_shape(c)?;
    if let (Some(a), Some(b)) = (c.constant(0), c.constant(1)) {
        let f: Option<fn(f64, f64) -> bool> = match c.node.op_type.as_str() {
            "Equal" => Some(|x, y| x == y),
            "Less" => Some(|x, y| x < y),
            "Greater" => Some(|x, y| x > y),
            "LessOrEqual" => Some(|x, y| x <= y),
            "GreaterOrEqual" => Some(|x, y| x >= y),
            "And" => Some(|x, y| x != 0.0 && y != 0.0),
            "Or" => Some(|x, y| x != 0.0 || y != 0.0),
            "Xor" => Some(|x, y| (x != 0.0) != (y != 0.0)),
            _ => None,
        };
        if let Some(t) = f.and_then(|f| {
            fold::binary(a, b, DType::Bool, |x, y| f64::from(u8::from(f(x, y))), None)
        }) {
            return Ok(vec![OutInfo::constant(t)]);
        }
    }
    Ok(vec![OutInfo {
        dtype: DType::Bool,
        shape,
        constant: None,
    }])
}

/// Where(cond, x, y): broadcast of the three, type of x.
pub fn where_(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(1)?;
    let shape = broadcast_shape(c)?;
    // Inputs and output are checked small before any value is read or index built.
    let consts = (c.constant(0), c.constant(1), c.constant(2));
    let dims = shape.as_ref().and_then(|s| crate::ir::static_dims(s));
    if let (Some(cond), Some(x), Some(y), Some(dims)) = (consts.0, consts.1, consts.2, dims) {
        if [cond, x, y].iter().all(|t| fold::small(t)) && fold::small_dims(&dims) {
            if let (Some(cv), Some(xv), Some(yv), Some(ic), Some(ix), Some(iy)) = (
                cond.as_i64(),
                x.as_f64(),
                y.as_f64(),
                fold::broadcast_index(&dims, &cond.dims),
                fold::broadcast_index(&dims, &x.dims),
                fold::broadcast_index(&dims, &y.dims),
            ) {
                let out: Option<Vec<f64>> = (0..ic.len())
                    .map(|k| {
                        let pick = *cv.get(ic[k])? != 0;
                        if pick {
                            xv.get(*ix.get(k)?).copied()
                        } else {
                            yv.get(*iy.get(k)?).copied()
                        }
                    })
                    .collect();
                if let Some(t) = out.and_then(|out| Tensor::from_f64_as(dt, dims, &out)) {
                    return Ok(vec![OutInfo::constant(t)]);
                }
            }
        }
    }
    Ok(vec![OutInfo {
        dtype: dt,
        shape,
        constant: None,
    }])
}

// Gradient rules.

/// Reduces `g` to the shape of input `i` (for broadcasting ops).
fn to_input(c: &mut GradCtx, g: ValueId, i: usize) -> GradResult<Option<ValueId>> {
    if !c.need(i) {
        return Ok(None);
    }
    let d = c.dims(c.x(i)?)?;
    c.b.unbroadcast(g, &d).map(Some)
}

pub fn add_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dy0(dys)?;
    Ok(vec![to_input(c, g, 0)?, to_input(c, g, 1)?])
}

pub fn sum_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dy0(dys)?;
    (0..c.node.inputs.len())
        .map(|i| to_input(c, g, i))
        .collect()
}

pub fn mean_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let n = c.node.inputs.len() as f64;
    let g = c.b.scale(dy0(dys)?, 1.0 / n)?;
    (0..c.node.inputs.len())
        .map(|i| to_input(c, g, i))
        .collect()
}

pub fn sub_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dy0(dys)?;
    let a = to_input(c, g, 0)?;
    let b = if c.need(1) {
        let n = c.b.neg(g)?;
        to_input(c, n, 1)?
    } else {
        None
    };
    Ok(vec![a, b])
}

pub fn mul_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dy0(dys)?;
    let (a, b) = (c.x(0)?, c.x(1)?);
    let ga = if c.need(0) {
        let t = c.b.op("Mul", &[g, b])?;
        to_input(c, t, 0)?
    } else {
        None
    };
    let gb = if c.need(1) {
        let t = c.b.op("Mul", &[g, a])?;
        to_input(c, t, 1)?
    } else {
        None
    };
    Ok(vec![ga, gb])
}

pub fn div_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dy0(dys)?;
    let b = c.x(1)?;
    let gq = c.b.op("Div", &[g, b])?;
    let ga = to_input(c, gq, 0)?;
    let gb = if c.need(1) {
        // d(a/b)/db = -(a/b)/b: reads the output instead of the dividend.
        let y = c.y(0)?;
        let t = c.b.op("Mul", &[gq, y])?;
        let t = c.b.neg(t)?;
        to_input(c, t, 1)?
    } else {
        None
    };
    Ok(vec![ga, gb])
}

pub fn pow_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dy0(dys)?;
    let (x, e) = (c.x(0)?, c.x(1)?);
    let xdt = c.b.dtype(x)?;
    let ga = if c.need(0) {
        // e * x^(e-1); a constant exponent is folded into the graph as a scalar.
        let e_x = if c.b.dtype(e)? == xdt {
            e
        } else {
            c.b.node(
                "Cast",
                &[e],
                vec![Attribute::int("to", i64::from(xdt.to_onnx()))],
            )?
        };
        let one = c.b.scalar(xdt, 1.0)?;
        let em1 = c.b.op("Sub", &[e_x, one])?;
        let p = c.b.op("Pow", &[x, em1])?;
        let t = c.b.op("Mul", &[p, e_x])?;
        let t = c.b.op("Mul", &[t, g])?;
        to_input(c, t, 0)?
    } else {
        None
    };
    let gb = if c.need(1) {
        let y = c.y(0)?;
        let lx = c.b.op("Log", &[x])?;
        let t = c.b.op("Mul", &[y, lx])?;
        let t = c.b.op("Mul", &[t, g])?;
        to_input(c, t, 1)?
    } else {
        None
    };
    Ok(vec![ga, gb])
}

pub fn max_min_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    if c.node.inputs.len() != 2 {
        return Err(format!(
            "{} with {} inputs",
            c.node.op_type,
            c.node.inputs.len()
        ));
    }
    let g = dy0(dys)?;
    let (a, b) = (c.x(0)?, c.x(1)?);
    // Ties go to the first input (a valid subgradient that keeps the gradient sparse).
    let cmp = if c.node.op_type == "Max" {
        "GreaterOrEqual"
    } else {
        "LessOrEqual"
    };
    let mask = c.b.op(cmp, &[a, b])?;
    let yd = c.dims(c.y(0)?)?;
    let yshape = c.b.const_i64(&yd);
    let full = c.b.op("Expand", &[g, yshape])?;
    let zero = c.b.scalar(c.b.dtype(g)?, 0.0)?;
    let ga = if c.need(0) {
        let t = c.b.op("Where", &[mask, full, zero])?;
        to_input(c, t, 0)?
    } else {
        None
    };
    let gb = if c.need(1) {
        let t = c.b.op("Where", &[mask, zero, full])?;
        to_input(c, t, 1)?
    } else {
        None
    };
    Ok(vec![ga, gb])
}

pub fn where_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let cond = c.x(0)?;
    let g = dy0(dys)?;
    let zero = c.b.scalar(c.b.dtype(g)?, 0.0)?;
    let gx = if c.need(1) {
        let t = c.b.op("Where", &[cond, g, zero])?;
        to_input(c, t, 1)?
    } else {
        None
    };
    let gy = if c.need(2) {
        let t = c.b.op("Where", &[cond, zero, g])?;
        to_input(c, t, 2)?
    } else {
        None
    };
    Ok(vec![None, gx, gy])
}

// Cost rules.

/// Variadic Sum, Mean, Max, Min: one operation per output element and extra input.
pub fn variadic_flops(g: &Graph, node: &Node) -> f64 {
    let out = numel(g, node.output(0));
    let k = node.inputs.iter().flatten().count().max(2) as f64;
    (k - 1.0) * out
}
