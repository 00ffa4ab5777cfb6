//! Normalizations: LayerNormalization, RMSNormalization, BatchNormalization,
//! InstanceNormalization, GroupNormalization, LRN, LpNormalization,
//! MeanVarianceNormalization.
//! Spec: https://onnx.ai/onnx/operators/onnx__LayerNormalization.html,
//! https://onnx.ai/onnx/operators/onnx__BatchNormalization.html,
//! https://onnx.ai/onnx/operators/onnx__InstanceNormalization.html.
//!
//! Gradients saved: LayerNormalization its input and scale (mean and inverse std-dev are
//! recomputed in the backward unless the node outputs them, then those outputs);
//! BatchNormalization as exported (running statistics) its scale (and the input for the
//! scale's gradient); in training mode the input and the scale (the batch statistics are
//! recomputed from the input). The running mean and variance are read too, but they are
//! initializers. InstanceNormalization saves its input and scale (statistics recomputed).

use super::cost::numel;
use super::ctx::{norm_axis, OpCtx, OutInfo, RuleResult};
use super::softmax::axis;
use crate::autodiff::{dy0, GradCtx, GradResult, Grads};
use crate::error::RuleError;
use crate::ir::{Attribute, DType, Dim, Graph, Node, Shape, ValueId};

// Shape and type rules.

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

// Gradient rules.

/// LayerNormalization over axes [axis, rank): with x̂ = (x − μ)·r and g = dy·scale,
/// dx = r·(g − mean(g) − x̂·mean(g·x̂)), dscale = Σ dy·x̂, dbias = Σ dy over leading axes.
pub fn layer_norm_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let xd = c.dims(x)?;
    let r = xd.len();
    let a = axis(c, r, -1) as usize;
    let eps = f64::from(c.node.attr_float("epsilon").unwrap_or(1e-5));
    let g = dy0(dys)?;
    let dt = c.b.dtype(x)?;
    let norm_axes: Vec<i64> = (a as i64..r as i64).collect();
    // Mean and inverse std-dev: the node's own outputs when it has them, else recomputed.
    let (mu, rstd) = match (c.node.output(1), c.node.output(2)) {
        (Some(m), Some(s)) if c.b.dtype(m)? == dt => (m, s),
        _ => {
            let mu = c.b.reduce_mean(x, &norm_axes, true)?;
            let xc = c.b.op("Sub", &[x, mu])?;
            let sq = c.b.op("Mul", &[xc, xc])?;
            let var = c.b.reduce_mean(sq, &norm_axes, true)?;
            let e = c.b.scalar(dt, eps)?;
            let ve = c.b.op("Add", &[var, e])?;
            let sd = c.b.op("Sqrt", &[ve])?;
            (mu, c.b.op("Reciprocal", &[sd])?)
        }
    };
    let xc = c.b.op("Sub", &[x, mu])?;
    let xhat = c.b.op("Mul", &[xc, rstd])?;
    let lead: Vec<i64> = (0..a as i64).collect();
    let mut out = vec![None; c.node.inputs.len()];
    if c.need(0) {
        let scale = c.x(1)?;
        let gs = c.b.op("Mul", &[g, scale])?;
        let m1 = c.b.reduce_mean(gs, &norm_axes, true)?;
        let gx = c.b.op("Mul", &[gs, xhat])?;
        let m2 = c.b.reduce_mean(gx, &norm_axes, true)?;
        let t = c.b.op("Mul", &[xhat, m2])?;
        let d = c.b.op("Sub", &[gs, m1])?;
        let d = c.b.op("Sub", &[d, t])?;
        out[0] = Some(c.b.op("Mul", &[d, rstd])?);
    }
    if c.need(1) {
        let sd = c.dims(c.x(1)?)?;
        let t = c.b.op("Mul", &[g, xhat])?;
        let s = c.b.reduce_sum(t, &lead, false)?;
        out[1] = Some(c.b.unbroadcast(s, &sd)?);
    }
    if c.need(2) {
        let bd = c.dims(c.x(2)?)?;
        let s = c.b.reduce_sum(g, &lead, false)?;
        out[2] = Some(c.b.unbroadcast(s, &bd)?);
    }
    Ok(out)
}

