//! Resampling: Resize, GridSample, AffineGrid, RoiAlign (Upsample, deprecated in opset 10:
//! facts only).
//! Spec: https://onnx.ai/onnx/operators/onnx__Resize.html,
//! https://onnx.ai/onnx/operators/onnx__GridSample.html.
//!
//! Gradient of Resize: Resize is linear in X and separable: along each resized axis `a`
//! (input size n, output size m) y = M_a·x with an m×n interpolation matrix. Rather than
//! re-deriving M_a for every mode (nearest and its rounding modes, linear, cubic,
//! antialias, the coordinate transforms), the backward builds it in the graph by running the
//! forward's own Resize on an identity: E_a has X's rank, n at axis 1 (the column index)
//! and at axis `a` (the row index), 1 elsewhere, E_a[0, j, …, i, …] = δ_ij; Resize(E_a)
//! with the forward's attributes and scale (or size) along `a` and scale 1 (size unchanged)
//! on every other axis gives M_aᵀ as [1, n, …, m, …]. Scale 1 is the identity along an axis
//! for every coordinate transform but tf_crop_and_resize (half_pixel, half_pixel_symmetric,
//! pytorch_half_pixel, asymmetric and align_corners all map x to x), and integer source
//! coordinates pick weight 1 at that sample for every mode. Then dX = g contracted with M_a
//! along each resized axis (MatMul). Saves nothing: the matrices depend only on the static
//! shapes. Supported: the axes 0 and 1 (N, C) not resized, static shapes, constant scales
//! or sizes, keep_aspect_ratio_policy "stretch", any mode other than tf_crop_and_resize.

use super::ctx::{norm_axis, OpCtx, OutInfo, RuleResult};
use crate::autodiff::{GradCtx, Grads};
use crate::error::RuleError;
use crate::ir::{known_shape, Attribute, DType, Dim, Shape, Tensor, ValueId};

// Shape and type rules.

/// RoiAlign(X [N, C, H, W], rois [R, 4], batch_indices [R]) -> [R, C, output_height,
/// output_width].
pub fn roi_align(c: &OpCtx) -> RuleResult {
    let x = c.shape(0)?;
    let rois = c.shape(1)?;
    if x.len() != 4 || rois.len() != 2 {
        return Err(RuleError("RoiAlign needs a 4-D input and 2-D rois".into()));
    }
    Ok(vec![OutInfo::new(
        c.dtype(0)?,
        vec![
            rois[0].clone(),
            x[1].clone(),
            Dim::Known(c.attr_int("output_height", 1)),
            Dim::Known(c.attr_int("output_width", 1)),
        ],
    )])
}

/// GridSample(X [N, C, d...], grid [N, o..., r]) -> [N, C, o...].
pub fn grid_sample(c: &OpCtx) -> RuleResult {
    let x = c.shape(0)?;
    let grid = c.shape(1)?;
    if x.len() < 3 || grid.len() != x.len() {
        return Err(RuleError(format!(
            "GridSample input rank {} and grid rank {} do not match",
            x.len(),
            grid.len()
        )));
    }
    let mut out = vec![x[0].clone(), x[1].clone()];
    out.extend(grid[1..grid.len() - 1].iter().cloned());
    Ok(vec![OutInfo::new(c.dtype(0)?, out)])
}

/// AffineGrid(theta, size = [N, C, H, W] or [N, C, D, H, W]) -> [N, H, W, 2] or
/// [N, D, H, W, 3].
pub fn affine_grid(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let size: Shape = match c.const_ints(1) {
        Some(s) => known_shape(&s),
        // Only 4 or 5 is valid: a longer size vector is refused below, before allocating.
        None => match c.shape(1)?.first().and_then(Dim::known) {
            Some(n @ (4 | 5)) => vec![Dim::Unknown; n as usize],
            Some(_) => return Err(RuleError("AffineGrid size must have 4 or 5 values".into())),
            None => return Ok(vec![OutInfo::unranked(dt)]),
        },
    };
    if size.len() != 4 && size.len() != 5 {
        return Err(RuleError("AffineGrid size must have 4 or 5 values".into()));
    }
    let mut out = vec![size[0].clone()];
    out.extend(size[2..].iter().cloned());
    out.push(Dim::Known(size.len() as i64 - 2));
    Ok(vec![OutInfo::new(dt, out)])
}

