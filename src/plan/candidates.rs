//! Recompute candidates: forward activations the backward reads, with their producers'
//! costs and the sources a recompute needs.

use onnx_ac_passes::autodiff::{saved_activations, TrainingInfo};
use onnx_ac_passes::ir::{Graph, ValueId};
use onnx_ac_passes::recompute::not_recomputable;
use std::collections::HashSet;

/// Saved activations that may be recomputed (not random, not opaque, not folded).
pub fn candidates(g: &Graph, info: &TrainingInfo) -> Vec<ValueId> {
    saved_activations(g, info)
        .into_iter()
        .filter(|&v| not_recomputable(g, info, v).is_none())
        .filter(|&v| g.value_bytes(v).unwrap_or(0) > 0)
        .collect()
}

/// Seconds to recompute `v` when the values in `dropped` are not kept: its producer plus,
/// recursively, the producers of dropped inputs (each node once).
pub fn recompute_time(
    g: &Graph,
    v: ValueId,
    dropped: &HashSet<ValueId>,
    cost: super::NodeCost,
) -> f64 {
    let mut seen = HashSet::new();
    let mut stack = vec![v];
    let mut total = 0.0;
    while let Some(x) = stack.pop() {
        let Some(p) = g.value(x).producer else {
            continue;
        };
        if !seen.insert(p) {
            continue;
        }
        total += cost(g, p);
        for i in g.node(p).inputs.iter().flatten() {
            if dropped.contains(i) {
                stack.push(*i);
            }
        }
    }
    total
}
