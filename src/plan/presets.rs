//! Fixed policies for comparison.
//!
//! - `none`: keep everything.
//! - `selective` (Megatron-style, Korthikanti et al. 2022): recompute the attention core —
//!   the score MatMul (Q·Kᵀ), scaling, masking, Softmax and dropout, up to but not including
//!   the probabilities·V MatMul — from Q and K.
//! - `full`: keep only each layer's input and recompute everything else, intermediates
//!   the backward does not read included (`segments.rs` finds the checkpoints and the
//!   layers from the graph's structure).

use super::{PlanError, PlanInput, Planner, RecomputePlan};
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, NodeId, ValueId};
use onnx_ac_passes::recompute::not_recomputable;
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

fn full(g: &Graph, info: &TrainingInfo) -> Vec<ValueId> {
    super::segments::Segments::new(g, info).full()
}

fn producer(g: &Graph, v: ValueId) -> Option<NodeId> {
    g.value(v).producer
}

/// Walks back from each forward Softmax through elementwise ops to a MatMul of two
/// activations (the scores), and forward through Dropout/Cast to a MatMul (probs·V).
fn attention_core(g: &Graph, info: &TrainingInfo) -> Vec<ValueId> {
    let dep = super::segments::param_dependent(g, info);
    let consumers = g.consumers();
    let passthrough = |op: &str| {
        matches!(
            op,
            "Add" | "Sub" | "Mul" | "Div" | "Where" | "Cast" | "Dropout" | "Identity" | "Reshape"
        )
    };
    let mut core: HashSet<ValueId> = HashSet::new();
    for (k, n) in g.forward_nodes().iter().enumerate() {
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
                .any(|&r| g.node(r).op_type == "MatMul" && !g.in_backward(r))
            {
                ok = true;
                break;
            }
            let next = readers.iter().find(|r| {
                !g.in_backward(**r)
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
    // Every tensor of the core, not only those the backward reads: the scores feed the
    // Softmax being recomputed, and keeping them would keep as much as is dropped.
    let mut core: Vec<ValueId> = core
        .into_iter()
        .filter(|&v| {
            not_recomputable(g, v).is_none()
                && g.value(v).constant.is_none()
                && g.value_bytes(v).unwrap_or(0) > 0
        })
        .collect();
    core.sort_unstable();
    core
}
