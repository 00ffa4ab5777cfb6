//! Which forward values the backward reads: the activations a training step keeps alive
//! without recomputation.

use crate::ir::{Graph, ValueId};

/// Forward values (node outputs and non-parameter graph inputs) read by a backward node, in
/// value-id order. Parameters and constants are excluded: they live for the whole step.
pub fn saved_activations(g: &Graph) -> Vec<ValueId> {
    let mut saved = vec![false; g.values.len()];
    // (Node ids against the backward's start: the planner calls this per plan it scores.)
    let backward_start = g.backward_start();
    for n in &g.nodes[backward_start..] {
        for &v in n.inputs.iter().flatten() {
            let val = g.value(v);
            let forward_node = val.producer.is_some_and(|p| p.index() < backward_start);
            if forward_node && val.constant.is_none() {
                saved[v.index()] = true;
            }
        }
    }
    g.value_ids().filter(|v| saved[v.index()]).collect()
}
