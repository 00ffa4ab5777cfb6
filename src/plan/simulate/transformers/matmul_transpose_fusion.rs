//! MatmulTransposeFusion (level 2, onnxruntime/core/optimizer/matmul_transpose_fusion.cc).

use super::super::ids::{IdVec, VNodeId, VValId};
use super::super::kernels::pack_b;
use super::super::view::{Absorbed, Adj, OpKind, View};
use super::{commit, is_matmul, new_node, topological_order};
use onnx_ac_passes::ir::Graph;
use std::collections::HashMap;

/// MatmulTransposeFusion (level 2): a Transpose of the last two axes feeding a (Fused)MatMul
/// folds into a FusedMatMul (transA/transB); the Transpose goes once no reader is left.
pub(super) fn matmul_transpose_fusion(g: &Graph, view: &mut View, adj: &mut Adj) -> bool {
    let (readers, producer, preds, kinds, order) = adj.split();
    let candidate = view.nodes.iter().zip(kinds).any(|(mm, &kind)| {
        matches!(kind, OpKind::MatMul | OpKind::FusedMatMul)
            && mm.inputs.len() >= 2
            && mm.inputs[..2]
                .iter()
                .flatten()
                .filter_map(|x| producer[*x])
                .any(|p| kinds[p] == OpKind::Transpose)
    });
    if !candidate {
        return false;
    }
    let vorder = topological_order(order, view, preds);
    let mut reads_left: HashMap<VValId, usize> = HashMap::new();
    let mut absorbed = Vec::new();
    let mut removed = IdVec::from_elem(false, view.nodes.len());
    let mut added = Vec::new();
    let swaps_last_two = |view: &View, k: VNodeId| -> bool {
        let n = &view.nodes[k];
        if !n.std() || n.op != "Transpose" {
            return false;
        }
        if n.outputs.iter().flatten().any(|o| view.vals[*o].is_output) {
            return false;
        }
        let rank = n
            .inputs
            .first()
            .copied()
            .flatten()
            .and_then(|x| view.vals[x].rank())
            .unwrap_or(0);
        let perm: Vec<i64> = match g.node(n.anchor).attr_ints("perm") {
            Some(p) => p.to_vec(),
            None => (0..rank as i64).rev().collect(),
        };
        let r = perm.len();
        r >= 2
            && perm[..r - 2]
                .iter()
                .enumerate()
                .all(|(i, &p)| p == i as i64)
            && perm[r - 2] == r as i64 - 1
            && perm[r - 1] == r as i64 - 2
    };
    for &k in &vorder {
        if !matches!(kinds[k], OpKind::MatMul | OpKind::FusedMatMul) {
            continue;
        }
        let mm = &view.nodes[k];
        if removed[k] || !is_matmul(mm) || mm.inputs.len() < 2 {
            continue;
        }
        let mut inputs = mm.inputs.clone();
        let mut trans_b = false;
        let mut any = false;
        for (slot, input) in inputs.iter_mut().enumerate().take(2) {
            let Some(x) = *input else { continue };
            let Some(p) = producer[x] else { continue };
            if removed[p] || !swaps_last_two(view, p) {
                continue;
            }
            let left = reads_left.entry(x).or_insert(readers[x].len());
            *left -= 1;
            if *left == 0 {
                removed[p] = true;
                absorbed.push(Absorbed {
                    node: view.nodes[p].anchor,
                    into: mm.anchor,
                });
            }
            *input = view.nodes[p].inputs[0];
            trans_b |= slot == 1;
            any = true;
        }
        if !any {
            continue;
        }
        let (anchor, outputs) = (mm.anchor, mm.outputs.clone());
        let mut fused = new_node(view, anchor, "FusedMatMul", "com.microsoft");
        fused.prepack = pack_b(view, inputs[1], trans_b);
        fused.inputs = inputs;
        fused.outputs = outputs;
        added.push(fused);
        removed[k] = true;
    }
    view.absorbed.extend(absorbed);
    commit(view, order, vorder, &removed, added)
}
