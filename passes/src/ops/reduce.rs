//! Reductions (ReduceMean/Sum/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare), ArgMax/ArgMin,
//! TopK, the losses (NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss) and the
//! normalizations (LayerNormalization, RMSNormalization, BatchNormalization,
//! InstanceNormalization, GroupNormalization, LpNormalization, MeanVarianceNormalization,
//! LRN). Axes come from the attribute (opset < 18; ReduceSum < 13) or the second input.
//! Spec: https://onnx.ai/onnx/operators/ (opsets 13–24).

use super::ctx::{norm_axis, OpCtx, OutInfo, RuleResult};
use super::fold;
use crate::error::RuleError;
use crate::ir::{DType, Dim, Shape, Tensor};

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

/// LayerNormalization: Y like X; optional Mean and InvStdDev keep dims before `axis` and
/// are 1 after it.
pub fn layer_norm(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let axis = norm_axis(c.attr_int("axis", -1), s.len())?;
    let stat_dt = match c.attr_int("stash_type", 1) {
        1 => DType::Float,
        other => DType::from_onnx(other as i32).unwrap_or(DType::Float),
    };
    let mut out = vec![OutInfo::new(dt, s.clone())];
    let stat: Shape = s
        .iter()
        .enumerate()
        .map(|(i, d)| if i < axis { d.clone() } else { Dim::Known(1) })
        .collect();
    for _ in 1..c.num_outputs() {
        out.push(OutInfo::new(stat_dt, stat.clone()));
    }
    Ok(out)
}

/// BatchNormalization: Y like X; in training mode also running mean and var (shape [C]).
pub fn batch_norm(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    if s.len() < 2 {
        return Err(RuleError(
            "BatchNormalization input must have rank >= 2".into(),
        ));
    }
    let mut out = vec![OutInfo::new(dt, s.clone())];
    for _ in 1..c.num_outputs() {
        out.push(OutInfo::new(c.dtype(3).unwrap_or(dt), vec![s[1].clone()]));
    }
    Ok(out)
}

pub fn same_as_input(c: &OpCtx) -> RuleResult {
    Ok(vec![OutInfo::new(c.dtype(0)?, c.shape(0)?.clone())])
}

/// RMSNormalization: Y has X's shape and the scale's element type.
pub fn rms_norm(c: &OpCtx) -> RuleResult {
    let s = c.shape(0)?;
    norm_axis(c.attr_int("axis", -1), s.len())?;
    Ok(vec![OutInfo::new(c.dtype(1)?, s.clone())])
}

/// NegativeLogLikelihoodLoss(input [N, C, d...], target [N, d...]) and
/// SoftmaxCrossEntropyLoss(scores, labels): the loss has the target's shape with
/// `reduction="none"`, else it is a scalar; SoftmaxCrossEntropyLoss's optional second
/// output (log_prob) is like the scores.
pub fn loss(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let scores = c.shape(0)?;
    let target = c.shape(1)?;
    if scores.len() < 2 || target.len() + 1 != scores.len() {
        return Err(RuleError(format!(
            "{} input of rank {} needs a target of rank {}",
            c.node.op_type,
            scores.len(),
            scores.len().saturating_sub(1)
        )));
    }
    let reduction = c
        .node
        .attr_string("reduction")
        .unwrap_or_else(|| "mean".into());
    let loss = match reduction.as_str() {
        "none" => target.clone(),
        "sum" | "mean" => vec![],
        other => return Err(RuleError(format!("unknown reduction '{other}'"))),
    };
    let mut out = vec![OutInfo::new(dt, loss)];
    if c.num_outputs() > 1 {
        out.push(OutInfo::new(dt, scores.clone()));
    }
    Ok(out)
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
