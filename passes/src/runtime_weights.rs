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
use crate::ir::{DType, Graph, Node, NodeId, Patch, Region, ValueId};
use crate::pass::{Manager, Pass, PassError, Unit};
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
/// at run time (the pins run first; `info` holds for the result too). `None` when there is nothing to change: no weight is constant (parameters that
/// are graph inputs are not), or the graph has no data input to pin on. The pass
/// `runtime-weights` on a copy of `g`.
pub fn read_weights_at_run_time(g: &Graph, info: &TrainingInfo) -> Option<(Graph, RuntimeWeights)> {
    let model = crate::ir::Model {
        graph: g.clone(),
        ..Default::default()
    };
    let mut unit = Unit::training(model, info.clone());
    unit.runtime_weights = true;
    // The pass itself cannot fail; a broken IR (debug builds) is a bug.
    if let Err(e) = Manager::new().run(&mut unit, "runtime-weights", "runtime-weights") {
        panic!("{e}");
    }
    let report = unit.stats.runtime_weights?;
    Some((unit.model.graph, report))
}

/// The `runtime-weights` pass (run only when a plan asks for it).
pub struct RuntimeWeightsPass;

impl Pass for RuntimeWeightsPass {
    fn name(&self) -> &'static str {
        "runtime-weights"
    }
    fn summary(&self) -> &'static str {
        "the forward reads constant weights through a pin, so ONNX Runtime neither folds nor prepacks them"
    }
    fn enabled(&self, unit: &Unit<'_>) -> bool {
        unit.runtime_weights
    }
    fn run(&self, unit: &mut Unit<'_>) -> Result<(), PassError> {
        unit.info_for(self.name())?;
        unit.stats.runtime_weights = pin_weights(&mut unit.model.graph);
        if unit.stats.runtime_weights.is_some() {
            unit.names = None;
        }
        Ok(())
    }
}

/// Pins the forward's constant weights in place; `None` (and `g` untouched) when there is
/// nothing to change.
fn pin_weights(g: &mut Graph) -> Option<RuntimeWeights> {
    let forward = g.forward_nodes();
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
    // Only weights of static dims can be pinned; none of them, nothing changes (checked
    // first: the pins' values go into `g`).
    weights.retain(|&w| {
        g.value(w)
            .shape
            .as_ref()
            .and_then(|s| crate::ir::static_dims(s))
            .is_some()
    });
    if weights.is_empty() {
        return None;
    }
    let mut pinner = crate::pin::Pinner::new(g).made_by("runtime-weights", Region::Forward);
    // The pins (their nodes and the values the pinner queues) go first, every forward
    // reader of a weight reads its pin: one patch.
    let mut patch = Patch::new(g);
    let mut pins: Vec<Node> = Vec::new();
    let dep = pinner.late_zero(g, &mut patch, source, &mut pins)?;
    let mut pinned: HashMap<ValueId, ValueId> = HashMap::new();
    let mut report = RuntimeWeights::default();
    for &w in &weights {
        if let Some(p) = pinner.pin(g, &mut patch, w, dep, &mut pins) {
            pinned.insert(w, p);
            report.weights += 1;
            report.bytes += g.value_bytes(w).unwrap_or(0);
        }
    }
    for (k, n) in g.forward_nodes().iter().enumerate() {
        for (j, i) in n.inputs.iter().enumerate() {
            if let Some(&p) = i.and_then(|i| pinned.get(&i)) {
                patch.set_input(NodeId(k as u32), j, Some(p));
            }
        }
    }
    patch.insert_all_before(NodeId(0), pins);
    patch.apply(g);
    Some(report)
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
        let (g, report) = read_weights_at_run_time(&m.graph, &info).unwrap();
        crate::ir::verify(&g).unwrap();
        // Per layer: the fused QKV, projection and two MLP matrices; embeddings and the head.
        assert!(report.weights >= 4, "{report:?}");
        let (before, after) = (m.graph.backward_start(), g.backward_start());
        assert!(after > before);
        // Only the pins (the first nodes, in the forward) read constant float matrices; the
        // backward is as it was.
        let pins = after - before;
        assert!(g.nodes[..pins]
            .iter()
            .all(|n| n.origin.is_defence_of("runtime-weights")
                && n.origin.region() == Region::Forward));
        for n in &g.nodes[pins..after] {
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
        assert_eq!(g.backward_nodes(), m.graph.backward_nodes());
    }
}