/// Marks BatchNormalization nodes to use batch statistics, as torch's `train()` does.
/// With `training_mode = 1` the op must have its three outputs (ONNX shape inference and
/// ONNX Runtime reject fewer), so the running-statistic outputs are added when missing; they
/// are not graph outputs: the training graph returns gradients only.
pub fn switch_batch_norm_to_training(g: &mut Graph) {
    // Made when first needed: most graphs have every statistic output already.
    let mut names = None;
    for nid in g.node_ids().collect::<Vec<_>>() {
        let n = g.node(nid);
        if n.op_type != "BatchNormalization" || !n.is_standard_domain() {
            continue;
        }
        let mut outputs = n.outputs.clone();
        outputs.truncate(3);
        for (k, stat) in [(1, 3), (2, 4)] {
            if outputs.get(k).copied().flatten().is_some() {
                continue;
            }
            let like = g.node(nid).input(stat).map(|v| g.value(v).clone());
            let base = format!("{}.running_{}", g.node(nid).name, ["mean", "var"][k - 1]);
            let name = names
                .get_or_insert_with(|| crate::ir::Names::of_graph(g))
                .fresh_value(&base);
            let v = g.new_value(name);
            let val = g.value_mut(v);
            val.dtype = like.as_ref().and_then(|l| l.dtype);
            val.shape = like.and_then(|l| l.shape);
            val.producer = Some(nid);
            if outputs.len() <= k {
                outputs.resize(k + 1, None);
            }
            outputs[k] = Some(v);
        }
        let n = g.node_mut(nid);
        n.outputs = outputs;
        n.attrs.retain(|a| a.name != "training_mode");
        n.attrs.push(Attribute::int("training_mode", 1));
    }
}

pub fn batch_norm_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let xd = c.dims(x)?;
    let dt = c.b.dtype(x)?;
    let eps = f64::from(c.node.attr_float("epsilon").unwrap_or(1e-5));
    let training = c.node.attr_int("training_mode").unwrap_or(0) != 0;
    let g = dy0(dys)?;
    let scale = c.x(1)?;
    // Per-channel vectors broadcast as [C, 1, 1, ...].
    let mut cshape = vec![xd[1]];
    cshape.extend(std::iter::repeat_n(1, xd.len() - 2));
    let red: Vec<i64> = std::iter::once(0).chain(2..xd.len() as i64).collect();
    let e = c.b.scalar(dt, eps)?;
    let (mean, rstd) = if training {
        let mu = c.b.reduce_mean(x, &red, true)?;
        let xc = c.b.op("Sub", &[x, mu])?;
        let sq = c.b.op("Mul", &[xc, xc])?;
        let var = c.b.reduce_mean(sq, &red, true)?;
        let ve = c.b.op("Add", &[var, e])?;
        let sd = c.b.op("Sqrt", &[ve])?;
        (mu, c.b.op("Reciprocal", &[sd])?)
    } else {
        let mean = c.b.reshape(c.x(3)?, &cshape)?;
        let var = c.b.reshape(c.x(4)?, &cshape)?;
        let ve = c.b.op("Add", &[var, e])?;
        let sd = c.b.op("Sqrt", &[ve])?;
        (mean, c.b.op("Reciprocal", &[sd])?)
    };
    let s = c.b.reshape(scale, &cshape)?;
    let mut out = vec![None; c.node.inputs.len()];
    let need_xhat = c.need(1) || (training && c.need(0));
    let xhat = if need_xhat {
        let xc = c.b.op("Sub", &[x, mean])?;
        Some(c.b.op("Mul", &[xc, rstd])?)
    } else {
        None
    };
    if c.need(0) {
        let sr = c.b.op("Mul", &[s, rstd])?;
        let gs = c.b.op("Mul", &[g, sr])?;
        out[0] = Some(if training {
            let xhat = xhat.expect("computed above");
            let m1 = c.b.reduce_mean(g, &red, true)?;
            let gx = c.b.op("Mul", &[g, xhat])?;
            let m2 = c.b.reduce_mean(gx, &red, true)?;
            let t = c.b.op("Mul", &[xhat, m2])?;
            let d = c.b.op("Sub", &[g, m1])?;
            let d = c.b.op("Sub", &[d, t])?;
            c.b.op("Mul", &[d, sr])?
        } else {
            gs
        });
    }
    if c.need(1) {
        let t = c.b.op("Mul", &[g, xhat.expect("computed above")])?;
        out[1] = Some(c.b.reduce_sum(t, &red, false)?);
        let sd = c.dims(scale)?;
        out[1] = Some(c.b.reshape(out[1].unwrap(), &sd)?);
    }
    if c.need(2) {
        let bd = c.dims(c.x(2)?)?;
        let s = c.b.reduce_sum(g, &red, false)?;
        out[2] = Some(c.b.reshape(s, &bd)?);
    }
    Ok(out)
}