/// Resize(X, roi?, scales?, sizes?) (opset 11+): `sizes` (through keep_aspect_ratio_policy)
/// or `floor(dim * scale)` on `axes` (default all); other dims are kept. Resize-10 is
/// Resize(X, scales).
pub fn resize(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let x = c.shape(0)?;
    let r = x.len();
    // Resize-10: the scales are input 1 (no roi, no sizes).
    let (scales_at, sizes_at) = if c.opset < 11 { (1, 2) } else { (2, 3) };
    let axes: Vec<usize> = match c.attr_ints("axes") {
        Some(a) => a
            .iter()
            .map(|&a| norm_axis(a, r))
            .collect::<Result<_, _>>()?,
        None => (0..r).collect(),
    };
    let mut out = x.clone();
    let unknown_axes = |mut out: Shape| {
        for &a in &axes {
            out[a] = Dim::Unknown;
        }
        Ok(vec![OutInfo::new(dt, out)])
    };
    // An empty `scales` tensor stands for "absent" when `sizes` is given.
    let sizes_given = c.has_input(sizes_at)
        && c.constant(scales_at)
            .is_none_or(|t| super::fold::numel(&t.dims) == Some(0));
    if sizes_given {
        let Some(sizes) = c.const_ints(sizes_at) else {
            return unknown_axes(out);
        };
        if sizes.len() != axes.len() {
            return Err(RuleError(format!(
                "Resize has {} sizes for {} axes",
                sizes.len(),
                axes.len()
            )));
        }
        let policy = c
            .node
            .attr_string("keep_aspect_ratio_policy")
            .unwrap_or_else(|| "stretch".into());
        if policy == "stretch" {
            for (&a, &s) in axes.iter().zip(&sizes) {
                out[a] = Dim::Known(s);
            }
            return Ok(vec![OutInfo::new(dt, out)]);
        }
        let ins: Option<Vec<i64>> = axes.iter().map(|&a| x[a].known()).collect();
        let Some(ins) = ins else {
            return unknown_axes(out);
        };
        let ratios = sizes.iter().zip(&ins).map(|(&s, &d)| s as f64 / d as f64);
        let scale = match policy.as_str() {
            "not_larger" => ratios.fold(f64::INFINITY, f64::min),
            "not_smaller" => ratios.fold(f64::NEG_INFINITY, f64::max),
            other => {
                return Err(RuleError(format!(
                    "unknown keep_aspect_ratio_policy '{other}'"
                )))
            }
        };
        for (&a, &d) in axes.iter().zip(&ins) {
            // round_int: nearest, halfway cases up.
            out[a] = Dim::Known((scale * d as f64 + 0.5).floor() as i64);
        }
        return Ok(vec![OutInfo::new(dt, out)]);
    }
    if !c.has_input(scales_at) {
        return Err(RuleError("Resize needs scales or sizes".into()));
    }
    let scales = c.constant(scales_at).filter(|t| super::fold::small(t));
    let Some(scales) = scales.and_then(|t| t.as_f64()) else {
        return unknown_axes(out);
    };
    if scales.len() != axes.len() {
        return Err(RuleError(format!(
            "Resize has {} scales for {} axes",
            scales.len(),
            axes.len()
        )));
    }
    for (&a, &s) in axes.iter().zip(&scales) {
        out[a] = x[a]
            .known()
            .map_or(Dim::Unknown, |d| Dim::Known((d as f64 * s).floor() as i64));
    }
    Ok(vec![OutInfo::new(dt, out)])
}

// Gradient rules.

/// Float values of a constant input (initializer or folded).
fn const_floats(c: &GradCtx, i: usize) -> Option<Vec<f64>> {
    let v = c.node.input(i)?;
    let val = c.b.graph.value(v);
    val.constant.as_ref().or(val.initializer.as_ref())?.as_f64()
}

fn is_empty_input(c: &GradCtx, i: usize) -> bool {
    match c.node.input(i) {
        None => true,
        Some(v) => {
            let val = c.b.graph.value(v);
            let dims = val
                .constant
                .as_ref()
                .or(val.initializer.as_ref())
                .map(|t| t.dims.clone())
                .or_else(|| val.shape.as_ref().and_then(|s| crate::ir::static_dims(s)));
            dims.is_some_and(|d| d.iter().product::<i64>() == 0)
        }
    }
}

