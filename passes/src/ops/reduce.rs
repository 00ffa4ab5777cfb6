//! Reductions: Reduce*, ArgMax/ArgMin, TopK, CumSum (axes an attribute before opset 18,
//! an input from 18; ReduceSum's from 13).
//! Spec: https://onnx.ai/onnx/operators/onnx__ReduceSum.html (and `onnx__<Op>.html`),
//! https://onnx.ai/onnx/operators/onnx__CumSum.html.
//!
//! Gradients: the output gradient is reshaped to the keepdims shape and broadcast back
//! against the input; the axes must be constant (no axes: every axis, or none with
//! `noop_with_empty_axes=1`). Saved: ReduceSum, ReduceMean and CumSum nothing; ReduceL1 and
//! ReduceSumSquare the input; ReduceL2, ReduceLogSumExp, ReduceMax and ReduceMin the input
//! and the output; ReduceLogSum the output.

use super::ctx::{like_input0, norm_axis, OpCtx, OutInfo, RuleResult};
use super::fold;
use crate::autodiff::{dy0, GradCtx, GradResult, Grads};
use crate::error::RuleError;
use crate::ir::{Attribute, DType, Dim, Shape, Tensor, ValueId};

// Shape and type rules.

fn axes_from_input(c: &OpCtx) -> bool {
    c.node.op_type == "ReduceSum" || c.opset >= 18
}

/// The reduced axes; `None` when they are a run-time input.
pub fn reduce_axes(c: &OpCtx, rank: usize) -> Result<Option<Vec<usize>>, RuleError> {
    let axes = if axes_from_input(c) && c.has_input(1) {
        match c.const_ints(1) {
            Some(a) => a,
            None => return Ok(None),
        }
    } else {
        c.attr_ints("axes").unwrap_or_default()
    };
    if axes.is_empty() {
        if c.attr_int("noop_with_empty_axes", 0) != 0 {
            return Ok(Some(Vec::new()));
        }
        return Ok(Some((0..rank).collect()));
    }
    axes.iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// The output when the axes are a run-time input: with keepdims each dim is kept or
/// becomes 1 (a 1 stays 1); without, the rank drops by the number of axes when that is
/// static. No axes at all means every axis, or none with `noop_with_empty_axes`.
fn runtime_axes(c: &OpCtx, s: &Shape, keep: bool, dt: DType) -> OutInfo {
    let n_axes = match c.shape_opt(1).map(|a| a.as_slice()) {
        Some([n]) => n.known(),
        _ => None,
    };
    let noop = c.attr_int("noop_with_empty_axes", 0) != 0;
    let shape = match (n_axes, keep) {
        (Some(0), _) if noop => s.clone(),
        (Some(0), true) => vec![Dim::Known(1); s.len()],
        (Some(0), false) => vec![],
        (_, true) => s
            .iter()
            .map(|d| match d {
                Dim::Known(1) => Dim::Known(1),
                _ => Dim::Unknown,
            })
            .collect(),
        (Some(k), false) if k as usize <= s.len() => vec![Dim::Unknown; s.len() - k as usize],
        _ => return OutInfo::unranked(dt),
    };
    OutInfo::new(dt, shape)
}

pub fn reduce(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let keep = c.attr_int("keepdims", 1) != 0;
    let Some(axes) = reduce_axes(c, s.len())? else {
        return Ok(vec![runtime_axes(c, s, keep, dt)]);
    };
    let out: Shape = s
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match (axes.contains(&i), keep) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(Dim::Known(1)),
            (true, false) => None,
        })
        .collect();
    // ReduceProd over a constant shape vector appears in exported reshapes.
    let small = c.constant(0).filter(|t| fold::small(t));
    if let (Some(t), "ReduceProd", 1) = (small, c.node.op_type.as_str(), s.len()) {
        if let Some(v) = t.as_f64() {
            let p: f64 = v.iter().product();
            if let Some(t) =
                Tensor::from_f64_as(dt, crate::ir::static_dims(&out).unwrap_or_default(), &[p])
            {
                if fold::numel(&t.dims) == Some(1) {
                    return Ok(vec![OutInfo::constant(t)]);
                }
            }
        }
    }
    Ok(vec![OutInfo::new(dt, out)])
}

pub fn arg_reduce(c: &OpCtx) -> RuleResult {
    let s = c.shape(0)?;
    let axis = norm_axis(c.attr_int("axis", 0), s.len())?;
    let keep = c.attr_int("keepdims", 1) != 0;
    let out = s
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match (i == axis, keep) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(Dim::Known(1)),
            (true, false) => None,
        })
        .collect();
    Ok(vec![OutInfo::new(DType::Int64, out)])
}

/// TopK(X, K): values and int64 indices with the `axis` dim replaced by K.
pub fn topk(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let axis = norm_axis(c.attr_int("axis", -1), s.len())?;
    let mut out = s.clone();
    out[axis] = match c.const_ints(1).as_deref() {
        Some([k]) if *k >= 0 => Dim::Known(*k),
        Some(k) => {
            return Err(RuleError(format!(
                "TopK K must be one value >= 0, got {k:?}"
            )))
        }
        None => Dim::Unknown,
    };
    Ok(vec![
        OutInfo::new(dt, out.clone()),
        OutInfo::new(DType::Int64, out),
    ])
}

/// CumSum: the output is like the input; a constant `axis` must be one value in
/// [-rank, rank-1] (ONNX Runtime refuses the model otherwise).
pub fn cum_sum(c: &OpCtx) -> RuleResult {
    if let (Some(axis), Some(s)) = (c.const_ints(1), c.shape_opt(0)) {
        match axis[..] {
            [a] => {
                norm_axis(a, s.len())?;
            }
            _ => {
                return Err(RuleError(format!(
                    "axis input '{}' must hold one value, not {}",
                    c.input_name(1),
                    axis.len()
                )))
            }
        }
    }
    like_input0(c)
}

// Gradient rules.

pub fn reduce_sum_mean_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let xd = c.dims(x)?;
    let axes = reduced_axes(c, xd.len())?;
    let g = dy0(dys)?;
    let keep: Vec<i64> = xd
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let g = c.b.reshape(g, &keep)?;
    let shape = c.b.const_i64(&xd);
    let mut e = c.b.op("Expand", &[g, shape])?;
    if c.node.op_type == "ReduceMean" {
        let n: i64 = axes.iter().map(|&a| xd[a]).product();
        e = c.b.scale(e, 1.0 / n as f64)?;
    }
    let mut out = vec![Some(e)];
    out.resize(c.node.inputs.len(), None);
    Ok(out)
}

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
pub fn reduce_l2_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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
pub fn reduce_l1_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let r = Red::new(c)?;
    let g = r.kept(c, dy0(dys)?)?;
    let s = c.b.op("Sign", &[r.x])?;
    let dx = c.b.op("Mul", &[s, g])?;
    finish(c, dx)
}

/// ReduceSumSquare: dx = 2·dy·x.
pub fn reduce_sum_square_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let r = Red::new(c)?;
    let g = r.kept(c, dy0(dys)?)?;
    let g2 = c.b.scale(g, 2.0)?;
    let dx = c.b.op("Mul", &[r.x, g2])?;
    finish(c, dx)
}

/// ReduceLogSum: dx = dy/Σx = dy·e^(−y), broadcast.
pub fn reduce_log_sum_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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
pub fn reduce_log_sum_exp_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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
pub fn reduce_max_min_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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
pub fn cum_sum_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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
