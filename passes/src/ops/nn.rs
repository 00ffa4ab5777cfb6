//! Convolution, pooling and the other image and sequence layers: Conv, DeformConv,
//! ConvTranspose, MaxPool, AveragePool, LpPool, GlobalAveragePool, GlobalMaxPool,
//! GlobalLpPool, MaxUnpool, Col2Im, RoiAlign, GridSample, AffineGrid, Resize, and the
//! recurrent layers RNN, GRU, LSTM.
//! Spec: https://onnx.ai/onnx/operators/ (opsets 13–24).

use super::ctx::{norm_axis, rank_from_len, OpCtx, OutInfo, RuleResult};
use crate::error::RuleError;
use crate::ir::{known_shape, DType, Dim, Shape};

struct Window {
    kernel: Vec<i64>,
    strides: Vec<i64>,
    dilations: Vec<i64>,
    /// begin pads then end pads, as in the spec.
    pads: Vec<i64>,
    auto_pad: String,
    ceil_mode: bool,
}

fn window(c: &OpCtx, kernel: Vec<i64>) -> Result<Window, RuleError> {
    let n = kernel.len();
    let get = |name: &str, default: i64| c.attr_ints(name).unwrap_or_else(|| vec![default; n]);
    let w = Window {
        strides: get("strides", 1),
        dilations: get("dilations", 1),
        pads: c.attr_ints("pads").unwrap_or_else(|| vec![0; 2 * n]),
        auto_pad: c
            .node
            .attr_string("auto_pad")
            .unwrap_or_else(|| "NOTSET".into()),
        ceil_mode: c.attr_int("ceil_mode", 0) != 0,
        kernel,
    };
    if w.strides.len() != n || w.dilations.len() != n || w.pads.len() != 2 * n {
        return Err(RuleError(format!(
            "strides/dilations/pads do not match {n} spatial dims"
        )));
    }
    // Bounded so that the output-size arithmetic cannot overflow.
    const LIMIT: i64 = 1 << 31;
    if w.strides
        .iter()
        .chain(&w.dilations)
        .chain(&w.kernel)
        .any(|&x| x <= 0 || x > LIMIT)
        || w.pads.iter().any(|&p| !(0..=LIMIT).contains(&p))
    {
        return Err(RuleError(
            "strides, dilations and kernel sizes must be in 1..=2^31, pads in 0..=2^31".into(),
        ));
    }
    Ok(w)
}

fn spatial_out(w: &Window, spatial: &[Dim]) -> Shape {
    let n = w.kernel.len();
    (0..n)
        .map(|i| {
            let Some(d) = spatial[i].known() else {
                return Dim::Unknown;
            };
            let s = w.strides[i];
            match w.auto_pad.as_str() {
                "SAME_UPPER" | "SAME_LOWER" => Dim::Known(d.saturating_add(s - 1) / s),
                _ => {
                    let ek = (w.kernel[i] - 1) * w.dilations[i] + 1;
                    let span = d.saturating_add(w.pads[i]).saturating_add(w.pads[i + n]) - ek;
                    if span < 0 {
                        return Dim::Known(0);
                    }
                    let o = if w.ceil_mode {
                        let o = span.saturating_add(s - 1) / s + 1;
                        // The last window must start inside the input or left padding.
                        if (o - 1).saturating_mul(s) >= d.saturating_add(w.pads[i]) {
                            o - 1
                        } else {
                            o
                        }
                    } else {
                        span / s + 1
                    };
                    Dim::Known(o)
                }
            }
        })
        .collect()
}

pub fn conv(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let x = c.shape(0)?;
    let wsh = c.shape(1)?;
    if x.len() < 3 || wsh.len() != x.len() {
        return Err(RuleError(format!(
            "Conv input rank {} and weight rank {} do not match",
            x.len(),
            wsh.len()
        )));
    }
    let kernel: Vec<i64> = match c.attr_ints("kernel_shape") {
        Some(k) => k,
        None => wsh[2..]
            .iter()
            .map(|d| {
                d.known()
                    .ok_or_else(|| RuleError("Conv kernel shape unknown".into()))
            })
            .collect::<Result<_, _>>()?,
    };
    let group = c.attr_int("group", 1);
    if let (Some(cin), Some(wc)) = (x[1].known(), wsh[1].known()) {
        if Some(cin) != wc.checked_mul(group) {
            return Err(RuleError(format!(
                "Conv input has {cin} channels, weight expects {wc} x group {group}"
            )));
        }
    }
    let w = window(c, kernel)?;
    let mut out = vec![x[0].clone(), wsh[0].clone()];
    out.extend(spatial_out(&w, &x[2..]));
    Ok(vec![OutInfo::new(dt, out)])
}