pub fn resize_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let name = c.node.name.clone();
    let fail = |why: String| format!("Resize '{name}': {why}");
    let g = dys[0].ok_or("no gradient for the output")?;
    let x = c.x(0)?;
    let (xd, gd) = (c.dims(x)?, c.dims(g)?);
    let r = xd.len();
    let dt = c.b.dtype(x)?;
    let opset = c.b.opset;
    let ctm = c
        .node
        .attr_string("coordinate_transformation_mode")
        .unwrap_or_else(|| "half_pixel".into());
    if ctm == "tf_crop_and_resize" {
        return Err(fail(
            "coordinate_transformation_mode tf_crop_and_resize is not differentiated".into(),
        ));
    }
    let policy = c
        .node
        .attr_string("keep_aspect_ratio_policy")
        .unwrap_or_else(|| "stretch".into());
    if policy != "stretch" {
        return Err(fail(format!(
            "keep_aspect_ratio_policy {policy} is not differentiated"
        )));
    }
    let axes: Vec<usize> = match c.node.attr_ints("axes") {
        Some(a) => a
            .iter()
            .map(|&a| (if a < 0 { a + r as i64 } else { a }) as usize)
            .collect(),
        None => (0..r).collect(),
    };
    // Full-rank scales (Some) or sizes (None → use `sizes`).
    let (scale_idx, sizes_idx) = if opset < 11 { (1, usize::MAX) } else { (2, 3) };
    let use_sizes = opset >= 11 && is_empty_input(c, scale_idx) && c.node.input(3).is_some();
    let mut scales = vec![1.0; r];
    let mut sizes = xd.clone();
    if use_sizes {
        let s = c
            .const_ints(sizes_idx)
            .ok_or_else(|| fail("sizes are not constant".into()))?;
        if s.len() != axes.len() {
            return Err(fail(format!("{} sizes for {} axes", s.len(), axes.len())));
        }
        for (&a, &v) in axes.iter().zip(&s) {
            sizes[a] = v;
        }
    } else {
        let s = const_floats(c, scale_idx).ok_or_else(|| fail("scales are not constant".into()))?;
        if s.len() != axes.len() {
            return Err(fail(format!("{} scales for {} axes", s.len(), axes.len())));
        }
        for (&a, &v) in axes.iter().zip(&s) {
            scales[a] = v;
        }
    }
    let resized: Vec<usize> = (0..r)
        .filter(|&a| {
            if use_sizes {
                sizes[a] != xd[a]
            } else {
                scales[a] != 1.0
            }
        })
        .collect();
    if resized.iter().any(|&a| a < 2) {
        return Err(fail(format!(
            "only the spatial axes (2..) of a rank ≥ 3 input can be resized (input {xd:?}, \
             output {gd:?})"
        )));
    }
    // dX: contract g with M_a along each resized axis, last axis first.
    let mut t = g;
    let mut cur = gd.clone();
    for &a in resized.iter().rev() {
        let (n, m) = (xd[a], gd[a]);
        // The identity E_a: n at axis 1 and at axis a.
        let mut ed = vec![1i64; r];
        ed[1] = n;
        ed[a] = n;
        let mut vals = vec![0.0; (n * n) as usize];
        for j in 0..n as usize {
            vals[j * n as usize + j] = 1.0;
        }
        let e = c.b.constant(
            Tensor::from_f64_as(dt, ed.clone(), &vals).ok_or("unsupported dtype for Resize")?,
        );
        let attrs: Vec<Attribute> = c
            .node
            .attrs
            .iter()
            .filter(|at| at.name != "axes" && at.name != "keep_aspect_ratio_policy")
            .cloned()
            .collect();
        let ins: Vec<Option<ValueId>> = if use_sizes {
            let mut s = ed.clone();
            s[a] = sizes[a];
            let sz = c.b.const_i64(&s);
            vec![Some(e), None, None, Some(sz)]
        } else {
            let mut s = vec![1.0; r];
            s[a] = scales[a];
            let sc = c
                .b
                .constant(Tensor::from_f64_as(DType::Float, vec![r as i64], &s).ok_or("scales")?);
            if opset < 11 {
                vec![Some(e), Some(sc)]
            } else {
                vec![Some(e), None, Some(sc)]
            }
        };
        let mt = c.b.node_n("Resize", &ins, attrs, 1)?[0];
        let got = c.dims(mt)?;
        let mut want = ed.clone();
        want[a] = m;
        if got != want {
            return Err(fail(format!(
                "the interpolation matrix of axis {a} came out {got:?}, expected {want:?}"
            )));
        }
        // M_aᵀ as [n, m].
        let mt = c.b.reshape(mt, &[n, m])?;
        if a == r - 1 {
            let mm = c.b.transpose(mt, &[1, 0])?;
            t = c.b.op("MatMul", &[t, mm])?;
        } else {
            let pre: i64 = cur[..a].iter().product();
            let post: i64 = cur[a + 1..].iter().product();
            let t3 = c.b.reshape(t, &[pre, m, post])?;
            let p = c.b.op("MatMul", &[mt, t3])?;
            cur[a] = n;
            t = c.b.reshape(p, &cur)?;
            continue;
        }
        cur[a] = n;
    }
    let mut out = vec![None; c.node.inputs.len()];
    out[0] = Some(t);
    Ok(out)
}
