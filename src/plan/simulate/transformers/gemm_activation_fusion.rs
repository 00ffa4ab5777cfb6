//! GemmActivationFusion (level 2, onnxruntime/core/optimizer/gemm_activation_fusion.cc).

use super::super::ids::IdVec;
use super::super::view::{Absorbed, Adj, OpKind, View};
use super::{commit, is_float, new_node, sole_reader, std_op, topological_order};

/// GemmActivationFusion (level 2): a Gemm read only by an activation becomes a FusedGemm.
pub(super) fn gemm_activation_fusion(view: &mut View, adj: &mut Adj) -> bool {
    let (readers, _, preds, kinds, order) = adj.split();
    let candidate = view.nodes.iter().zip(kinds).any(|(gemm, &kind)| {
        kind == OpKind::Gemm
            && sole_reader(view, readers, gemm).is_some_and(|a| {
                std_op(
                    &view.nodes[a],
                    &["Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "Elu"],
                )
            })
    });
    if !candidate {
        return false;
    }
    let vorder = topological_order(order, view, preds);
    let mut removed = IdVec::from_elem(false, view.nodes.len());
    let mut added = Vec::new();
    for &k in &vorder {
        if kinds[k] != OpKind::Gemm {
            continue;
        }
        let gemm = &view.nodes[k];
        if removed[k] || !gemm.std() || gemm.op != "Gemm" || !is_float(view, gemm.inputs[0]) {
            continue;
        }
        let Some(Some(out)) = gemm.outputs.first().copied() else {
            continue;
        };
        if view.vals[out].is_output || readers[out].len() != 1 {
            continue;
        }
        let act_k = readers[out][0];
        let act = &view.nodes[act_k];
        if removed[act_k]
            || !act.std()
            || !matches!(
                act.op,
                "Relu" | "Sigmoid" | "Tanh" | "LeakyRelu" | "HardSigmoid" | "Elu"
            )
        {
            continue;
        }
        let (act_anchor, gemm_anchor) = (act.anchor, gemm.anchor);
        let (inputs, prepack, outputs) = (gemm.inputs.clone(), gemm.prepack, act.outputs.clone());
        let mut fused = new_node(view, gemm_anchor, "FusedGemm", "com.microsoft");
        fused.inputs = inputs;
        fused.outputs = outputs;
        fused.prepack = prepack;
        added.push(fused);
        removed[k] = true;
        removed[act_k] = true;
        view.absorbed.push(Absorbed {
            node: act_anchor,
            into: gemm_anchor,
        });
    }
    commit(view, order, vorder, &removed, added)
}
