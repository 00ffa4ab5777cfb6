//! Random ops: Dropout (random in training mode only), Bernoulli, RandomUniform(Like),
//! RandomNormal(Like), Multinomial. Never recomputed (`OpDef::random`).
//! Spec: https://onnx.ai/onnx/operators/onnx__Dropout.html,
//! https://onnx.ai/onnx/operators/onnx__Bernoulli.html,
//! https://onnx.ai/onnx/operators/onnx__RandomUniformLike.html.
//!
//! Dropout's gradient saves nothing in inference mode, its mask output in training mode.

use super::ctx::{dtype_attr, same, OpCtx, RuleResult};
use crate::autodiff::{dy0, GradCtx, Grads};
use crate::error::RuleError;
use crate::ir::{Attribute, DType, ValueId};

// Shape and type rules.

/// Dropout: output like the input; optional mask output is bool of the same shape.
pub fn dropout(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let mut out = vec![same(c, 0, dt)];
    if c.num_outputs() > 1 {
        out.push(same(c, 0, DType::Bool));
    }
    Ok(out)
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

// Gradient rules.

/// Inference mode or ratio 0: identity. Training mode: dy * mask / (1 - ratio), through
/// the node's mask output.
pub fn dropout_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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
