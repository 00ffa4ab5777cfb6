//! Convolution and pooling: Conv, ConvTranspose, MaxPool, AveragePool, LpPool,
//! GlobalAveragePool, GlobalMaxPool. Spec: https://onnx.ai/onnx/operators/ (opsets 13–24).

use super::ctx::{OpCtx, OutInfo, RuleResult};
use crate::error::RuleError;
use crate::ir::{DType, Dim, Shape};

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
    if w.strides.iter().chain(&w.dilations).any(|&x| x <= 0) || w.pads.iter().any(|&p| p < 0) {
        return Err(RuleError(
            "strides and dilations must be positive, pads >= 0".into(),
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
                "SAME_UPPER" | "SAME_LOWER" => Dim::Known((d + s - 1) / s),
                _ => {
                    let ek = (w.kernel[i] - 1) * w.dilations[i] + 1;
                    let span = d + w.pads[i] + w.pads[i + n] - ek;
                    if span < 0 {
                        return Dim::Known(0);
                    }
                    let o = if w.ceil_mode {
                        let o = (span + s - 1) / s + 1;
                        // The last window must start inside the input or left padding.
                        if (o - 1) * s >= d + w.pads[i] {
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
        if cin != wc * group {
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
    let n = x.len().saturating_sub(2);
    let kernel: Vec<i64> = match c.attr_ints("kernel_shape") {
        Some(k) => k,
        None => wsh[2..].iter().map(|d| d.known().unwrap_or(0)).collect(),
    };
    let group = c.attr_int("group", 1);
    let cout = wsh[1]
        .known()
        .map_or(Dim::Unknown, |w| Dim::Known(w * group));
    let mut out = vec![x[0].clone(), cout];
    if let Some(os) = c.attr_ints("output_shape") {
        out.extend(os.iter().map(|&d| Dim::Known(d)));
        return Ok(vec![OutInfo::new(dt, out)]);
    }
    let w = window(c, kernel)?;
    let opad = c.attr_ints("output_padding").unwrap_or_else(|| vec![0; n]);
    for i in 0..n {
        out.push(match x[2 + i].known() {
            Some(d) => Dim::Known(
                w.strides[i] * (d - 1) + opad[i] + (w.kernel[i] - 1) * w.dilations[i] + 1
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