pub fn conv_transpose(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let x = c.shape(0)?;
    let wsh = c.shape(1)?;
    if x.len() < 3 || wsh.len() != x.len() {
        return Err(RuleError(format!(
            "ConvTranspose input rank {} and weight rank {} do not match (both must be at least 3)",
            x.len(),
            wsh.len()
        )));
    }
    let n = x.len() - 2;
    let kernel: Vec<i64> = match c.attr_ints("kernel_shape") {
        Some(k) => k,
        None => wsh[2..].iter().map(|d| d.known().unwrap_or(0)).collect(),
    };
    let group = c.attr_int("group", 1);
    let cout = wsh[1]
        .known()
        .map_or(Dim::Unknown, |w| Dim::Known(w.saturating_mul(group)));
    let mut out = vec![x[0].clone(), cout];
    if let Some(os) = c.attr_ints("output_shape") {
        // The spatial dims, or (as some exporters write it) the whole shape.
        let spatial = if os.len() == n + 2 { &os[2..] } else { &os[..] };
        out.extend(spatial.iter().map(|&d| Dim::Known(d)));
        return Ok(vec![OutInfo::new(dt, out)]);
    }
    let w = window(c, kernel)?;
    let opad = c.attr_ints("output_padding").unwrap_or_else(|| vec![0; n]);
    let same = matches!(w.auto_pad.as_str(), "SAME_UPPER" | "SAME_LOWER");
    for i in 0..n {
        out.push(match x[2 + i].known() {
            // SAME pads so that the output is exactly input * stride.
            Some(d) if same => Dim::Known(d.saturating_mul(w.strides[i])),
            Some(d) => Dim::Known(
                w.strides[i]
                    .saturating_mul(d - 1)
                    .saturating_add(opad.get(i).copied().unwrap_or(0).clamp(0, 1 << 31))
                    .saturating_add((w.kernel[i] - 1) * w.dilations[i] + 1)
                    - w.pads[i]
                    - w.pads[i + n],
            ),
            None => Dim::Unknown,
        });
    }
    Ok(vec![OutInfo::new(dt, out)])
}

pub fn pool(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let x = c.shape(0)?;
    let kernel = c
        .attr_ints("kernel_shape")
        .ok_or_else(|| RuleError("pool has no kernel_shape".into()))?;
    if kernel.len() + 2 != x.len() {
        return Err(RuleError(
            "kernel_shape does not match the input rank".into(),
        ));
    }
    let w = window(c, kernel)?;
    let mut out = vec![x[0].clone(), x[1].clone()];
    out.extend(spatial_out(&w, &x[2..]));
    let mut res = vec![OutInfo::new(dt, out.clone())];
    if c.num_outputs() > 1 {
        res.push(OutInfo::new(DType::Int64, out));
    }
    Ok(res)
}

pub fn global_pool(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let x = c.shape(0)?;
    if x.len() < 2 {
        return Err(RuleError("global pooling needs rank >= 2".into()));
    }
    let mut out = x[..2].to_vec();
    out.extend(std::iter::repeat_n(Dim::Known(1), x.len() - 2));
    Ok(vec![OutInfo::new(dt, out)])
}

