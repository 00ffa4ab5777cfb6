//! Fixed policies for comparison.
//!
//! - `none`: keep everything.
//! - `selective` (Megatron-style, Korthikanti et al. 2022): recompute the attention core —
//!   from the score MatMul (Q·Kᵀ) through scaling, masking, Softmax and dropout, up to but
//!   not including the probabilities·V MatMul.
//! - `full`: keep only each layer's input. Layer boundaries come from the graph's
//!   structure: a forward activation is a boundary when no other activation that carries a
//!   gradient is alive across it (produced before it, read after it) — the points where a
//!   sequential network's state is a single tensor, such as the residual stream between
//!   transformer sub-blocks — and it is read by a node with a trainable parameter (the
//!   layer's first op: a LayerNorm, MatMul, Gemm or Conv), so the cut points inside a chain
//!   of activations are not boundaries. Values that depend only on graph inputs (attention masks,
//!   position ids) are kept: they cost no parameter work and most are not float.

use super::candidates::candidates;
use super::{PlanError, PlanInput, Planner, RecomputePlan};
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, NodeId, ValueId};
use std::collections::HashSet;

pub enum Preset {
    None,
    Selective,
    Full,
}

impl Planner for Preset {
    fn name(&self) -> &'static str {
        match self {
            Preset::None => "none",
            Preset::Selective => "selective",
            Preset::Full => "full",
        }
    }

    fn plan(&self, input: &PlanInput) -> Result<RecomputePlan, PlanError> {
        let (g, info) = (input.graph, input.info);
        let values = match self {
            Preset::None => Vec::new(),
            Preset::Selective => attention_core(g, info),
            Preset::Full => full(g, info),
        };
        Ok(RecomputePlan::new(
            self.name(),
            input.budget_bytes,
            g,
            values,
        ))
    }
}

/// Forward values that depend on a trainable parameter.
fn param_dependent(g: &Graph, info: &TrainingInfo) -> Vec<bool> {
    let mut dep = vec![false; g.values.len()];
    for &p in &info.params {
        dep[p.index()] = true;
    }
    for n in &g.nodes[..info.forward_end] {
        if n.inputs.iter().flatten().any(|i| dep[i.index()]) {
            for o in n.outputs.iter().flatten() {
                dep[o.index()] = true;
            }
        }
    }
    dep
}

fn full(g: &Graph, info: &TrainingInfo) -> Vec<ValueId> {
    let dep = param_dependent(g, info);
    let fe = info.forward_end;
    // For each forward activation: produced at p, last forward read at l.
    let mut last_read = vec![None::<usize>; g.values.len()];
    for (k, n) in g.nodes[..fe].iter().enumerate() {
        for i in n.inputs.iter().flatten() {
            last_read[i.index()] = Some(k);
        }
    }
    // crossing[k] = number of dependent activations produced before k and read after k.
    let mut delta = vec![0i64; fe + 1];
    for (k, n) in g.nodes[..fe].iter().enumerate() {
        for o in n.outputs.iter().flatten() {
            if !dep[o.index()] || g.value(*o).constant.is_some() {
                continue;
            }
            if let Some(l) = last_read[o.index()] {
                if l > k + 1 {
                    delta[k + 1] += 1;
                    delta[l] -= 1;
                }
            }
        }
    }
    let params: HashSet<ValueId> = info.params.iter().copied().collect();
    let consumers = g.consumers();
    let feeds_layer = |v: ValueId| {
        consumers[v.index()].iter().any(|c| {
            c.index() < fe
                && g.node(*c)
                    .inputs
                    .iter()
                    .flatten()
                    .any(|i| params.contains(i))
        })
    };
    let mut boundary = HashSet::new();
    let mut crossing = 0i64;
    for (k, n) in g.nodes[..fe].iter().enumerate() {
        crossing += delta[k];
        // The node's output is a boundary if nothing else crosses the step after it.
        if crossing + delta[k + 1] <= 1 {
            for o in n.outputs.iter().flatten() {
                if feeds_layer(*o) {
                    boundary.insert(*o);
                }
            }
        }
    }
    candidates(g, info)
        .into_iter()
        .filter(|v| dep[v.index()] && !boundary.contains(v))
        .collect()
}

fn producer(g: &Graph, v: ValueId) -> Option<NodeId> {
    g.value(v).producer
}

/// Walks back from each forward Softmax through elementwise ops to a MatMul of two
/// activations (the scores), and forward through Dropout/Cast to a MatMul (probs·V).
fn attention_core(g: &Graph, info: &TrainingInfo) -> Vec<ValueId> {
    let dep = param_dependent(g, info);
    let consumers = g.consumers();
    let passthrough = |op: &str| {
        matches!(
            op,
            "Add" | "Sub" | "Mul" | "Div" | "Where" | "Cast" | "Dropout" | "Identity" | "Reshape"
        )
    };
    let mut core: HashSet<ValueId> = HashSet::new();
    for (k, n) in g.nodes[..info.forward_end].iter().enumerate() {
        if n.op_type != "Softmax" {
            continue;
        }
        // Backward: to the score MatMul.
        let mut chain = vec![NodeId(k as u32)];
        let mut cur = n.input(0);
        let mut found_scores = false;
        while let Some(v) = cur {
            let Some(p) = producer(g, v) else { break };
            let pn = g.node(p);
            chain.push(p);
            if pn.op_type == "MatMul" {
                found_scores = pn.inputs.iter().flatten().all(|i| dep[i.index()]);
                break;
            }
            if !passthrough(&pn.op_type) {
                break;
            }
            // Follow the activation operand (the one depending on parameters).
            cur = pn.inputs.iter().flatten().copied().find(|i| dep[i.index()]);
        }
        if !found_scores {
            continue;
        }
        // Forward: Softmax → (Dropout/Cast)* → MatMul with V.
        let mut v = n.output(0);
        let mut ok = false;
        while let Some(x) = v {
            let readers = &consumers[x.index()];
            if readers
                .iter()
                .any(|r| g.node(*r).op_type == "MatMul" && r.index() < info.forward_end)
            {
                ok = true;
                break;
            }
            let next = readers.iter().find(|r| {
                r.index() < info.forward_end
                    && matches!(
                        g.node(**r).op_type.as_str(),
                        "Dropout" | "Cast" | "Identity"
                    )
            });
            match next {
                Some(r) => {
                    chain.push(*r);
                    v = g.node(*r).output(0);
                }
                None => break,
            }
        }
        if ok {
            for nid in chain {
                for o in g.node(nid).outputs.iter().flatten() {
                    core.insert(*o);
                }
            }
        }
    }
    candidates(g, info)
        .into_iter()
        .filter(|v| core.contains(v))
        .collect()
}
