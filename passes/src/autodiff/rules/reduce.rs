//! Gradients of the reductions other than ReduceSum/ReduceMean (those are in `norm.rs`):
//! ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum, ReduceLogSumExp, ReduceMax,
//! ReduceMin and CumSum. Spec: https://onnx.ai/onnx/operators/ (opsets 13–20).
//!
//! The reduced axes come from the `axes` attribute before opset 18 and from the second input
//! from 18 (they must be constant); no axes means every axis, or none with
//! `noop_with_empty_axes=1`. The output gradient is reshaped to the keepdims shape and
//! broadcast back against the input.
//!
//! Saved: ReduceL1 and ReduceSumSquare the input; ReduceL2, ReduceLogSumExp, ReduceMax and
//! ReduceMin the input and the output; ReduceLogSum the output.

use super::elementwise::dy0;
use super::{GradCtx, GradResult};
use crate::ir::{Attribute, ValueId};

type Grads = GradResult<Vec<Option<ValueId>>>;

/// The reduced axes (normalized) of a Reduce node: an input from opset 18 (ReduceSum: 13),
/// an attribute before.
pub(super) fn reduced_axes(c: &GradCtx, rank: usize) -> GradResult<Vec<usize>> {
    let from_input = c.node.op_type == "ReduceSum" || c.b.opset >= 18;
    let axes = if from_input && c.node.input(1).is_some() {
        c.const_ints(1).ok_or("reduction axes are not constant")?
    } else if from_input {
        Vec::new()
    } else {
        c.node
            .attr_ints("axes")
            .map(|a| a.to_vec())
            .unwrap_or_default()
    };
    if axes.is_empty() {
        if c.node.attr_int("noop_with_empty_axes").unwrap_or(0) != 0 {
            return Ok(Vec::new());
        }
        return Ok((0..rank).collect());
    }
    axes.iter()
        .map(|&a| {
            let n = if a < 0 { a + rank as i64 } else { a };
            usize::try_from(n)
                .ok()
                .filter(|&n| n < rank)
                .ok_or_else(|| format!("axis {a} is out of range for rank {rank}"))
        })
        .collect()
}

/// What every rule needs: the input, its dims, the reduced axes and a reshape of a
/// reduced-shape value to the keepdims shape (which broadcasts against the input).
struct Red {
    x: ValueId,
    axes: Vec<i64>,
    keep: Vec<i64>,
}

impl Red {
    fn new(c: &GradCtx) -> GradResult<Red> {
        let x = c.x(0)?;
        let xd = c.dims(x)?;
        let axes = reduced_axes(c, xd.len())?;
        let keep = xd
            .iter()
            .enumerate()
            .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
            .collect();
        Ok(Red {
            x,
            axes: axes.iter().map(|&a| a as i64).collect(),
            keep,
        })
    }
    /// `v` (the output's shape) viewed with the reduced axes kept as 1.
    fn kept(&self, c: &mut GradCtx, v: ValueId) -> GradResult<ValueId> {
        c.b.reshape(v, &self.keep)
    }
}

fn finish(c: &GradCtx, dx: ValueId) -> Grads {
    let mut out = vec![Some(dx)];
    out.resize(c.node.inputs.len(), None);
    Ok(out)
}

/// ReduceL2: dx = dy·x/y, 0 where y = 0 (as torch's norm backward).
pub fn reduce_l2(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let r = Red::new(c)?;
    let g = r.kept(c, dy0(dys)?)?;
    let y = r.kept(c, c.y(0)?)?;
    let zero = c.b.scalar(c.b.dtype(y)?, 0.0)?;
    let q = c.b.op("Div", &[g, y])?;
    let is0 = c.b.op("Equal", &[y, zero])?;
    let q = c.b.op("Where", &[is0, zero, q])?;
    let dx = c.b.op("Mul", &[r.x, q])?;
    finish(c, dx)
}

/// ReduceL1: dx = dy·sign(x).
pub fn reduce_l1(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let r = Red::new(c)?;
    let g = r.kept(c, dy0(dys)?)?;
    let s = c.b.op("Sign", &[r.x])?;
    let dx = c.b.op("Mul", &[s, g])?;
    finish(c, dx)
}

/// ReduceSumSquare: dx = 2·dy·x.
pub fn reduce_sum_square(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let r = Red::new(c)?;
    let g = r.kept(c, dy0(dys)?)?;
    let g2 = c.b.scale(g, 2.0)?;
    let dx = c.b.op("Mul", &[r.x, g2])?;
    finish(c, dx)
}

/// ReduceLogSum: dx = dy/Σx = dy·e^(−y), broadcast.
pub fn reduce_log_sum(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let r = Red::new(c)?;
    let g = r.kept(c, dy0(dys)?)?;
    let y = r.kept(c, c.y(0)?)?;
    let ny = c.b.neg(y)?;
    let inv = c.b.op("Exp", &[ny])?;
    let q = c.b.op("Mul", &[g, inv])?;
    let xd = c.dims(r.x)?;
    let shape = c.b.const_i64(&xd);
    let dx = c.b.op("Expand", &[q, shape])?;
    finish(c, dx)
}

/// ReduceLogSumExp: dx = dy·e^(x − y) (the softmax over the reduced axes).
pub fn reduce_log_sum_exp(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let r = Red::new(c)?;
    let g = r.kept(c, dy0(dys)?)?;
    let y = r.kept(c, c.y(0)?)?;
    let d = c.b.op("Sub", &[r.x, y])?;
    let p = c.b.op("Exp", &[d])?;
    let dx = c.b.op("Mul", &[p, g])?;
    finish(c, dx)
}

/// ReduceMax/ReduceMin: dy to the positions equal to the result, split evenly among ties
/// (as torch's amax/amin backward).
pub fn reduce_max_min(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let r = Red::new(c)?;
    let dt = c.b.dtype(r.x)?;
    if !dt.is_float() {
        return Ok(vec![None; c.node.inputs.len()]);
    }
    let g = r.kept(c, dy0(dys)?)?;
    let y = r.kept(c, c.y(0)?)?;
    let hit = c.b.op("Equal", &[r.x, y])?;
    let m = c.b.node(
        "Cast",
        &[hit],
        vec![Attribute::int("to", i64::from(dt.to_onnx()))],
    )?;
    let n = c.b.reduce_sum(m, &r.axes, true)?;
    let q = c.b.op("Div", &[g, n])?;
    let dx = c.b.op("Mul", &[m, q])?;
    finish(c, dx)
}

/// CumSum: each input element reaches every output from its position on (or up to it when
/// `reverse`), so dx is the cumulative sum of dy in the opposite direction, with the same
/// `exclusive` and the same axis input. Saves nothing.
pub fn cum_sum(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dy0(dys)?;
    let axis = c.x(1)?;
    let reverse = c.node.attr_int("reverse").unwrap_or(0) != 0;
    let exclusive = c.node.attr_int("exclusive").unwrap_or(0);
    let dx = c.b.node(
        "CumSum",
        &[g, axis],
        vec![
            Attribute::int("exclusive", exclusive),
            Attribute::int("reverse", i64::from(!reverse)),
        ],
    )?;
    Ok(vec![Some(dx), None])
}
