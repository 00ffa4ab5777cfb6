//! MatMul (numpy semantics, batched and broadcast), QLinearMatMul, Gemm, Attention and
//! the Fourier transforms (DFT, STFT).
//! Spec: https://onnx.ai/onnx/operators/ (opsets 13–24): onnx__MatMul.html,
//! onnx__QLinearMatMul.html, onnx__Gemm.html, onnx__Attention.html, onnx__DFT.html,
//! onnx__STFT.html.

use super::ctx::{broadcast, dim_add, dim_div, dim_mul, OpCtx, OutInfo, RuleResult};
use crate::error::RuleError;
use crate::ir::{Dim, Shape};

fn check_eq(a: &Dim, b: &Dim, what: &str) -> Result<(), RuleError> {
    if let (Dim::Known(x), Dim::Known(y)) = (a, b) {
        if x != y {
            return Err(RuleError(format!("{what}: {x} vs {y}")));
        }
    }
    Ok(())
}

pub fn matmul_shape(a: &Shape, b: &Shape) -> Result<Shape, RuleError> {
    if a.is_empty() || b.is_empty() {
        return Err(RuleError("MatMul inputs must have rank >= 1".into()));
    }
    let a2: Shape = if a.len() == 1 {
        vec![Dim::Known(1), a[0].clone()]
    } else {
        a.clone()
    };
    let b2: Shape = if b.len() == 1 {
        vec![b[0].clone(), Dim::Known(1)]
    } else {
        b.clone()
    };
    let (m, k1) = (&a2[a2.len() - 2], &a2[a2.len() - 1]);
    let (k2, n) = (&b2[b2.len() - 2], &b2[b2.len() - 1]);
    check_eq(k1, k2, "MatMul inner dimensions differ")?;
    let batch = broadcast(&[&a2[..a2.len() - 2].to_vec(), &b2[..b2.len() - 2].to_vec()])?;
    let mut out = batch;
    if a.len() > 1 {
        out.push(m.clone());
    }
    if b.len() > 1 {
        out.push(n.clone());
    }
    Ok(out)
}

pub fn matmul(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    Ok(vec![OutInfo::new(
        dt,
        matmul_shape(c.shape(0)?, c.shape(1)?)?,
    )])
}

pub fn gemm(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let (a, b) = (c.shape(0)?, c.shape(1)?);
    if a.len() != 2 || b.len() != 2 {
        return Err(RuleError("Gemm inputs must be 2-D".into()));
    }
    let ta = c.attr_int("transA", 0) != 0;
    let tb = c.attr_int("transB", 0) != 0;
    let (m, k1) = if ta { (&a[1], &a[0]) } else { (&a[0], &a[1]) };
    let (k2, n) = if tb { (&b[1], &b[0]) } else { (&b[0], &b[1]) };
    check_eq(k1, k2, "Gemm inner dimensions differ")?;
    let out = vec![m.clone(), n.clone()];
    if let Some(cs) = c.shape_opt(2) {
        broadcast(&[&out, cs])?;
    }
    Ok(vec![OutInfo::new(dt, out)])
}

/// QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp): MatMul's shape, the
/// element type of y_zero_point.
pub fn qlinear_matmul(c: &OpCtx) -> RuleResult {
    Ok(vec![OutInfo::new(
        c.dtype(7)?,
        matmul_shape(c.shape(0)?, c.shape(3)?)?,
    )])
}

/// Attention (opset 23): Q [B, Hq, Sq, E] / K [B, Hkv, Skv, E] / V [B, Hkv, Skv, Ev], or
/// 3-D [B, S, H*E] with `q_num_heads` / `kv_num_heads`. Outputs: Y like Q with V's head
/// size; present_key / present_value [B, Hkv, P+Skv, E / Ev] after past_key / past_value
/// [B, Hkv, P, _]; qk_matmul_output [B, Hq, Sq, P+Skv].
pub fn attention(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let v_dt = c.dtype(2)?;
    let (q, k, v) = (c.shape(0)?, c.shape(1)?, c.shape(2)?);
    if q.len() != k.len() || q.len() != v.len() {
        return Err(RuleError("Attention Q, K and V differ in rank".into()));
    }
    // Every input as [batch, heads, seq, head_size].
    let heads = |s: &Shape, attr: &str| -> Result<Shape, RuleError> {
        match s.len() {
            4 => Ok(s.clone()),
            3 => {
                let h = c
                    .node
                    .attr_int(attr)
                    .filter(|&h| h > 0)
                    .ok_or_else(|| RuleError(format!("3-D Attention needs '{attr}'")))?;
                Ok(vec![
                    s[0].clone(),
                    Dim::Known(h),
                    s[1].clone(),
                    dim_div(&s[2], h),
                ])
            }
            r => Err(RuleError(format!(
                "Attention inputs must be 3-D or 4-D, not {r}-D"
            ))),
        }
    };
    let (q4, k4, v4) = (
        heads(q, "q_num_heads")?,
        heads(k, "kv_num_heads")?,
        heads(v, "kv_num_heads")?,
    );
    check_eq(&q4[3], &k4[3], "Attention Q and K head sizes differ")?;
    let past = match c.shape_opt(4) {
        Some(p) if p.len() == 4 => p[2].clone(),
        Some(_) => return Err(RuleError("Attention past_key must be 4-D".into())),
        None => Dim::Known(0),
    };
    let total = dim_add(&past, &k4[2]);
    let y = if q.len() == 4 {
        vec![q4[0].clone(), q4[1].clone(), q4[2].clone(), v4[3].clone()]
    } else {
        vec![q4[0].clone(), q4[2].clone(), dim_mul(&q4[1], &v4[3])]
    };
    let mut out = vec![OutInfo::new(dt, y)];
    let n = c.num_outputs();
    if n > 1 {
        let kv = |head: &Dim| vec![k4[0].clone(), k4[1].clone(), total.clone(), head.clone()];
        out.push(OutInfo::new(dt, kv(&k4[3])));
        if n > 2 {
            out.push(OutInfo::new(v_dt, kv(&v4[3])));
        }
        if n > 3 {
            out.push(OutInfo::new(
                dt,
                vec![q4[0].clone(), q4[1].clone(), q4[2].clone(), total.clone()],
            ));
        }
    }
    Ok(out)
}

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
