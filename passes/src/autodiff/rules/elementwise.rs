//! Gradients of elementwise ops. Binary ops broadcast (numpy rules): each input's gradient
//! is summed back to its own shape. Spec: https://onnx.ai/onnx/operators/ (opsets 13–24).
//!
//! Saved forward values: Add/Sub, Sum/Mean, Neg, Identity, Cast/CastLike and inference
//! Dropout none; Mul the other input; Div the divisor (and the output for the divisor's
//! gradient); Pow base, exponent (and output for the exponent's gradient); Relu, Sigmoid,
//! Tanh, Exp, Sqrt, Reciprocal the output; Erf, Gelu, LeakyRelu, Log, Abs, HardSigmoid,
//! HardSwish, Softplus, Clip, Sin, Cos the input; Where the condition; Max/Min both inputs;
//! training-mode Dropout its mask output.

use super::{GradCtx, GradResult};
use crate::ir::{Attribute, ValueId};

type Grads = GradResult<Vec<Option<ValueId>>>;

/// The gradient of a single-output op's output.
pub(super) fn dy0(dys: &[Option<ValueId>]) -> GradResult<ValueId> {
    dys.first()
        .copied()
        .flatten()
        .ok_or_else(|| "no gradient for the output".to_string())
}

/// Reduces `g` to the shape of input `i` (for broadcasting ops).
fn to_input(c: &mut GradCtx, g: ValueId, i: usize) -> GradResult<Option<ValueId>> {
    if !c.need(i) {
        return Ok(None);
    }
    let d = c.dims(c.x(i)?)?;
    c.b.unbroadcast(g, &d).map(Some)
}

pub fn identity(_c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    Ok(vec![Some(dy0(dys)?)])
}

pub fn add(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dy0(dys)?;
    Ok(vec![to_input(c, g, 0)?, to_input(c, g, 1)?])
}

pub fn sum(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dy0(dys)?;
    (0..c.node.inputs.len())
        .map(|i| to_input(c, g, i))
        .collect()
}

pub fn mean(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let n = c.node.inputs.len() as f64;
    let g = c.b.scale(dy0(dys)?, 1.0 / n)?;
    (0..c.node.inputs.len())
        .map(|i| to_input(c, g, i))
        .collect()
}

pub fn sub(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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

pub fn mul(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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

pub fn div(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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

pub fn pow(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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

pub fn max_min(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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

pub fn neg(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    Ok(vec![Some(c.b.neg(dy0(dys)?)?)])
}

pub fn abs(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let s = c.b.op("Sign", &[c.x(0)?])?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, s])?)])
}

/// dy where the output is positive: reads only the output.
pub fn relu(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let y = c.y(0)?;
    let zero = c.b.scalar(c.b.dtype(y)?, 0.0)?;
    let pos = c.b.op("Greater", &[y, zero])?;
    Ok(vec![Some(c.b.op("Where", &[pos, dy0(dys)?, zero])?)])
}

pub fn leaky_relu(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let g = dy0(dys)?;
    let alpha = c.node.attr_float("alpha").unwrap_or(0.01);
    let zero = c.b.scalar(c.b.dtype(x)?, 0.0)?;
    let pos = c.b.op("Greater", &[x, zero])?;
    let ga = c.b.scale(g, f64::from(alpha))?;
    Ok(vec![Some(c.b.op("Where", &[pos, g, ga])?)])
}

pub fn sigmoid(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let y = c.y(0)?;
    let one = c.b.scalar(c.b.dtype(y)?, 1.0)?;
    let om = c.b.op("Sub", &[one, y])?;
    let d = c.b.op("Mul", &[y, om])?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, d])?)])
}

pub fn tanh(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let y = c.y(0)?;
    let one = c.b.scalar(c.b.dtype(y)?, 1.0)?;
    let y2 = c.b.op("Mul", &[y, y])?;
    let d = c.b.op("Sub", &[one, y2])?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, d])?)])
}

