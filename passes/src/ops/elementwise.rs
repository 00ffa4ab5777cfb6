//! Elementwise ops: unary math and activations, numpy-broadcasting binary and variadic ops
//! (arithmetic and bitwise), comparisons, Where, Cast, Clip, Dropout, the softmax family
//! (shape-preserving) and the "like" generators (Bernoulli, RandomUniformLike, EyeLike).
//! Spec: https://onnx.ai/onnx/operators/ (opsets 13–24).

use super::ctx::{broadcast, dtype_attr, OpCtx, OutInfo, RuleResult};
use super::fold;
use crate::error::RuleError;
use crate::ir::{DType, Tensor};

/// Output = input 0's type and shape; folds a few unary ops on constants.
pub fn unary(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    if let Some(t) = c.constant(0) {
        let f: Option<fn(f64) -> f64> = match c.node.op_type.as_str() {
            "Identity" => Some(|x| x),
            "Neg" => Some(|x| -x),
            "Abs" => Some(f64::abs),
            "Sqrt" => Some(f64::sqrt),
            "Floor" => Some(f64::floor),
            "Ceil" => Some(f64::ceil),
            "Reciprocal" => Some(|x| 1.0 / x),
            "Relu" => Some(|x| x.max(0.0)),
            "Sign" => Some(|x: f64| if x == 0.0 { 0.0 } else { x.signum() }),
            _ => None,
        };
        if let Some(v) = f.and_then(|f| fold::unary(t, dt, f)) {
            return Ok(vec![OutInfo::constant(v)]);
        }
    }
    Ok(vec![same(c, 0, dt)])
}

fn same(c: &OpCtx, i: usize, dt: DType) -> OutInfo {
    OutInfo {
        dtype: dt,
        shape: c.shape_opt(i).cloned(),
        constant: None,
    }
}

/// Not, IsNaN, IsInf: same shape, bool output.
pub fn unary_bool(c: &OpCtx) -> RuleResult {
    c.dtype(0)?;
    if c.node.op_type == "Not" {
        if let Some(v) = c
            .constant(0)
            .and_then(|t| fold::unary(t, DType::Bool, |x| f64::from(u8::from(x == 0.0))))
        {
            return Ok(vec![OutInfo::constant(v)]);
        }
    }
    Ok(vec![same(c, 0, DType::Bool)])
}

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

pub fn cast(c: &OpCtx) -> RuleResult {
    let to = c
        .node
        .attr_int("to")
        .ok_or_else(|| RuleError("Cast has no 'to' attribute".into()))?;
    let dt = DType::from_onnx(to as i32).ok_or_else(|| RuleError(format!("bad Cast to={to}")))?;
    if let Some(v) = c.constant(0).and_then(|t| cast_const(t, dt)) {
        return Ok(vec![OutInfo::constant(v)]);
    }
    Ok(vec![same(c, 0, dt)])
}

fn cast_const(t: &Tensor, dt: DType) -> Option<Tensor> {
    if !fold::small(t) {
        return None;
    }
    if t.dtype.is_int() || t.dtype == DType::Bool {
        let v: Vec<f64> = t.as_i64()?.into_iter().map(|x| x as f64).collect();
        return Tensor::from_f64_as(dt, t.dims.clone(), &v);
    }
    let v: Vec<f64> = t
        .as_f64()?
        .into_iter()
        .map(|x| if dt.is_int() { x.trunc() } else { x })
        .collect();
    Tensor::from_f64_as(dt, t.dims.clone(), &v)
}

pub fn cast_like(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(1)?;
    if let Some(v) = c.constant(0).and_then(|t| cast_const(t, dt)) {
        return Ok(vec![OutInfo::constant(v)]);
    }
    Ok(vec![same(c, 0, dt)])
}

/// Dropout: output like the input; optional mask output is bool of the same shape.
pub fn dropout(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let mut out = vec![same(c, 0, dt)];
    if c.num_outputs() > 1 {
        out.push(same(c, 0, DType::Bool));
    }
    Ok(out)
}

/// Softmax, LogSoftmax, Hardmax: same shape; checks the axis.
pub fn softmax(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    if let Some(s) = c.shape_opt(0) {
        super::ctx::norm_axis(c.attr_int("axis", -1), s.len())?;
    }
    Ok(vec![same(c, 0, dt)])
}

/// Bernoulli, RandomUniformLike, EyeLike: the shape of input 0, the element type of the
/// `dtype` attribute or else of input 0. EyeLike takes only 2-D inputs.
pub fn like_with_dtype(c: &OpCtx) -> RuleResult {
    let dt = match dtype_attr(c, "dtype")? {
        Some(dt) => dt,
        None => c.dtype(0)?,
    };
    if c.node.op_type == "EyeLike" && c.shape_opt(0).is_some_and(|s| s.len() != 2) {
        return Err(RuleError("EyeLike input must be 2-D".into()));
    }
    Ok(vec![same(c, 0, dt)])
}
