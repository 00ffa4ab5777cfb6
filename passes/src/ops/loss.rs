//! Loss ops: NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss (shape rules; the
//! training graph's own loss is built by `autodiff::loss`).
//! Spec: https://onnx.ai/onnx/operators/onnx__NegativeLogLikelihoodLoss.html,
//! https://onnx.ai/onnx/operators/onnx__SoftmaxCrossEntropyLoss.html.

use super::ctx::{OpCtx, OutInfo, RuleResult};
use crate::error::RuleError;

// Shape and type rules.

/// NegativeLogLikelihoodLoss(input [N, C, d...], target [N, d...]) and
/// SoftmaxCrossEntropyLoss(scores, labels): the loss has the target's shape with
/// `reduction="none"`, else it is a scalar; SoftmaxCrossEntropyLoss's optional second
/// output (log_prob) is like the scores.
pub fn loss(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    let scores = c.shape(0)?;
    let target = c.shape(1)?;
    if scores.len() < 2 || target.len() + 1 != scores.len() {
        return Err(RuleError(format!(
            "{} input of rank {} needs a target of rank {}",
            c.node.op_type,
            scores.len(),
            scores.len().saturating_sub(1)
        )));
    }
    let reduction = c
        .node
        .attr_string("reduction")
        .unwrap_or_else(|| "mean".into());
    let loss = match reduction.as_str() {
        "none" => target.clone(),
        "sum" | "mean" => vec![],
        other => return Err(RuleError(format!("unknown reduction '{other}'"))),
    };
    let mut out = vec![OutInfo::new(dt, loss)];
    if c.num_outputs() > 1 {
        out.push(OutInfo::new(dt, scores.clone()));
    }
    Ok(out)
}