/// MaxUnpool(X, I, output_shape?): the given output shape, else per spatial dim
/// `(in - 1) * stride + kernel - pad_begin - pad_end`.
pub fn max_unpool(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let x = c.shape(0)?;
    if c.has_input(2) {
        return Ok(vec![match c.const_ints(2) {
            Some(s) => {
                rank_from_len(
                    s.len() as i64,
                    &format!("the length of output_shape '{}'", c.input_name(2)),
                )?;
                OutInfo::new(dt, known_shape(&s))
            }
            None => OutInfo::new(dt, vec![Dim::Unknown; x.len()]),
        }]);
    }
    let kernel = c
        .attr_ints("kernel_shape")
        .ok_or_else(|| RuleError("MaxUnpool has no kernel_shape".into()))?;
    if kernel.len() + 2 != x.len() {
        return Err(RuleError(
            "kernel_shape does not match the input rank".into(),
        ));
    }
    let n = kernel.len();
    let w = window(c, kernel)?;
    let mut out = x[..2].to_vec();
    for i in 0..n {
        // Saturating: an overflow is refused as too large by shape inference.
        out.push(x[2 + i].known().map_or(Dim::Unknown, |d| {
            Dim::Known(
                (d - 1)
                    .saturating_mul(w.strides[i])
                    .saturating_add(w.kernel[i] - w.pads[i] - w.pads[i + n]),
            )
        }));
    }
    Ok(vec![OutInfo::new(dt, out)])
}

/// Col2Im(input [N, C * prod(block_shape), L], image_shape, block_shape) -> [N, C, image...].
pub fn col2im(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let x = c.shape(0)?;
    if x.len() != 3 {
        return Err(RuleError("Col2Im input must be 3-D".into()));
    }
    let channels = match c.const_ints(2) {
        Some(block) => {
            let b = block.iter().try_fold(1i64, |a, &d| a.checked_mul(d));
            x[1].known()
                .zip(b.filter(|&b| b > 0))
                .map_or(Dim::Unknown, |(d, b)| Dim::Known(d / b))
        }
        None => Dim::Unknown,
    };
    let mut out = vec![x[0].clone(), channels];
    let what = || format!("the length of image_shape '{}'", c.input_name(1));
    match c.const_ints(1) {
        Some(image) => {
            rank_from_len(image.len() as i64, &what())?;
            out.extend(image.iter().map(|&d| Dim::Known(d)))
        }
        None => match c.shape(1)?.first().and_then(Dim::known) {
            Some(n) => out.extend(std::iter::repeat_n(
                Dim::Unknown,
                rank_from_len(n, &what())?,
            )),
            None => return Ok(vec![OutInfo::unranked(dt)]),
        },
    }
    Ok(vec![OutInfo::new(dt, out)])
}

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

/// RNN, GRU, LSTM: X is [seq, batch, input] (layout 0) or [batch, seq, input] (layout 1).
/// Y is [seq, dirs, batch, hidden] / [batch, seq, dirs, hidden]; Y_h (and LSTM's Y_c)
/// [dirs, batch, hidden] / [batch, dirs, hidden].
pub fn recurrent(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let x = c.shape(0)?;
    if x.len() != 3 {
        return Err(RuleError(format!("{} input must be 3-D", c.node.op_type)));
    }
    let dirs = match c.node.attr_string("direction").as_deref() {
        None | Some("forward") | Some("reverse") => 1,
        Some("bidirectional") => 2,
        Some(other) => return Err(RuleError(format!("unknown direction '{other}'"))),
    };
    let hidden = match c.node.attr_int("hidden_size") {
        Some(h) => Dim::Known(h),
        // R is [dirs, gates * hidden, hidden].
        None => c.shape(2)?.get(2).cloned().unwrap_or(Dim::Unknown),
    };
    let dirs = Dim::Known(dirs);
    let batch_major = c.attr_int("layout", 0) != 0;
    let (seq, batch) = if batch_major {
        (&x[1], &x[0])
    } else {
        (&x[0], &x[1])
    };
    let y = if batch_major {
        vec![batch.clone(), seq.clone(), dirs.clone(), hidden.clone()]
    } else {
        vec![seq.clone(), dirs.clone(), batch.clone(), hidden.clone()]
    };
    let state = if batch_major {
        vec![batch.clone(), dirs, hidden]
    } else {
        vec![dirs, batch.clone(), hidden]
    };
    let mut out = vec![OutInfo::new(dt, y)];
    for _ in 1..c.num_outputs() {
        out.push(OutInfo::new(dt, state.clone()));
    }
    Ok(out)
}
