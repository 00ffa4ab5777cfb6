//! Data movement that grows or crops: Pad, CenterCropPad, Tile, Expand (and DepthToSpace,
//! SpaceToDepth, lowered to Reshape → Transpose → Reshape: `lower.rs`).
//! Spec: https://onnx.ai/onnx/operators/onnx__Pad.html,
//! https://onnx.ai/onnx/operators/onnx__Tile.html,
//! https://onnx.ai/onnx/operators/onnx__Expand.html.
//!
//! Gradients: Expand and Tile sum back, Pad (mode "constant") slices (and pads negative
//! pads back); none saves a forward value.

use super::ctx::{norm_axis, rank_from_len, OpCtx, OutInfo, RuleResult};
use super::fold;
use crate::autodiff::{dy0, pad_none, GradCtx, Grads};
use crate::error::RuleError;
use crate::ir::{known_shape, static_dims, Attribute, Dim, ValueId};

// Shape and type rules.

pub fn expand(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let what = || format!("the length of shape input '{}'", c.input_name(1));
    let Some(target) = c.const_ints(1) else {
        // The target's length gives the rank; an input dim other than 1 survives.
        let Some(n) = c.shape_opt(1).and_then(|t| t.first()).and_then(Dim::known) else {
            return Ok(vec![OutInfo::unranked(dt)]);
        };
        // The rank is the length of the target, a value from the file: checked before the
        // shape is allocated (a target of shape [2^40] would ask for 24 TiB).
        let r = s.len().max(rank_from_len(n, &what())?);
        let mut out = vec![Dim::Unknown; r];
        for (o, d) in out[r - s.len()..].iter_mut().zip(s) {
            if d.known().is_some_and(|d| d != 1) {
                *o = d.clone();
            }
        }
        return Ok(vec![OutInfo::new(dt, out)]);
    };
    rank_from_len(target.len() as i64, &what())?;
    let out = super::ctx::broadcast(&[s, &known_shape(&target)])?;
    if let (Some(t), Some(dims)) = (c.constant(0), static_dims(&out)) {
        // broadcast_index refuses an output above MAX_FOLD_ELEMENTS before allocating.
        if let (true, Some(idx)) = (fold::small(t), fold::broadcast_index(&dims, &t.dims)) {
            if let Some(t) = fold::take(t, dims, &idx) {
                return Ok(vec![OutInfo::constant(t)]);
            }
        }
    }
    Ok(vec![OutInfo::new(dt, out)])
}

pub fn tile(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let Some(rep) = c.const_ints(1) else {
        return Ok(vec![OutInfo::new(dt, vec![Dim::Unknown; s.len()])]);
    };
    if rep.len() != s.len() {
        return Err(RuleError("Tile repeats do not match the rank".into()));
    }
    let out = s
        .iter()
        .zip(&rep)
        .map(|(d, &r)| match d.known() {
            Some(d) => d
                .checked_mul(r)
                .filter(|&x| x >= 0)
                .map(Dim::Known)
                .ok_or_else(|| RuleError(format!("Tile of dim {d} by {r} is out of range"))),
            None => Ok(Dim::Unknown),
        })
        .collect::<Result<_, _>>()?;
    Ok(vec![OutInfo::new(dt, out)])
}

pub fn pad(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let Some(pads) = c.const_ints(1) else {
        return Ok(vec![OutInfo::new(dt, vec![Dim::Unknown; s.len()])]);
    };
    let axes: Vec<usize> = if c.has_input(3) {
        c.const_ints(3)
            .ok_or_else(|| RuleError("Pad axes are not constant".into()))?
            .iter()
            .map(|&a| norm_axis(a, s.len()))
            .collect::<Result<_, _>>()?
    } else {
        (0..s.len()).collect()
    };
    if pads.len() != 2 * axes.len() {
        return Err(RuleError("Pad pads do not match the axes".into()));
    }
    let mut out = s.clone();
    for (k, &a) in axes.iter().enumerate() {
        out[a] = match out[a].known() {
            Some(d) => d
                .checked_add(pads[k])
                .and_then(|x| x.checked_add(pads[k + axes.len()]))
                .filter(|&x| x >= 0)
                .map(Dim::Known)
                .ok_or_else(|| {
                    RuleError(format!(
                        "Pad of dim {d} gives a negative or overflowing size"
                    ))
                })?,
            None => Dim::Unknown,
        };
    }
    Ok(vec![OutInfo::new(dt, out)])
}

/// CenterCropPad(input, shape): the dims on `axes` (default all) become `shape`.
pub fn center_crop_pad(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let axes: Vec<usize> = match c.attr_ints("axes") {
        Some(a) => a
            .iter()
            .map(|&a| norm_axis(a, s.len()))
            .collect::<Result<_, _>>()?,
        None => (0..s.len()).collect(),
    };
    let target = c.const_ints(1);
    if target.as_ref().is_some_and(|t| t.len() != axes.len()) {
        return Err(RuleError(
            "CenterCropPad shape does not match the axes".into(),
        ));
    }
    let mut out = s.clone();
    for (k, &a) in axes.iter().enumerate() {
        out[a] = target.as_ref().map_or(Dim::Unknown, |t| Dim::Known(t[k]));
    }
    Ok(vec![OutInfo::new(dt, out)])
}

