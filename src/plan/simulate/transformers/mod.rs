//! The ONNX Runtime graph transformers that change which intermediates exist, one file each,
//! run by [`optimize`] in ONNX Runtime's order, and the helpers they share.

pub(super) mod constant_folding;
pub(super) mod constant_sharing;
mod gemm_activation_fusion;
mod matmul_add_fusion;
mod matmul_scale_fusion;
mod matmul_transpose_fusion;
mod nchwc;
mod reshape_fusion;
mod transpose_slice;

use gemm_activation_fusion::gemm_activation_fusion;
use matmul_add_fusion::matmul_add_fusion;
use matmul_scale_fusion::matmul_scale_fusion;
use matmul_transpose_fusion::matmul_transpose_fusion;
use nchwc::Nchwc;
use reshape_fusion::fuse_contiguous_reshapes;
use transpose_slice::push_transpose_through_slice;

use super::ids::{Csr, IdVec, VNodeId, VValId};
use super::view::{op_kind, Adj, Slots, VNode, View};
use super::{OptLevel, SimOptions};
use onnx_ac_passes::ir::{Graph, NodeId};

/// Runs the transformers over `view` (built from `g`, constants folded) and sets its order
/// when one of them computed it.
pub(super) fn optimize<'g>(g: &'g Graph, view: &mut View<'g>, opts: &SimOptions) {
    // The transformers that change which intermediates exist, in ONNX Runtime's order (new
    // nodes get indices in that order): level 1, then function inlining, level 2, level 3.
    // Each pass says whether it changed the view (which makes `adj` stale).
    let all = opts.level == OptLevel::All;
    let mut adj: Option<Adj> = None;
    if all {
        run(&mut adj, view, |v, a| push_transpose_through_slice(g, v, a));
        run(&mut adj, view, matmul_add_fusion);
        run(&mut adj, view, fuse_contiguous_reshapes);
    }
    // CastLike has no CPU kernel: ONNX Runtime inlines its function body, a Cast node with a
    // new index, after level 1 (so the Cast is not folded).
    for n in view.nodes.iter_mut() {
        if n.std() && n.op == "CastLike" {
            n.op = "Cast";
            n.kind = op_kind(n.op, n.domain);
            n.inputs.truncate(1);
            n.index = view.next_index;
            view.next_index += 1;
            adj = None;
        }
    }
    if all {
        run(&mut adj, view, gemm_activation_fusion);
        run(&mut adj, view, |v, a| matmul_transpose_fusion(g, v, a));
        run(&mut adj, view, matmul_scale_fusion);
        // The transformer converts nothing unless a convolution or pool starts a chain.
        let seeds = view.nodes.iter().any(|n| {
            n.std()
                && matches!(
                    n.op,
                    "Conv" | "MaxPool" | "AveragePool" | "GlobalMaxPool" | "GlobalAveragePool"
                )
        });
        if seeds && opts.block() > 1 {
            Nchwc::new(g, view, opts.block()).run();
            adj = None;
        }
    }
    view.order = adj.and_then(|a| a.order);
}

/// Runs one transformer on `view` with the adjacency (built if stale); a change makes it stale.
fn run<'g>(
    adj: &mut Option<Adj>,
    view: &mut View<'g>,
    transformer: impl FnOnce(&mut View<'g>, &mut Adj) -> bool,
) {
    let a = adj.get_or_insert_with(|| Adj::of(view));
    if transformer(view, a) {
        *adj = None;
    }
}

/// The nodes in an order where each follows its inputs' producers: the one a previous
/// transformer left (taken: the caller edits the view), else computed.
fn topological_order(
    order: &mut Option<Vec<VNodeId>>,
    view: &View,
    preds: &Csr<VNodeId, VNodeId>,
) -> Vec<VNodeId> {
    order
        .take()
        .unwrap_or_else(|| super::order::order_by_preds(&view.nodes, preds))
}

/// The only reader of `n`'s first output, when it has one reader and is no graph output.
fn sole_reader(view: &View, readers: &Csr<VValId, VNodeId>, n: &VNode) -> Option<VNodeId> {
    let out = n.outputs.first().copied().flatten()?;
    (!view.vals[out].is_output && readers[out].len() == 1).then(|| readers[out][0])
}

/// Whether `n` is a standard-domain node of one of `ops`.
fn std_op(n: &VNode, ops: &[&str]) -> bool {
    n.std() && ops.contains(&n.op)
}

/// A new node of the optimizer, taking the place of `anchor` in the caller's order.
fn new_node<'g>(view: &mut View<'g>, anchor: NodeId, op: &'g str, domain: &'g str) -> VNode<'g> {
    let index = view.next_index;
    view.next_index += 1;
    VNode {
        anchor,
        index,
        op,
        domain,
        kind: op_kind(op, domain),
        inputs: Slots::default(),
        outputs: Slots::default(),
        prepack: 0,
        scratch: Vec::new(),
        activation: false,
        follow_consumers: false,
    }
}

/// Applies a transformer's edits to `view` and keeps its walk order `vorder` in `order` for
/// the next transformer (read only when nothing changed: a change makes [`optimize`] rebuild
/// the adjacency). Returns whether the view changed.
fn commit<'g>(
    view: &mut View<'g>,
    order: &mut Option<Vec<VNodeId>>,
    vorder: Vec<VNodeId>,
    removed: &IdVec<VNodeId, bool>,
    added: Vec<VNode<'g>>,
) -> bool {
    *order = Some(vorder);
    let changed = !added.is_empty();
    let removed = removed.as_slice();
    let mut k = 0;
    view.nodes.retain(|_| {
        let keep = !removed.get(k).copied().unwrap_or(false);
        k += 1;
        keep
    });
    view.nodes.extend(added);
    changed
}

fn is_float(view: &View, v: Option<VValId>) -> bool {
    v.is_some_and(|v| view.vals[v].elem == Some(4) && !view.vals[v].string)
}

fn is_matmul(n: &VNode) -> bool {
    (n.std() && n.op == "MatMul") || (n.domain == "com.microsoft" && n.op == "FusedMatMul")
}
