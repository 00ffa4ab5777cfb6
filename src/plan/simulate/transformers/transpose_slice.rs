//! The transpose optimizer's push of a Transpose through a Slice (level 1,
//! onnxruntime/core/optimizer/transpose_optimization/onnx_transpose_optimization.cc); only
//! this case of the optimizer is modelled.

use super::super::ids::IdVec;
use super::super::view::{Absorbed, Adj, OpKind, Slots, View};
use super::{commit, new_node, sole_reader, topological_order};
use onnx_ac_passes::ir::{Dim, Graph};

/// The transpose optimizer (level 1) moves a Transpose read only by a constant Slice below
/// it when that lowers the estimated cost (the number of dimensions other than 1): the Slice
/// takes the Transpose's input (keeping its own index) and a new Transpose transposes the
/// result.
pub(super) fn push_transpose_through_slice(g: &Graph, view: &mut View, adj: &mut Adj) -> bool {
    let (readers, _, preds, kinds, order) = adj.split();
    let candidate = view.nodes.iter().zip(kinds).any(|(tn, &kind)| {
        kind == OpKind::Transpose
            && sole_reader(view, readers, tn).is_some_and(|sl| {
                let sn = &view.nodes[sl];
                sn.std() && sn.op == "Slice" && sn.inputs.first() == tn.outputs.first()
            })
    });
    if !candidate {
        return false;
    }
    let vorder = topological_order(order, view, preds);
    let mut removed = IdVec::from_elem(false, view.nodes.len());
    let mut added = Vec::new();
    for &t in &vorder {
        if kinds[t] != OpKind::Transpose {
            continue;
        }
        let tn = &view.nodes[t];
        if removed[t] || !tn.std() || tn.op != "Transpose" {
            continue;
        }
        let (Some(Some(x)), Some(Some(tout))) = (tn.inputs.first(), tn.outputs.first()) else {
            continue;
        };
        let (x, tout) = (*x, *tout);
        if view.vals[tout].is_output || readers[tout].len() != 1 {
            continue;
        }
        let sl = readers[tout][0];
        let sn = &view.nodes[sl];
        let constant_params = sn.inputs[1..]
            .iter()
            .flatten()
            .all(|v| view.vals[*v].constant);
        if removed[sl] || !sn.std() || sn.op != "Slice" || sn.inputs[0] != Some(tout) {
            continue;
        }
        let Some(Some(sout)) = sn.outputs.first().copied() else {
            continue;
        };
        let Some(od) = view.vals[sout].known_dims() else {
            continue;
        };
        let perm: Vec<usize> = match g.node(tn.anchor).attr_ints("perm") {
            Some(p) => p.iter().map(|&i| i.max(0) as usize).collect(),
            None => (0..od.len()).rev().collect(),
        };
        if !constant_params || perm.len() != od.len() || perm.iter().any(|&i| i >= od.len()) {
            continue;
        }
        // The cost check: pushing must lower the "rank" (dimensions other than 1) transposed.
        let rank = |d: &[i64]| d.iter().filter(|&&x| x != 1).count();
        match view.vals[tout].known_dims() {
            Some(td) if rank(&od) < rank(&td) => {}
            _ => continue,
        }
        // The Slice's new output: its output in the Transpose's input layout.
        let mut nd = vec![0i64; od.len()];
        for (i, &p) in perm.iter().enumerate() {
            nd[p] = od[i];
        }
        let mut v = view.vals[sout].clone();
        v.dims = Some(nd.into_iter().map(Dim::Known).collect::<Vec<_>>().into());
        v.is_output = false;
        let mid = view.vals.push(v);
        let anchor = view.nodes[sl].anchor;
        view.nodes[sl].inputs[0] = Some(x);
        view.nodes[sl].outputs[0] = Some(mid);
        let mut nt = new_node(view, anchor, "Transpose", "");
        nt.inputs = Slots::of(&[Some(mid)]);
        nt.outputs = Slots::of(&[Some(sout)]);
        added.push(nt);
        removed[t] = true;
        view.absorbed.push(Absorbed {
            node: view.nodes[t].anchor,
            into: anchor,
        });
    }
    commit(view, order, vorder, &removed, added)
}
