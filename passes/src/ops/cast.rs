//! Cast and CastLike: shape rules (folding small constants) and the float → float gradient.
//! Spec: https://onnx.ai/onnx/operators/onnx__Cast.html,
//! https://onnx.ai/onnx/operators/onnx__CastLike.html.

use super::ctx::{same, OpCtx, OutInfo, RuleResult};
use super::fold;
use crate::autodiff::{dy0, GradCtx, Grads};
use crate::error::RuleError;
use crate::ir::{Attribute, DType, Tensor, ValueId};

// Shape and type rules.

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

// Gradient rules.

/// Float-to-float casts: the gradient is cast back to the input's type.
pub fn cast_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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