/// 2/sqrt(pi) * exp(-x^2).
pub fn erf(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let x2 = c.b.op("Mul", &[x, x])?;
    let nx2 = c.b.neg(x2)?;
    let e = c.b.op("Exp", &[nx2])?;
    let d = c.b.scale(e, 2.0 / std::f64::consts::PI.sqrt())?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, d])?)])
}

/// Gelu (opset 20): exact form Φ(x) + x φ(x); tanh form differentiated as written.
pub fn gelu(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let dt = c.b.dtype(x)?;
    let g = dy0(dys)?;
    let approx = c
        .node
        .attr_string("approximate")
        .unwrap_or_else(|| "none".into());
    let half = c.b.scalar(dt, 0.5)?;
    let one = c.b.scalar(dt, 1.0)?;
    let d = if approx == "tanh" {
        // y = 0.5 x (1 + tanh(u)), u = k (x + 0.044715 x^3), k = sqrt(2/pi)
        let k = (2.0 / std::f64::consts::PI).sqrt();
        let x2 = c.b.op("Mul", &[x, x])?;
        let x3 = c.b.op("Mul", &[x2, x])?;
        let a = c.b.scale(x3, 0.044715)?;
        let inner = c.b.op("Add", &[x, a])?;
        let u = c.b.scale(inner, k)?;
        let t = c.b.op("Tanh", &[u])?;
        let opt = c.b.op("Add", &[one, t])?;
        let left = c.b.op("Mul", &[half, opt])?;
        let t2 = c.b.op("Mul", &[t, t])?;
        let sech2 = c.b.op("Sub", &[one, t2])?;
        let du = c.b.scale(x2, 3.0 * 0.044715)?;
        let du = c.b.op("Add", &[one, du])?;
        let du = c.b.scale(du, k)?;
        let r = c.b.op("Mul", &[sech2, du])?;
        let r = c.b.op("Mul", &[r, x])?;
        let r = c.b.op("Mul", &[r, half])?;
        c.b.op("Add", &[left, r])?
    } else {
        let xs = c.b.scale(x, std::f64::consts::FRAC_1_SQRT_2)?;
        let e = c.b.op("Erf", &[xs])?;
        let cdf = c.b.op("Add", &[one, e])?;
        let cdf = c.b.op("Mul", &[cdf, half])?;
        let x2 = c.b.op("Mul", &[x, x])?;
        let nx2 = c.b.scale(x2, -0.5)?;
        let pdf = c.b.op("Exp", &[nx2])?;
        let pdf = c.b.scale(pdf, 1.0 / (2.0 * std::f64::consts::PI).sqrt())?;
        let xp = c.b.op("Mul", &[x, pdf])?;
        c.b.op("Add", &[cdf, xp])?
    };
    Ok(vec![Some(c.b.op("Mul", &[g, d])?)])
}

fn hard_sigmoid_parts(c: &mut GradCtx, alpha: f32, beta: f32) -> GradResult<(ValueId, ValueId)> {
    // Returns (hardsigmoid(x), slope mask = alpha where 0 < alpha x + beta < 1 else 0).
    let x = c.x(0)?;
    let dt = c.b.dtype(x)?;
    let lin = c.b.scale(x, f64::from(alpha))?;
    let bc = c.b.scalar(dt, f64::from(beta))?;
    let lin = c.b.op("Add", &[lin, bc])?;
    let zero = c.b.scalar(dt, 0.0)?;
    let one = c.b.scalar(dt, 1.0)?;
    let gt = c.b.op("Greater", &[lin, zero])?;
    let lt = c.b.op("Less", &[lin, one])?;
    let inside = c.b.op("And", &[gt, lt])?;
    let a = c.b.scalar(dt, f64::from(alpha))?;
    let slope = c.b.op("Where", &[inside, a, zero])?;
    let hs = c.b.op("Clip", &[lin, zero, one])?;
    Ok((hs, slope))
}

pub fn hard_sigmoid(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let alpha = c.node.attr_float("alpha").unwrap_or(0.2);
    let beta = c.node.attr_float("beta").unwrap_or(0.5);
    let (_, slope) = hard_sigmoid_parts(c, alpha, beta)?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, slope])?)])
}

