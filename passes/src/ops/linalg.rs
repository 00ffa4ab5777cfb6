//! MatMul (numpy semantics, batched and broadcast) and Gemm.
//! Spec: https://onnx.ai/onnx/operators/onnx__MatMul.html, onnx__Gemm.html (opsets 13–24).

use super::ctx::{broadcast, OpCtx, OutInfo, RuleResult};
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
