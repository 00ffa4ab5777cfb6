//! MatMulScaleFusion (level 2, onnxruntime/core/optimizer/matmul_scale_fusion.cc).

use super::super::ids::{IdVec, VNodeId, VValId};
use super::super::view::{Absorbed, Adj, OpKind, View};
use super::{commit, is_float, is_matmul, new_node, sole_reader, std_op, topological_order};

/// A constant scalar (one element, rank at most `max_rank`).
fn scalar_constant(view: &View, v: Option<VValId>, max_rank: usize) -> bool {
    v.is_some_and(|v| {
        let val = &view.vals[v];
        val.constant
            && val
                .known_dims()
                .is_some_and(|d| d.iter().product::<i64>() == 1 && d.len() <= max_rank)
    })
}

/// The input a Mul or Div by a constant scalar scales, if node `k` is one.
fn scaled_input(view: &View, k: VNodeId) -> Option<usize> {
    let n = &view.nodes[k];
    if !n.std() || n.inputs.len() != 2 {
        return None;
    }
    let rank = |v: Option<VValId>| v.and_then(|v| view.vals[v].rank()).unwrap_or(0);
    match n.op {
        "Div" if scalar_constant(view, n.inputs[1], rank(n.inputs[0])) => Some(0),
        "Mul" => (0..2)
            .find(|&i| scalar_constant(view, n.inputs[i], rank(n.inputs[1 - i])))
            .map(|i| 1 - i),
        _ => None,
    }
}

/// MatMulScaleFusion (level 2): a Mul/Div by a constant scalar on a (Fused)MatMul input, or
/// as its only reader, folds into FusedMatMul's alpha; the scaling node goes when unread.
pub(super) fn matmul_scale_fusion(view: &mut View, adj: &mut Adj) -> bool {
    let (readers, producer, preds, kinds, order) = adj.split();
    let candidate = view.nodes.iter().zip(kinds).any(|(mm, &kind)| {
        matches!(kind, OpKind::MatMul | OpKind::FusedMatMul)
            && mm.inputs.len() >= 2
            && (mm.inputs[..2]
                .iter()
                .flatten()
                .filter_map(|x| producer[*x])
                .any(|p| std_op(&view.nodes[p], &["Mul", "Div"]))
                || sole_reader(view, readers, mm)
                    .is_some_and(|r| std_op(&view.nodes[r], &["Mul", "Div"])))
    });
    if !candidate {
        return false;
    }
    let vorder = topological_order(order, view, preds);
    let mut removed = IdVec::from_elem(false, view.nodes.len());
    let mut reads_left: IdVec<VNodeId, usize> = view
        .nodes
        .iter()
        .map(|n| n.outputs.iter().flatten().map(|o| readers[*o].len()).sum())
        .collect();
    let mut added = Vec::new();
    for &k in &vorder {
        if !matches!(kinds[k], OpKind::MatMul | OpKind::FusedMatMul) {
            continue;
        }
        let mm = &view.nodes[k];
        if removed[k] || !is_matmul(mm) || mm.inputs.len() < 2 || !is_float(view, mm.inputs[0]) {
            continue;
        }
        let mut inputs = mm.inputs.clone();
        let mut outputs = mm.outputs.clone();
        let mut merged_in = Vec::new();
        for input in inputs.iter_mut().take(2) {
            let Some(x) = *input else { continue };
            let Some(p) = producer[x] else { continue };
            if removed[p] {
                continue;
            }
            let Some(i) = scaled_input(view, p) else {
                continue;
            };
            let unscaled = view.nodes[p].inputs[i];
            let non_scalar = unscaled
                .and_then(|u| view.vals[u].dims.as_deref())
                .is_some_and(|d| !d.is_empty());
            if non_scalar {
                *input = unscaled;
                merged_in.push(p);
            }
        }
        let mut merged_out = None;
        if let Some(Some(out)) = mm.outputs.first().copied() {
            if !view.vals[out].is_output && readers[out].len() == 1 {
                let r = readers[out][0];
                if !removed[r] && scaled_input(view, r).is_some() {
                    outputs = view.nodes[r].outputs.clone();
                    merged_out = Some(r);
                }
            }
        }
        if merged_in.is_empty() && merged_out.is_none() {
            continue;
        }
        let (anchor, prepack) = (mm.anchor, mm.prepack);
        for p in merged_in {
            reads_left[p] = reads_left[p].saturating_sub(1);
            if reads_left[p] == 0 {
                removed[p] = true;
                view.absorbed.push(Absorbed {
                    node: view.nodes[p].anchor,
                    into: anchor,
                });
            }
        }
        if let Some(r) = merged_out {
            removed[r] = true;
            view.absorbed.push(Absorbed {
                node: view.nodes[r].anchor,
                into: anchor,
            });
        }
        let mut fused = new_node(view, anchor, "FusedMatMul", "com.microsoft");
        fused.inputs = inputs;
        fused.outputs = outputs;
        fused.prepack = prepack;
        added.push(fused);
        removed[k] = true;
    }
    commit(view, order, vorder, &removed, added)
}
