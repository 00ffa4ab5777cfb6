//! Signal processing: DFT, STFT and the window generators (Blackman, Hann, Hamming,
//! MelWeightMatrix).
//! Spec: https://onnx.ai/onnx/operators/onnx__DFT.html,
//! https://onnx.ai/onnx/operators/onnx__STFT.html,
//! https://onnx.ai/onnx/operators/onnx__HannWindow.html.

use super::ctx::{dim_add, dim_div, OpCtx, OutInfo, RuleResult};
use crate::error::RuleError;
use crate::ir::{DType, Dim};

// Shape and type rules.

/// DFT(input [..., 1|2], dft_length?, axis?): the transformed axis becomes `dft_length`
/// (`dft_length / 2 + 1` for a one-sided forward transform); the last dim is 2 (complex),
/// or 1 for the one-sided inverse (real output). Before opset 20 `axis` is an attribute.
pub fn dft(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let s = c.shape(0)?;
    let r = s.len();
    if r < 2 {
        return Err(RuleError("DFT input must have rank >= 2".into()));
    }
    let axis = if c.opset >= 20 {
        match c.const_ints(2).as_deref() {
            Some([a]) => *a,
            Some(_) => return Err(RuleError("DFT axis must be a scalar".into())),
            None if c.has_input(2) => {
                let mut out = vec![Dim::Unknown; r];
                out[r - 1] = complex_dim(c);
                return Ok(vec![OutInfo::new(dt, out)]);
            }
            None => -2,
        }
    } else {
        c.attr_int("axis", 1)
    };
    // The last dim holds (real, imaginary): axes are [-r, -2] or [0, r - 2].
    let axis = if axis < 0 { axis + r as i64 } else { axis };
    if !(0..r as i64 - 1).contains(&axis) {
        return Err(RuleError(format!(
            "DFT axis {axis} is out of range for rank {r}"
        )));
    }
    let axis = axis as usize;
    let onesided = c.attr_int("onesided", 0) != 0;
    let inverse = c.attr_int("inverse", 0) != 0;
    let length = match c.const_ints(1).as_deref() {
        Some([n]) => Dim::Known(*n),
        Some(_) => return Err(RuleError("DFT dft_length must be a scalar".into())),
        None if c.has_input(1) => Dim::Unknown,
        None if onesided && inverse => s[axis]
            .known()
            .map_or(Dim::Unknown, |d| Dim::Known((d - 1).saturating_mul(2))),
        None => s[axis].clone(),
    };
    let mut out = s.clone();
    out[axis] = if onesided && !inverse {
        dim_add(&dim_div(&length, 2), &Dim::Known(1))
    } else {
        length
    };
    out[r - 1] = complex_dim(c);
    Ok(vec![OutInfo::new(dt, out)])
}

/// DFT's last output dim: 1 (real) for the one-sided inverse, else 2 (complex).
fn complex_dim(c: &OpCtx) -> Dim {
    let real = c.attr_int("onesided", 0) != 0 && c.attr_int("inverse", 0) != 0;
    Dim::Known(if real { 1 } else { 2 })
}

/// STFT(signal [B, L, 1|2], frame_step, window?, frame_length?) -> [B, frames, bins, 2] with
/// frames = (L - frame_length) / frame_step + 1 and bins = frame_length / 2 + 1 when
/// one-sided (the default), else frame_length.
pub fn stft(c: &OpCtx) -> RuleResult {
    let s = c.shape(0)?;
    if s.len() != 3 {
        return Err(RuleError("STFT signal must be 3-D".into()));
    }
    let scalar = |i: usize| match c.const_ints(i).as_deref() {
        Some([v]) => Some(*v),
        _ => None,
    };
    let frame_length = if c.has_input(3) {
        scalar(3).map_or(Dim::Unknown, Dim::Known)
    } else if let Some(w) = c.shape_opt(2) {
        w.first().cloned().unwrap_or(Dim::Unknown)
    } else {
        s[1].clone()
    };
    let frames = match (s[1].known(), frame_length.known(), scalar(1)) {
        (Some(l), Some(f), Some(step)) if step > 0 => l
            .checked_sub(f)
            .map_or(Dim::Unknown, |x| Dim::Known(x / step + 1)),
        _ => Dim::Unknown,
    };
    let bins = if c.attr_int("onesided", 1) != 0 {
        dim_add(&dim_div(&frame_length, 2), &Dim::Known(1))
    } else {
        frame_length
    };
    Ok(vec![OutInfo::new(
        c.dtype(0)?,
        vec![s[0].clone(), frames, bins, Dim::Known(2)],
    )])
}

/// The scalar value of integer input `i`, if constant.
fn const_scalar(c: &OpCtx, i: usize) -> Option<i64> {
    match c.const_ints(i).as_deref() {
        Some([v]) => Some(*v),
        _ => None,
    }
}

fn output_datatype(c: &OpCtx) -> Result<DType, RuleError> {
    Ok(super::ctx::dtype_attr(c, "output_datatype")?.unwrap_or(DType::Float))
}

/// BlackmanWindow, HannWindow, HammingWindow(size) -> [size] of `output_datatype`.
pub fn window(c: &OpCtx) -> RuleResult {
    let n = const_scalar(c, 0).map_or(Dim::Unknown, Dim::Known);
    Ok(vec![OutInfo::new(output_datatype(c)?, vec![n])])
}

/// MelWeightMatrix(num_mel_bins, dft_length, ...) -> [dft_length / 2 + 1, num_mel_bins].
pub fn mel_weight_matrix(c: &OpCtx) -> RuleResult {
    let bins = const_scalar(c, 1).map_or(Dim::Unknown, |n| Dim::Known(n / 2 + 1));
    let mel = const_scalar(c, 0).map_or(Dim::Unknown, Dim::Known);
    Ok(vec![OutInfo::new(output_datatype(c)?, vec![bins, mel])])
}