/// y = x * hardsigmoid(x) with alpha 1/6, beta 0.5: dy (hs + x * slope).
pub fn hard_swish(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let (hs, slope) = hard_sigmoid_parts(c, 1.0 / 6.0, 0.5)?;
    let x = c.x(0)?;
    let xs = c.b.op("Mul", &[x, slope])?;
    let d = c.b.op("Add", &[hs, xs])?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, d])?)])
}

pub fn exp(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let y = c.y(0)?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, y])?)])
}

pub fn sin(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let d = c.b.op("Cos", &[c.x(0)?])?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, d])?)])
}

/// −dy·sin(x).
pub fn cos(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let s = c.b.op("Sin", &[c.x(0)?])?;
    let t = c.b.op("Mul", &[dy0(dys)?, s])?;
    Ok(vec![Some(c.b.neg(t)?)])
}

pub fn log(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    Ok(vec![Some(c.b.op("Div", &[dy0(dys)?, x])?)])
}

pub fn sqrt(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let y = c.y(0)?;
    let t = c.b.op("Div", &[dy0(dys)?, y])?;
    Ok(vec![Some(c.b.scale(t, 0.5)?)])
}

pub fn reciprocal(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let y = c.y(0)?;
    let y2 = c.b.op("Mul", &[y, y])?;
    let t = c.b.op("Mul", &[dy0(dys)?, y2])?;
    Ok(vec![Some(c.b.neg(t)?)])
}

pub fn softplus(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let s = c.b.op("Sigmoid", &[c.x(0)?])?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, s])?)])
}

/// dy where min <= x <= max (bounds are not differentiated).
pub fn clip(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let g = dy0(dys)?;
    let dt = c.b.dtype(x)?;
    let zero = c.b.scalar(dt, 0.0)?;
    let mut mask: Option<ValueId> = None;
    for (i, cmp) in [(1, "GreaterOrEqual"), (2, "LessOrEqual")] {
        if let Some(bound) = c.node.input(i) {
            let m = c.b.op(cmp, &[x, bound])?;
            mask = Some(match mask {
                Some(prev) => c.b.op("And", &[prev, m])?,
                None => m,
            });
        }
    }
    Ok(vec![Some(match mask {
        Some(m) => c.b.op("Where", &[m, g, zero])?,
        None => g,
    })])
}

pub fn where_(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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

/// Float-to-float casts: the gradient is cast back to the input's type.
pub fn cast(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let dt = c.b.dtype(x)?;
    if !dt.is_float() {
        return Ok(vec![None; c.node.inputs.len()]);
    }
    let g = dy0(dys)?;
    let gx = if c.b.dtype(g)? == dt {
        g
    } else {
        c.b.node(
            "Cast",
            &[g],
            vec![Attribute::int("to", i64::from(dt.to_onnx()))],
        )?
    };
    let mut out = vec![Some(gx)];
    out.resize(c.node.inputs.len(), None);
    Ok(out)
}

/// Inference mode or ratio 0: identity. Training mode: dy * mask / (1 - ratio), through
/// the node's mask output.
pub fn dropout(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dy0(dys)?;
    let training = c
        .node
        .input(2)
        .and_then(|_| c.const_ints(2))
        .is_some_and(|v| v.first().copied().unwrap_or(0) != 0);
    let ratio = c
        .node
        .input(1)
        .and_then(|v| {
            let val = c.b.graph.value(v);
            val.constant.as_ref().or(val.initializer.as_ref())?.as_f64()
        })
        .and_then(|v| v.first().copied())
        .unwrap_or(0.5);
    if !training || ratio == 0.0 {
        return Ok(vec![Some(g), None, None]);
    }
    let mask = c
        .node
        .output(1)
        .ok_or("training-mode Dropout without a mask output cannot be differentiated")?;
    let dt = c.b.dtype(g)?;
    let m = c.b.node(
        "Cast",
        &[mask],
        vec![Attribute::int("to", i64::from(dt.to_onnx()))],
    )?;
    let t = c.b.op("Mul", &[g, m])?;
    Ok(vec![Some(c.b.scale(t, 1.0 / (1.0 - ratio))?), None, None])
}
