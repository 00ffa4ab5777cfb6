//! Convolutions: Conv, DeformConv, ConvTranspose, Col2Im (ConvInteger: cost only). The
//! window geometry here is shared with the pools (`pool.rs`).
//! Spec: https://onnx.ai/onnx/operators/onnx__Conv.html,
//! https://onnx.ai/onnx/operators/onnx__ConvTranspose.html.
//!
//! Gradients: Conv (groups and depthwise, strides, pads, dilations, auto_pad): dX =
//! ConvTranspose(dY, W) with the forward's geometry and an output_padding that restores X's
//! size; dW = Conv(Xᵀ, dYᵀ) with stride and dilation swapped (grouped by folding groups into
//! the batch axis); dB = Σ dY. Saves X and W. ConvTranspose (explicit pads,
//! output_padding), the adjoint of Conv: dX = Conv(dY, W), dW = the same weight gradient
//! with X and dY swapped; saves X and W.

use super::cost::{dims, numel, product};
use super::ctx::{rank_from_len, OpCtx, OutInfo, RuleResult};
use crate::autodiff::{GradCtx, GradResult, Grads};
use crate::error::RuleError;
use crate::ir::{Attribute, Dim, Graph, Node, Shape, ValueId};

// Shape and type rules.

pub(super) struct Window {
    pub(super) kernel: Vec<i64>,
    pub(super) strides: Vec<i64>,
    pub(super) dilations: Vec<i64>,
    /// begin pads then end pads, as in the spec.
    pub(super) pads: Vec<i64>,
    pub(super) auto_pad: String,
    pub(super) ceil_mode: bool,
}