// Gradient rules.

pub fn expand_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let xd = c.dims(c.x(0)?)?;
    Ok(vec![Some(c.b.unbroadcast(dy0(dys)?, &xd)?), None])
}

/// Tile: view the gradient as [r0, d0, r1, d1, ...] and sum the repeat axes.
pub fn tile_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let xd = c.dims(c.x(0)?)?;
    let reps = c.const_ints(1).ok_or("Tile repeats are not constant")?;
    let mut split = Vec::with_capacity(2 * xd.len());
    for (r, d) in reps.iter().zip(&xd) {
        split.push(*r);
        split.push(*d);
    }
    let g = c.b.reshape(dy0(dys)?, &split)?;
    let axes: Vec<i64> = (0..xd.len() as i64).map(|i| 2 * i).collect();
    let s = c.b.reduce_sum(g, &axes, false)?;
    Ok(vec![Some(c.b.reshape(s, &xd)?), None])
}

/// Pad (mode "constant"): the gradient is dy with the padding removed. Positive pads are
/// sliced off; negative pads (which crop the input) are padded back with zeros. The pads
/// (and opset 18 axes) must be constants; the constant value carries no gradient.
pub fn pad_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let r = c.dims(x)?.len();
    let mode = c
        .node
        .attr_string("mode")
        .unwrap_or_else(|| "constant".into());
    if mode != "constant" {
        return Err(format!(
            "Pad mode '{mode}' has no gradient rule (only 'constant')"
        ));
    }
    let pads = match c.node.attr_ints("pads") {
        Some(p) if c.node.input(1).is_none() => p.to_vec(),
        _ => c.const_ints(1).ok_or("Pad pads are not constant")?,
    };
    let axes: Vec<usize> = match c.node.input(3) {
        Some(_) => {
            let a = c.const_ints(3).ok_or("Pad axes are not constant")?;
            a.iter()
                .map(|&a| (if a < 0 { a + r as i64 } else { a }) as usize)
                .collect()
        }
        None => (0..r).collect(),
    };
    let k = axes.len();
    if pads.len() != 2 * k || axes.iter().any(|&a| a >= r) {
        return Err(format!("Pad pads of length {} for {k} axes", pads.len()));
    }
    let g = dy0(dys)?;
    // Positive pads: slice them off dy.
    let (mut st, mut en, mut ax) = (vec![], vec![], vec![]);
    // Negative pads: zeros back in.
    let mut back = vec![0i64; 2 * r];
    for (j, &a) in axes.iter().enumerate() {
        let (b, e) = (pads[j], pads[k + j]);
        if b > 0 || e > 0 {
            st.push(b.max(0));
            en.push(if e > 0 { -e } else { i64::MAX });
            ax.push(a as i64);
        }
        back[a] += (-b).max(0);
        back[r + a] += (-e).max(0);
    }
    let mut out = g;
    if !ax.is_empty() {
        let (s, e, a) = (c.b.const_i64(&st), c.b.const_i64(&en), c.b.const_i64(&ax));
        out = c.b.op("Slice", &[out, s, e, a])?;
    }
    if back.iter().any(|&p| p != 0) {
        let p = c.b.const_i64(&back);
        out = c.b.node(
            "Pad",
            &[out, p],
            vec![Attribute::string("mode", "constant")],
        )?;
    }
    Ok(pad_none(vec![Some(out)], c.node.inputs.len()))
}

#[cfg(test)]
mod tests {
    use crate::autodiff::{build_training_graph, Loss, TrainOptions};
    use crate::ir::{Attribute, Model, Node, Tensor};

    /// x [2,3] (trained) -> Pad(mode) -> ReduceSum: the training error, if any.
    fn pad_error(mode: &str) -> Option<String> {
        let mut m = Model {
            opset_imports: vec![(String::new(), 18)],
            ..Model::default()
        };
        let g = &mut m.graph;
        let x = g.add_initializer("x", Tensor::from_f32(vec![2, 3], &[1.0; 6]));
        let pads = g.add_initializer("pads", Tensor::from_i64(vec![4], &[0, 1, 0, 1]));
        let y = g.new_value("y");
        let mut pad = Node::new("Pad", vec![Some(x), Some(pads)], vec![Some(y)]);
        pad.name = "the_pad".into();
        pad.attrs = vec![Attribute::string("mode", mode)];
        g.add_node(pad);
        let loss = g.new_value("loss");
        let mut sum = Node::new("ReduceSum", vec![Some(y)], vec![Some(loss)]);
        sum.attrs = vec![Attribute::int("keepdims", 0)];
        g.add_node(sum);
        g.outputs = vec![loss];
        crate::infer::infer_shapes(&mut m.graph, 18).expect("infer");
        let opts = TrainOptions {
            loss: Loss::Auto,
            freeze: vec![],
            batch_norm_train: false,
            ..Default::default()
        };
        build_training_graph(&m, &opts).err().map(|e| e.to_string())
    }

    #[test]
    fn pad_modes() {
        assert_eq!(pad_error("constant"), None);
        let err = pad_error("reflect").expect("reflect has no rule");
        assert!(
            err.contains("the_pad") && err.contains("'reflect'"),
            "{err}"
        );
    }
}
