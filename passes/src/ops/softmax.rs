//! The softmax family (Softmax, LogSoftmax, Hardmax): shape-preserving along `axis`.
//! Spec: https://onnx.ai/onnx/operators/onnx__Softmax.html (opset 13: one axis, not the
//! flattened 2-D form of opsets < 13), https://onnx.ai/onnx/operators/onnx__LogSoftmax.html.
//!
//! Gradients: Softmax and LogSoftmax save their output.

use super::ctx::{same, OpCtx, RuleResult};
use crate::autodiff::{dy0, GradCtx, Grads};
use crate::ir::ValueId;

// Shape and type rules.

/// Softmax, LogSoftmax, Hardmax: same shape; checks the axis.
pub fn softmax(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    if let Some(s) = c.shape_opt(0) {
        super::ctx::norm_axis(c.attr_int("axis", -1), s.len())?;
    }
    Ok(vec![same(c, 0, dt)])
}

// Gradient rules.

pub(super) fn axis(c: &GradCtx, rank: usize, default: i64) -> i64 {
    let a = c.node.attr_int("axis").unwrap_or(default);
    if a < 0 {
        a + rank as i64
    } else {
        a
    }
}

/// dx = y * (dy - sum(dy * y, axis)).
pub fn softmax_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let y = c.y(0)?;
    let g = dy0(dys)?;
    let a = axis(c, c.dims(y)?.len(), -1);
    let gy = c.b.op("Mul", &[g, y])?;
    let s = c.b.reduce_sum(gy, &[a], true)?;
    let d = c.b.op("Sub", &[g, s])?;
    Ok(vec![Some(c.b.op("Mul", &[y, d])?)])
}

/// dx = dy - exp(y) * sum(dy, axis).
pub fn log_softmax_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let y = c.y(0)?;
    let g = dy0(dys)?;
    let a = axis(c, c.dims(y)?.len(), -1);
    let s = c.b.reduce_sum(g, &[a], true)?;
    let p = c.b.op("Exp", &[y])?;
    let ps = c.b.op("Mul", &[p, s])?;
    Ok(vec![Some(c.b.op("Sub", &[g, ps])?)])
}
