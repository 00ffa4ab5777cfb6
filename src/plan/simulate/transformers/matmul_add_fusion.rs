//! MatMulAddFusion (level 1, onnxruntime/core/optimizer/matmul_add_fusion.cc).

use super::super::ids::{IdVec, VNodeId, VValId};
use super::super::kernels::pack_b;
use super::super::view::{Absorbed, Adj, OpKind, Slots, View};
use super::{commit, is_float, new_node, sole_reader, std_op, topological_order};
use onnx_ac_passes::ir::Dim;

/// MatMulAddFusion (level 1): a MatMul read only by an Add of a bias becomes a Gemm (inputs
/// of rank above 2 are flattened by two new Reshapes); the MatMul's output disappears.
pub(super) fn matmul_add_fusion(view: &mut View, adj: &mut Adj) -> bool {
    let (readers, producer, preds, kinds, order) = adj.split();
    let candidate = view.nodes.iter().zip(kinds).any(|(mm, &kind)| {
        kind == OpKind::MatMul
            && sole_reader(view, readers, mm).is_some_and(|a| std_op(&view.nodes[a], &["Add"]))
    });
    if !candidate {
        return false;
    }
    let vorder = topological_order(order, view, preds);
    let mut removed = IdVec::from_elem(false, view.nodes.len());
    let mut added = Vec::new();
    for &k in &vorder {
        if kinds[k] != OpKind::MatMul {
            continue;
        }
        let mm = &view.nodes[k];
        if removed[k] || !mm.std() || mm.op != "MatMul" || mm.inputs.len() < 2 {
            continue;
        }
        let Some(Some(out)) = mm.outputs.first().copied() else {
            continue;
        };
        if view.vals[out].is_output || readers[out].len() != 1 {
            continue;
        }
        let add_k = readers[out][0];
        let add = &view.nodes[add_k];
        if removed[add_k] || !add.std() || add.op != "Add" || add.inputs.len() != 2 {
            continue;
        }
        if !is_float(view, mm.inputs[0]) || !is_float(view, add.inputs[0]) {
            continue;
        }
        let (Some(a), Some(b)) = (mm.inputs[0], mm.inputs[1]) else {
            continue;
        };
        // ONNX Runtime needs concrete dims to fuse.
        if view.vals[a].hidden
            || add
                .inputs
                .iter()
                .flatten()
                .any(|&i| view.vals[i].hidden && i != out)
        {
            continue;
        }
        let (Some(ad), Some(bd)) = (view.vals[a].known_dims(), view.vals[b].known_dims()) else {
            continue;
        };
        if bd.len() != 2 || ad.is_empty() {
            continue;
        }
        let need_reshape = ad.len() != 2;
        if need_reshape && attention_projection_input(view, producer, a) {
            continue;
        }
        let bias_slot = if add.inputs[0] == Some(out) { 1 } else { 0 };
        let Some(bias) = add.inputs[bias_slot] else {
            continue;
        };
        let Some(cd) = view.vals[bias].known_dims() else {
            continue;
        };
        let n = bd[1];
        let valid = (cd.len() == 1 && cd[0] == n)
            || (!need_reshape && cd.len() == 2 && cd[0] == 1 && cd[1] == n)
            || (!need_reshape && cd.len() == 2 && cd[0] == ad[0] && (cd[1] == 1 || cd[1] == n));
        let Some(y) = add.outputs.first().copied().flatten() else {
            continue;
        };
        if !valid {
            continue;
        }
        let (anchor, add_anchor) = (mm.anchor, add.anchor);
        let prepack = pack_b(view, Some(b), false);
        let (mut gemm_in, mut gemm_out) = (a, y);
        if need_reshape {
            let m: i64 = ad[..ad.len() - 1].iter().product();
            let flat = |view: &mut View, like: VValId, cols: i64| {
                let mut v = view.vals[like].clone();
                v.dims = Some(vec![Dim::Known(m), Dim::Known(cols)].into());
                v.is_output = false;
                view.vals.push(v)
            };
            gemm_in = flat(view, a, bd[0]);
            gemm_out = flat(view, y, n);
            let mut r_in = new_node(view, anchor, "Reshape", "");
            r_in.inputs = Slots::of(&[Some(a)]);
            r_in.outputs = Slots::of(&[Some(gemm_in)]);
            let mut r_out = new_node(view, add_anchor, "Reshape", "");
            r_out.inputs = Slots::of(&[Some(gemm_out)]);
            r_out.outputs = Slots::of(&[Some(y)]);
            added.push(r_in);
            added.push(r_out);
        }
        let mut gemm = new_node(view, add_anchor, "Gemm", "");
        gemm.inputs = Slots::of(&[Some(gemm_in), Some(b), Some(bias)]);
        gemm.outputs = Slots::of(&[Some(gemm_out)]);
        gemm.prepack = prepack;
        added.push(gemm);
        removed[k] = true;
        removed[add_k] = true;
        view.absorbed.push(Absorbed {
            node: anchor,
            into: add_anchor,
        });
    }
    commit(view, order, vorder, &removed, added)
}

/// MatMulAddFusion leaves attention's output projection alone: Softmax -> MatMul ->
/// Transpose -> Reshape -> MatMul.
fn attention_projection_input(
    view: &View,
    producer: &IdVec<VValId, Option<VNodeId>>,
    a: VValId,
) -> bool {
    let step = |v: Option<VValId>, op: &str| -> Option<VNodeId> {
        let p = producer.get(v?).copied().flatten()?;
        let n = &view.nodes[p];
        (n.std() && n.op == op).then_some(p)
    };
    let Some(reshape) = step(Some(a), "Reshape") else {
        return false;
    };
    let Some(transpose) = step(view.nodes[reshape].inputs[0], "Transpose") else {
        return false;
    };
    let Some(av) = step(view.nodes[transpose].inputs[0], "MatMul") else {
        return false;
    };
    step(view.nodes[av].inputs[0], "Softmax").is_some()
}
