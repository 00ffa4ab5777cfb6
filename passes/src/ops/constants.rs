//! Generators: Constant, ConstantOfShape, Range, EyeLike, Trilu (values from attributes,
//! shapes or a mask of the input).
//! Spec: https://onnx.ai/onnx/operators/onnx__Constant.html,
//! https://onnx.ai/onnx/operators/onnx__ConstantOfShape.html,
//! https://onnx.ai/onnx/operators/onnx__Range.html.

use super::ctx::{rank_from_len, OpCtx, OutInfo, RuleResult};
use super::fold;
use crate::error::RuleError;
use crate::ir::{known_shape, AttrValue, Dim, Tensor};

// Shape and type rules.

pub fn constant(c: &OpCtx) -> RuleResult {
    let a = c
        .node
        .attrs
        .first()
        .ok_or_else(|| RuleError("Constant has no value attribute".into()))?;
    let t = match (&a.name[..], &a.value) {
        ("value", AttrValue::Tensor(t)) => t.clone(),
        ("value_float", AttrValue::Float(f)) => Tensor::from_f32(vec![], &[*f]),
        ("value_floats", AttrValue::Floats(f)) => Tensor::from_f32(vec![f.len() as i64], f),
        ("value_int", AttrValue::Int(i)) => Tensor::from_i64(vec![], &[*i]),
        ("value_ints", AttrValue::Ints(i)) => Tensor::from_i64(vec![i.len() as i64], i),
        _ => {
            return Err(RuleError(format!(
                "Constant with attribute '{}' is not supported",
                a.name
            )))
        }
    };
    if matches!(t.data, crate::ir::TensorData::Raw(_)) {
        Ok(vec![OutInfo::constant(t)])
    } else {
        Ok(vec![OutInfo::new(t.dtype, known_shape(&t.dims))])
    }
}

pub fn constant_of_shape(c: &OpCtx) -> RuleResult {
    let value = c
        .node
        .attr_tensor("value")
        .cloned()
        .unwrap_or_else(|| Tensor::from_f32(vec![1], &[0.0]));
    let what = || format!("the length of shape input '{}'", c.input_name(0));
    let Some(dims) = c.const_ints(0) else {
        let n = c.shape(0)?.first().and_then(Dim::known);
        let shape = match n {
            Some(n) => vec![Dim::Unknown; rank_from_len(n, &what())?],
            None => return Ok(vec![OutInfo::unranked(value.dtype)]),
        };
        return Ok(vec![OutInfo::new(value.dtype, shape)]);
    };
    rank_from_len(dims.len() as i64, &what())?;
    if dims.iter().any(|&d| d < 0) {
        return Err(RuleError(format!("negative dimension in shape {dims:?}")));
    }
    // Folded only when small: the element count is checked before the index buffer exists.
    if let Some(n) = fold::numel(&dims).filter(|&n| n <= fold::MAX_FOLD_ELEMENTS) {
        if let Some(t) = fold::take(&value, dims.clone(), &vec![0; n as usize]) {
            return Ok(vec![OutInfo::constant(t)]);
        }
    }
    Ok(vec![OutInfo::new(value.dtype, known_shape(&dims))])
}

pub fn range(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    // Scalars: a big constant is not read (its first value would do, but it is not a
    // valid Range input anyway).
    let vals = (
        c.const_f64_first(0),
        c.const_f64_first(1),
        c.const_f64_first(2),
    );
    if let (Some(s), Some(l), Some(d)) = vals {
        if d == 0.0 {
            return Err(RuleError("Range delta is 0".into()));
        }
        // A saturating cast: NaN gives 0, an infinite or huge count i64::MAX, which shape
        // inference then refuses as too large. Folded only when small.
        let n = ((l - s) / d).ceil().max(0.0) as i64;
        if n as u64 <= fold::MAX_FOLD_ELEMENTS {
            let v: Vec<f64> = (0..n).map(|i| s + i as f64 * d).collect();
            if let Some(t) = Tensor::from_f64_as(dt, vec![n], &v) {
                return Ok(vec![OutInfo::constant(t)]);
            }
        }
        return Ok(vec![OutInfo::new(dt, vec![Dim::Known(n)])]);
    }
    Ok(vec![OutInfo::new(dt, vec![Dim::Unknown])])
}