/// InstanceNormalization: y = scale_c·x̂ + B_c with x̂ normalized over the spatial axes
/// (2..) per (n, c). dx = (scale/σ)·(g − mean(g) − x̂·mean(g·x̂)) over the spatial axes;
/// dscale = Σ_{n,spatial} g·x̂; dB = Σ_{n,spatial} g.
pub fn instance_norm_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let xd = c.dims(x)?;
    if xd.len() < 3 {
        return Err("InstanceNormalization needs an input of rank >= 3".into());
    }
    let dt = c.b.dtype(x)?;
    let eps = f64::from(c.node.attr_float("epsilon").unwrap_or(1e-5));
    let g = dy0(dys)?;
    let sp: Vec<i64> = (2..xd.len() as i64).collect();
    let red: Vec<i64> = std::iter::once(0).chain(2..xd.len() as i64).collect();
    let mut cshape = vec![xd[1]];
    cshape.extend(std::iter::repeat_n(1, xd.len() - 2));
    let mut out = vec![None; c.node.inputs.len()];
    if c.need(0) || c.need(1) {
        // Statistics recomputed from the input.
        let mu = c.b.reduce_mean(x, &sp, true)?;
        let xc = c.b.op("Sub", &[x, mu])?;
        let sq = c.b.op("Mul", &[xc, xc])?;
        let var = c.b.reduce_mean(sq, &sp, true)?;
        let e = c.b.scalar(dt, eps)?;
        let ve = c.b.op("Add", &[var, e])?;
        let sd = c.b.op("Sqrt", &[ve])?;
        let rstd = c.b.op("Reciprocal", &[sd])?;
        let xhat = c.b.op("Mul", &[xc, rstd])?;
        instance_norm_dx_dscale(c, g, xhat, rstd, &cshape, &mut out)?;
    }
    if c.need(2) {
        let s = c.b.reduce_sum(g, &red, false)?;
        let bd = c.dims(c.x(2)?)?;
        out[2] = Some(c.b.reshape(s, &bd)?);
    }
    Ok(out)
}

fn instance_norm_dx_dscale(
    c: &mut GradCtx,
    g: ValueId,
    xhat: ValueId,
    rstd: ValueId,
    cshape: &[i64],
    out: &mut [Option<ValueId>],
) -> GradResult<()> {
    let r = cshape.len() as i64 + 1;
    let sp: Vec<i64> = (2..r).collect();
    let red: Vec<i64> = std::iter::once(0).chain(2..r).collect();
    if c.need(0) {
        let s = c.b.reshape(c.x(1)?, cshape)?;
        let m1 = c.b.reduce_mean(g, &sp, true)?;
        let gx = c.b.op("Mul", &[g, xhat])?;
        let m2 = c.b.reduce_mean(gx, &sp, true)?;
        let t = c.b.op("Mul", &[xhat, m2])?;
        let d = c.b.op("Sub", &[g, m1])?;
        let d = c.b.op("Sub", &[d, t])?;
        let sr = c.b.op("Mul", &[s, rstd])?;
        out[0] = Some(c.b.op("Mul", &[d, sr])?);
    }
    if c.need(1) {
        let t = c.b.op("Mul", &[g, xhat])?;
        let s = c.b.reduce_sum(t, &red, false)?;
        let sd = c.dims(c.x(1)?)?;
        out[1] = Some(c.b.reshape(s, &sd)?);
    }
    Ok(())
}

// Cost rules.

/// BatchNormalization: batch statistics in training mode, a scale and shift otherwise.
pub fn batch_norm_flops(g: &Graph, node: &Node) -> f64 {
    let out = numel(g, node.output(0));
    if node.attr_int("training_mode").unwrap_or(0) != 0 {
        8.0 * out
    } else {
        2.0 * out
    }
}
