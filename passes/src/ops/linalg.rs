//! Linear algebra: MatMul, Gemm, QLinearMatMul, Attention, RotaryEmbedding (and Einsum,
//! MatMulInteger: cost only). MatMul-class ops count 2 FLOPs per multiply-add.
//! Spec: https://onnx.ai/onnx/operators/onnx__MatMul.html,
//! https://onnx.ai/onnx/operators/onnx__Gemm.html,
//! https://onnx.ai/onnx/operators/onnx__Attention.html.
//!
//! Gradients of MatMul (batched, broadcast, rank-1 operands) and Gemm (every transA/transB,
//! broadcast bias). Saved: the two matrix inputs, never the output.

use super::cost::{dims, numel};
use super::ctx::{broadcast, dim_add, dim_div, dim_mul, OpCtx, OutInfo, RuleResult};
use crate::autodiff::{GradCtx, Grads};
use crate::error::RuleError;
use crate::ir::{Attribute, Dim, Graph, Node, Shape, ValueId};

// Shape and type rules.

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

// Gradient rules.

pub fn matmul_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dys[0].ok_or("no gradient for the output")?;
    let (a, b) = (c.x(0)?, c.x(1)?);
    let (ad, bd) = (c.dims(a)?, c.dims(b)?);
    // Promote rank-1 operands to matrices, as MatMul itself does.
    let a2 = if ad.len() == 1 {
        c.b.reshape(a, &[1, ad[0]])?
    } else {
        a
    };
    let b2 = if bd.len() == 1 {
        c.b.reshape(b, &[bd[0], 1])?
    } else {
        b
    };
    let a2d = c.dims(a2)?;
    let b2d = c.dims(b2)?;
    let out = crate::ops::linalg::matmul_shape(
        &crate::ir::known_shape(&a2d),
        &crate::ir::known_shape(&b2d),
    )
    .map_err(|e| e.0)?;
    let out_dims = crate::ir::static_dims(&out).ok_or("MatMul output shape unknown")?;
    let g2 = c.b.reshape(g, &out_dims)?;
    let ga = if c.need(0) {
        // (As a Gemm over flattened rows, Bᵀ would be read through the rewrite's hidden
        // reshapes, which copy folded weights for the whole backward: +23 MiB measured on
        // the 8-layer LLaMA. A MatMul with a transposed B is fused by ONNX Runtime instead.)
        let bt = c.b.transpose_last2(b2)?;
        let t = c.b.op("MatMul", &[g2, bt])?;
        let t = c.b.unbroadcast(t, &a2d)?;
        Some(c.b.reshape(t, &ad)?)
    } else {
        None
    };
    let gb = if c.need(1) && bd.len() == 2 && a2d.len() > 2 {
        // B is a matrix shared by every batch of A (a linear layer's weight): dB = Σᵢ Aᵢᵀ gᵢ
        // is one Gemm over A's flattened rows, with no transposed copy of A and no
        // [batch, K, N] product to reduce afterwards (-8 MiB measured on the 8-layer LLaMA).
        let (k, n) = (a2d[a2d.len() - 1], out_dims[out_dims.len() - 1]);
        let rows: i64 = a2d[..a2d.len() - 1].iter().product();
        let af = c.b.reshape(a2, &[rows, k])?;
        let gf = c.b.reshape(g2, &[rows, n])?;
        let t = c.b.node(
            "Gemm",
            &[af, gf],
            vec![Attribute::int("transA", 1), Attribute::int("transB", 0)],
        )?;
        Some(c.b.reshape(t, &bd)?)
    } else if c.need(1) {
        let at = c.b.transpose_last2(a2)?;
        let t = c.b.op("MatMul", &[at, g2])?;
        let t = c.b.unbroadcast(t, &b2d)?;
        Some(c.b.reshape(t, &bd)?)
    } else {
        None
    };
    Ok(vec![ga, gb])
}

/// Y = alpha * A' B' + beta * C with A' = A or Aᵀ, B' = B or Bᵀ.
pub fn gemm_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let g = dys[0].ok_or("no gradient for the output")?;
    let (a, b) = (c.x(0)?, c.x(1)?);
    let ta = c.node.attr_int("transA").unwrap_or(0) != 0;
    let tb = c.node.attr_int("transB").unwrap_or(0) != 0;
    let alpha = f64::from(c.node.attr_float("alpha").unwrap_or(1.0));
    let beta = f64::from(c.node.attr_float("beta").unwrap_or(1.0));
    let gemm = |c: &mut GradCtx, x: ValueId, y: ValueId, tx: bool, ty: bool| {
        c.b.node(
            "Gemm",
            &[x, y],
            vec![
                Attribute::int("transA", i64::from(tx)),
                Attribute::int("transB", i64::from(ty)),
                Attribute::float("alpha", alpha as f32),
            ],
        )
    };
    // dA' = alpha g B'ᵀ; dA = dA' or its transpose. Each case is one Gemm.
    let ga = if c.need(0) {
        Some(if ta {
            gemm(c, b, g, tb, true)?
        } else {
            gemm(c, g, b, false, !tb)?
        })
    } else {
        None
    };
    // dB' = alpha A'ᵀ g; dB = dB' or its transpose.
    let gb = if c.need(1) {
        Some(if tb {
            gemm(c, g, a, true, ta)?
        } else {
            gemm(c, a, g, !ta, false)?
        })
    } else {
        None
    };
    let gc = if c.need(2) {
        let cd = c.dims(c.x(2)?)?;
        let t = c.b.scale(g, beta)?;
        Some(c.b.unbroadcast(t, &cd)?)
    } else {
        None
    };
    Ok(vec![ga, gb, gc])
}

// Cost rules.

/// MatMul, MatMulInteger: 2·out·k.
pub fn matmul_flops(g: &Graph, node: &Node) -> f64 {
    let out = numel(g, node.output(0));
    let k = dims(g, node.input(0))
        .and_then(|d| d.last().copied())
        .unwrap_or(0);
    2.0 * out * k.max(0) as f64
}

/// Gemm: 2·out·k, plus the bias.
pub fn gemm_flops(g: &Graph, node: &Node) -> f64 {
    let out = numel(g, node.output(0));
    let a = dims(g, node.input(0)).unwrap_or_default();
    let trans_a = node.attr_int("transA").unwrap_or(0) != 0;
    let k = match (a.as_slice(), trans_a) {
        ([k, _], true) | ([_, k], false) => *k,
        _ => 0,
    };
    let bias = if node.input(2).is_some() { out } else { 0.0 };
    2.0 * out * k.max(0) as f64 + bias
}

/// Einsum: 2 × the product of every index's size (each distinct letter is one loop), for
/// equations without an ellipsis; else one operation per output element.
pub fn einsum_flops(g: &Graph, node: &Node) -> f64 {
    einsum_loops(g, node).unwrap_or_else(|| numel(g, node.output(0)))
}

fn einsum_loops(g: &Graph, node: &Node) -> Option<f64> {
    let eq = node.attr_string("equation")?;
    let lhs = eq.split("->").next()?;
    if lhs.contains("...") {
        return None;
    }
    let mut sizes: std::collections::BTreeMap<char, i64> = Default::default();
    for (term, v) in lhs.split(',').zip(&node.inputs) {
        let d = dims(g, *v)?;
        let letters: Vec<char> = term.trim().chars().collect();
        if letters.len() != d.len() {
            return None;
        }
        for (c, x) in letters.into_iter().zip(d) {
            sizes.insert(c, x);
        }
    }
    Some(2.0 * sizes.values().map(|&x| x.max(0) as f64).product::<f64>())
}
