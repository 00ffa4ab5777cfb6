//! Gradients of Conv (groups and depthwise, strides, pads, dilations, auto_pad),
//! ConvTranspose (explicit pads, output_padding),
//! MaxPool (through the node's Indices output, added when missing), AveragePool and
//! GlobalAveragePool. Spec: https://onnx.ai/onnx/operators/onnx__Conv.html and siblings.
//!
//! Conv: dX = ConvTranspose(dY, W) with the forward's geometry and an output_padding that
//! restores X's size; dW = Conv(Xᵀ, dYᵀ) with stride and dilation swapped (grouped by
//! folding groups into the batch axis); dB = Σ dY. Saves X and W. ConvTranspose, the
//! adjoint of Conv: dX = Conv(dY, W), dW = the same weight gradient with X and dY swapped;
//! saves X and W. MaxPool saves its Indices (int64); the average pools save nothing.

use super::{GradCtx, GradResult};
use crate::ir::{Attribute, DType, Tensor, ValueId};

type Grads = GradResult<Vec<Option<ValueId>>>;

struct Geometry {
    kernel: Vec<i64>,
    strides: Vec<i64>,
    dilations: Vec<i64>,
    /// begins then ends
    pads: Vec<i64>,
}

fn geometry(c: &GradCtx, spatial_in: &[i64], kernel: Vec<i64>) -> GradResult<Geometry> {
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

fn ints(name: &str, v: &[i64]) -> Attribute {
    Attribute::ints(name, v.to_vec())
}

/// ConvTranspose of `g` with `w` back to spatial size `spatial`, undoing a forward window.
fn transpose_back(
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

pub fn conv(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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
pub fn conv_transpose(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
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

pub fn max_pool(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dys[0].ok_or("no gradient for the output")?;
    let x = c.x(0)?;
    let xd = c.dims(x)?;
    if c.node.attr_int("storage_order").unwrap_or(0) != 0 {
        return Err("MaxPool with storage_order=1 is not differentiated".into());
    }
    // The indices of the maxima: the node's second output, added to it when absent.
    let idx = match c.node.output(1) {
        Some(i) => i,
        None => {
            let name = c.b.fresh("maxpool_indices");
            let i = c.b.graph.new_value(name);
            let yv = c.b.graph.value(c.y(0)?).clone();
            let v = c.b.graph.value_mut(i);
            v.dtype = Some(DType::Int64);
            v.shape = yv.shape;
            v.producer = Some(c.node_id);
            let fw = c.b.graph.node_mut(c.node_id);
            fw.outputs.truncate(1);
            fw.outputs.push(Some(i));
            i
        }
    };
    let total: i64 = xd.iter().product();
    let flat_i = c.b.reshape(idx, &[c.dims(idx)?.iter().product::<i64>()])?;
    let flat_g = c.b.reshape(g, &[c.dims(g)?.iter().product::<i64>()])?;
    let z = c.b.zeros(c.b.dtype(g)?, &[total])?;
    let s = c.b.node(
        "ScatterElements",
        &[z, flat_i, flat_g],
        vec![
            Attribute::int("axis", 0),
            Attribute::string("reduction", "add"),
        ],
    )?;
    Ok(vec![Some(c.b.reshape(s, &xd)?)])
}

pub fn average_pool(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dys[0].ok_or("no gradient for the output")?;
    let x = c.x(0)?;
    let (xd, gd) = (c.dims(x)?, c.dims(g)?);
    if c.node.attr_int("ceil_mode").unwrap_or(0) != 0 {
        return Err("AveragePool with ceil_mode=1 is not differentiated yet".into());
    }
    let kernel = c
        .node
        .attr_ints("kernel_shape")
        .ok_or("AveragePool without kernel_shape")?
        .to_vec();
    let n_sp = kernel.len();
    let geo = geometry(c, &xd[2..], kernel.clone())?;
    let dt = c.b.dtype(g)?;
    let include_pad = c.node.attr_int("count_include_pad").unwrap_or(0) != 0;
    let ones_k = |c: &mut GradCtx, lead: [i64; 2]| -> GradResult<ValueId> {
        let mut d = lead.to_vec();
        d.extend(&kernel);
        let n: i64 = d.iter().product();
        let t = Tensor::from_f64_as(dt, d, &vec![1.0; n as usize]).ok_or("unsupported dtype")?;
        Ok(c.b.constant(t))
    };
    let scaled = if include_pad || geo.pads.iter().all(|&p| p == 0) {
        let k: i64 = kernel.iter().product();
        c.b.scale(g, 1.0 / k as f64)?
    } else {
        // Window sizes without padding: a Conv of ones over ones with the same geometry.
        let mut od = vec![1, 1];
        od.extend(&xd[2..]);
        let n: i64 = od.iter().product();
        let ones = c.b.constant(
            Tensor::from_f64_as(dt, od, &vec![1.0; n as usize]).ok_or("unsupported dtype")?,
        );
        let wk = ones_k(c, [1, 1])?;
        let cnt = c.b.node(
            "Conv",
            &[ones, wk],
            vec![
                ints("strides", &geo.strides),
                ints("dilations", &geo.dilations),
                ints("pads", &geo.pads),
            ],
        )?;
        c.b.op("Div", &[g, cnt])?
    };
    let channels = xd[1];
    let w = ones_k(c, [channels, 1])?;
    debug_assert_eq!(n_sp, xd.len() - 2);
    Ok(vec![Some(transpose_back(
        c,
        scaled,
        w,
        &geo,
        &xd[2..],
        &gd[2..],
        channels,
    )?)])
}

pub fn global_average_pool(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dys[0].ok_or("no gradient for the output")?;
    let xd = c.dims(c.x(0)?)?;
    let n: i64 = xd[2..].iter().product();
    let shape = c.b.const_i64(&xd);
    let e = c.b.op("Expand", &[g, shape])?;
    Ok(vec![Some(c.b.scale(e, 1.0 / n as f64)?)])
}