pub(super) fn window(c: &OpCtx, kernel: Vec<i64>) -> Result<Window, RuleError> {
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

pub(super) fn spatial_out(w: &Window, spatial: &[Dim]) -> Shape {
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

// Gradient rules.

pub(super) struct Geometry {
    pub(super) kernel: Vec<i64>,
    pub(super) strides: Vec<i64>,
    pub(super) dilations: Vec<i64>,
    /// begins then ends
    pub(super) pads: Vec<i64>,
}

pub(super) fn geometry(c: &GradCtx, spatial_in: &[i64], kernel: Vec<i64>) -> GradResult<Geometry> {
    let n = kernel.len();
    let get = |name: &str| {
        c.node
            .attr_ints(name)
            .map(|v| v.to_vec())
            .unwrap_or_else(|| vec![1; n])
    };
    let strides = get("strides");
    let dilations = get("dilations");
    let auto_pad = c
        .node
        .attr_string("auto_pad")
        .unwrap_or_else(|| "NOTSET".into());
    let pads = match auto_pad.as_str() {
        "NOTSET" => c
            .node
            .attr_ints("pads")
            .map(|v| v.to_vec())
            .unwrap_or_else(|| vec![0; 2 * n]),
        "VALID" => vec![0; 2 * n],
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut begin = Vec::with_capacity(n);
            let mut end = Vec::with_capacity(n);
            for i in 0..n {
                let out = (spatial_in[i] + strides[i] - 1) / strides[i];
                let total = ((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
                    - spatial_in[i])
                    .max(0);
                let small = total / 2;
                if auto_pad == "SAME_UPPER" {
                    begin.push(small);
                    end.push(total - small);
                } else {
                    begin.push(total - small);
                    end.push(small);
                }
            }
            begin.extend(end);
            begin
        }
        other => return Err(format!("auto_pad {other} is not supported")),
    };
    Ok(Geometry {
        kernel,
        strides,
        dilations,
        pads,
    })
}

pub(super) fn ints(name: &str, v: &[i64]) -> Attribute {
    Attribute::ints(name, v.to_vec())
}

/// ConvTranspose of `g` with `w` back to spatial size `spatial`, undoing a forward window.
pub(super) fn transpose_back(
    c: &mut GradCtx,
    g: ValueId,
    w: ValueId,
    geo: &Geometry,
    spatial: &[i64],
    out_spatial: &[i64],
    group: i64,
) -> GradResult<ValueId> {
    let n = geo.kernel.len();
    let mut opad = Vec::with_capacity(n);
    for i in 0..n {
        let natural =
            geo.strides[i] * (out_spatial[i] - 1) + (geo.kernel[i] - 1) * geo.dilations[i] + 1
                - geo.pads[i]
                - geo.pads[i + n];
        let extra = spatial[i] - natural;
        if extra < 0 || (extra >= geo.strides[i] && extra >= geo.dilations[i]) {
            return Err(format!(
                "cannot restore spatial size {} from {} (output_padding {extra})",
                spatial[i], out_spatial[i]
            ));
        }
        opad.push(extra);
    }
    c.b.node(
        "ConvTranspose",
        &[g, w],
        vec![
            ints("strides", &geo.strides),
            ints("dilations", &geo.dilations),
            ints("pads", &geo.pads),
            ints("output_padding", &opad),
            ints("kernel_shape", &geo.kernel),
            Attribute::int("group", group),
        ],
    )
}

/// The weight gradient of `Conv(x, W)` with `geo` and `group`, given the output gradient
/// `g`: Conv(xᵀ, gᵀ) with stride and dilation swapped, groups folded into the batch axis,
/// cut down to W's kernel size `wd`.
fn weight_grad(
    c: &mut GradCtx,
    x: ValueId,
    g: ValueId,
    wd: &[i64],
    geo: &Geometry,
    group: i64,
) -> GradResult<ValueId> {
    let (xd, gd) = (c.dims(x)?, c.dims(g)?);
    let n_sp = xd.len() - 2;
    let (nb, cin) = (xd[0], xd[1]);
    let cg = cin / group;
    let m = wd[0];
    let mg = m / group;
    // Input: X as [Cg, G*N, S]: batch = in-channel of a group, channels = (group, n).
    let mut s1 = vec![nb, group, cg];
    s1.extend(&xd[2..]);
    let xr = c.b.reshape(x, &s1)?;
    let mut p1: Vec<i64> = vec![2, 1, 0];
    p1.extend(3..3 + n_sp as i64);
    let xt = c.b.transpose(xr, &p1)?;
    let mut s2 = vec![cg, group * nb];
    s2.extend(&xd[2..]);
    let xin = c.b.reshape(xt, &s2)?;
    // Weights: dY as [M, N, O] grouped: [N, G, Mg, O] → [G, Mg, N, O] → [M, N, O].
    let mut s3 = vec![nb, group, mg];
    s3.extend(&gd[2..]);
    let gr = c.b.reshape(g, &s3)?;
    let mut p2: Vec<i64> = vec![1, 2, 0];
    p2.extend(3..3 + n_sp as i64);
    let gt = c.b.transpose(gr, &p2)?;
    let mut s4 = vec![m, nb];
    s4.extend(&gd[2..]);
    let gw = c.b.reshape(gt, &s4)?;
    let dw = c.b.node(
        "Conv",
        &[xin, gw],
        vec![
            ints("strides", &geo.dilations),
            ints("dilations", &geo.strides),
            ints("pads", &geo.pads),
            ints("kernel_shape", &gd[2..]),
            Attribute::int("group", group),
        ],
    )?;
    // dw: [Cg, M, K'] → [M, Cg, K'] and cut K' down to K.
    let mut p3: Vec<i64> = vec![1, 0];
    p3.extend(2..2 + n_sp as i64);
    let dwt = c.b.transpose(dw, &p3)?;
    let got = c.dims(dwt)?;
    let dwt = if got == wd {
        dwt
    } else {
        let starts = c.b.const_i64(&vec![0; n_sp]);
        let ends = c.b.const_i64(&wd[2..]);
        let axes = c.b.const_i64(&(2..2 + n_sp as i64).collect::<Vec<_>>());
        c.b.op("Slice", &[dwt, starts, ends, axes])?
    };
    Ok(dwt)
}

pub fn conv_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dys[0].ok_or("no gradient for the output")?;
    let (x, w) = (c.x(0)?, c.x(1)?);
    let (xd, wd, gd) = (c.dims(x)?, c.dims(w)?, c.dims(g)?);
    let group = c.node.attr_int("group").unwrap_or(1);
    let kernel = wd[2..].to_vec();
    let geo = geometry(c, &xd[2..], kernel)?;
    let mut out = vec![None; c.node.inputs.len()];
    if c.need(0) {
        out[0] = Some(transpose_back(c, g, w, &geo, &xd[2..], &gd[2..], group)?);
    }
    if c.need(1) {
        out[1] = Some(weight_grad(c, x, g, &wd, &geo, group)?);
    }
    if c.need(2) {
        let axes: Vec<i64> = std::iter::once(0).chain(2..xd.len() as i64).collect();
        out[2] = Some(c.b.reduce_sum(g, &axes, false)?);
    }
    Ok(out)
}

/// ConvTranspose(x, W) is the adjoint of Conv(·, W) with the same strides, dilations, pads
/// and group: dX = Conv(dY, W) (output_padding only adds border that dX ignores; a Conv
/// result longer than X, possible when output_padding ≥ stride, is cut back); dW is
/// Conv's weight gradient with the roles of input and output gradient swapped; dB = Σ dY.
/// Only explicit pads (auto_pad NOTSET or VALID, what torch exports) are supported.
pub fn conv_transpose_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dys[0].ok_or("no gradient for the output")?;
    let (x, w) = (c.x(0)?, c.x(1)?);
    let (xd, wd, gd) = (c.dims(x)?, c.dims(w)?, c.dims(g)?);
    let n_sp = xd.len() - 2;
    let group = c.node.attr_int("group").unwrap_or(1);
    let auto_pad = c
        .node
        .attr_string("auto_pad")
        .unwrap_or_else(|| "NOTSET".into());
    if auto_pad != "NOTSET" && auto_pad != "VALID" {
        return Err(format!(
            "ConvTranspose with auto_pad {auto_pad} is not differentiated (only explicit pads)"
        ));
    }
    let kernel = wd[2..].to_vec();
    let geo = geometry(c, &xd[2..], kernel)?;
    // output_shape: supported only when it is the size the pads and output_padding give.
    if let Some(os) = c.node.attr_ints("output_shape") {
        let os = if os.len() == n_sp + 2 { &os[2..] } else { os };
        if os != &gd[2..] {
            return Err(format!(
                "ConvTranspose with output_shape {os:?} (pads derived from it) is not \
                 differentiated; the output is {:?}",
                &gd[2..]
            ));
        }
        let opad = c
            .node
            .attr_ints("output_padding")
            .map(|v| v.to_vec())
            .unwrap_or_else(|| vec![0; n_sp]);
        for i in 0..n_sp {
            let natural = geo.strides[i] * (xd[2 + i] - 1)
                + opad[i]
                + (geo.kernel[i] - 1) * geo.dilations[i]
                + 1
                - geo.pads[i]
                - geo.pads[i + n_sp];
            if natural != gd[2 + i] {
                return Err(format!(
                    "ConvTranspose with output_shape {os:?} different from the size its pads \
                     give is not differentiated"
                ));
            }
        }
    }
    let mut out = vec![None; c.node.inputs.len()];
    if c.need(0) {
        let dx = c.b.node(
            "Conv",
            &[g, w],
            vec![
                ints("strides", &geo.strides),
                ints("dilations", &geo.dilations),
                ints("pads", &geo.pads),
                ints("kernel_shape", &geo.kernel),
                Attribute::int("group", group),
            ],
        )?;
        let got = c.dims(dx)?;
        out[0] = Some(if got == xd {
            dx
        } else {
            let starts = c.b.const_i64(&vec![0; n_sp]);
            let ends = c.b.const_i64(&xd[2..]);
            let axes = c.b.const_i64(&(2..2 + n_sp as i64).collect::<Vec<_>>());
            c.b.op("Slice", &[dx, starts, ends, axes])?
        });
    }
    if c.need(1) {
        // dX = Conv(dY, W): its weight gradient with input dY and output gradient X.
        out[1] = Some(weight_grad(c, g, x, &wd, &geo, group)?);
    }
    if c.need(2) {
        let axes: Vec<i64> = std::iter::once(0).chain(2..gd.len() as i64).collect();
        out[2] = Some(c.b.reduce_sum(g, &axes, false)?);
    }
    Ok(out)
}

// Cost rules.

/// Conv: W is [C_out, C_in / group, k...]; each output element is a dot product over
/// C_in / group × kernel.
pub fn conv_flops(g: &Graph, node: &Node) -> f64 {
    let out = numel(g, node.output(0));
    let w = dims(g, node.input(1)).unwrap_or_default();
    let per_out = w.get(1..).map_or(0.0, product);
    let bias = if node.input(2).is_some() { out } else { 0.0 };
    2.0 * out * per_out + bias
}

/// ConvTranspose: W is [C_in, C_out / group, k...]; each input element scatters into
/// C_out / group × kernel outputs.
pub fn conv_transpose_flops(g: &Graph, node: &Node) -> f64 {
    let out = numel(g, node.output(0));
    let inp = numel(g, node.input(0));
    let w = dims(g, node.input(1)).unwrap_or_default();
    let per_in = w.get(1..).map_or(0.0, product);
    let bias = if node.input(2).is_some() { out } else { 0.0 };
    2.0 * inp * per_in + bias
}
