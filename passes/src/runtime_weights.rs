//! Weights read at run time. ONNX Runtime treats a constant initializer as a value it may
//! transform once, when the session is created: it folds `Transpose(W)` into a second
//! initializer and its MatMul, Gemm and Conv kernels keep a prepacked copy of their constant
//! weights, both alive for the whole session. On a transformer that is about as much memory
//! again as the weights themselves (docs/benchmarks-deep.md: LLaMA-8L holds 25 MB of folded
//! transposes and 24 MB of prepacked copies beside 26 MB of weights).
//!
//! This pass makes the forward read each such weight through a pin on the step's data input
//! (`Reshape(W, shape(W) + 0 * int64(x.flat[0]))`, [`crate::pin`]): the same bytes, read in
//! place, but no longer constant, so nothing is folded or prepacked. The transposes are then
//! computed in each step (kept for the backward where it reads them: recomputing them there
//! measured 15 MiB higher on LLaMA-8L than simulated, docs/memory-model.md) and MatMul packs
//! its operand per call. It trades that time for memory, so the planner uses it only
//! when a budget cannot be met without it.

use crate::autodiff::TrainingInfo;
use crate::ir::{DType, Graph, Node, ValueId};
use std::collections::HashMap;

/// What [`read_weights_at_run_time`] changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeWeights {
    /// Weights the forward now reads through a pin.
    pub weights: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// The training graph `g` with its forward reading every constant float weight of rank ≥ 2
/// at run time, and `info` for it (the pins run first: `forward_end` moves by their
/// number). `None` when there is nothing to change: no weight is constant (parameters that
/// are graph inputs are not), or the graph has no data input to pin on.
pub fn read_weights_at_run_time(
    g: &Graph,
    info: &TrainingInfo,
) -> Option<(Graph, TrainingInfo, RuntimeWeights)> {
    let forward = &g.nodes[..info.forward_end.min(g.nodes.len())];
    let is_input = |v: ValueId| g.inputs.contains(&v);
    let constant_weight = |v: ValueId| {
        let val = g.value(v);
        val.initializer.is_some()
            && !is_input(v)
            && val.dtype.is_some_and(DType::is_float)
            && val.shape.as_ref().is_some_and(|s| s.len() >= 2)
    };
    let mut weights: Vec<ValueId> = Vec::new();
    for n in forward {
        for v in n.inputs.iter().flatten() {
            if constant_weight(*v) && !weights.contains(v) {
                weights.push(*v);
            }
        }
    }
    // The data a step cannot run without: a graph input that is not an initializer.
    let source = g.inputs.iter().copied().find(|&v| {
        let val = g.value(v);
        val.initializer.is_none()
            && val
                .shape
                .as_ref()
                .and_then(|s| crate::ir::static_numel(s))
                .is_some_and(|n| n > 0)
            && val.dtype.is_some_and(|d| d != DType::String)
    })?;
    if weights.is_empty() {
        return None;
    }
    let mut out = g.clone();
    let mut pinner = crate::pin::Pinner::new(g);
    let mut pins: Vec<Node> = Vec::new();
    let dep = pinner.late_zero(&mut out, source, &mut pins)?;
    let mut pinned: HashMap<ValueId, ValueId> = HashMap::new();
    let mut report = RuntimeWeights::default();
    for &w in &weights {
        if let Some(p) = pinner.pin(&mut out, w, dep, &mut pins) {
            pinned.insert(w, p);
            report.weights += 1;
            report.bytes += g.value_bytes(w).unwrap_or(0);
        }
    }
    if pinned.is_empty() {
        return None;
    }
    let forward_end = info.forward_end.min(out.nodes.len());
    for n in &mut out.nodes[..forward_end] {
        for i in n.inputs.iter_mut().flatten() {
            if let Some(&p) = pinned.get(i) {
                *i = p;
            }
        }
    }
    let inserted = pins.len();
    let rest = std::mem::take(&mut out.nodes);
    for v in &mut out.values {
        v.producer = None;
    }
    for n in pins.into_iter().chain(rest) {
        out.add_node(n);
    }
    let mut info = info.clone();
    info.forward_end += inserted;
    Some((out, info, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::{build_training_graph, TrainOptions};

    fn tiny_transformer() -> (crate::ir::Model, TrainingInfo) {
        let m = crate::synth::transformer(1, 8, 2, 4, 2, 10);
        let opts: TrainOptions = crate::synth::cross_entropy();
        build_training_graph(&m, &opts).unwrap()
    }

    #[test]
    fn forward_reads_each_weight_through_one_pin() {
        let (m, info) = tiny_transformer();
        let (g, info2, report) = read_weights_at_run_time(&m.graph, &info).unwrap();
        crate::ir::verify(&g).unwrap();
        // Per layer: the fused QKV, projection and two MLP matrices; embeddings and the head.
        assert!(report.weights >= 4, "{report:?}");
        assert!(info2.forward_end > info.forward_end);
        // Only the pins (the first nodes) read constant float matrices; the backward is as
        // it was.
        let pins = info2.forward_end - info.forward_end;
        for n in &g.nodes[pins..info2.forward_end] {
            for v in n.inputs.iter().flatten() {
                let val = g.value(*v);
                let matrix = val.shape.as_ref().is_some_and(|s| s.len() >= 2);
                assert!(
                    !(val.initializer.is_some() && matrix && val.dtype == Some(DType::Float)),
                    "{} still reads {}",
                    n.name,
                    val.name
                );
            }
        }
        assert_eq!(
            &g.nodes[info2.forward_end..],
            &m.graph.nodes[info.forward_end..]
        );
    }
}
