//! ReshapeFusion's FuseContiguousReshapes (level 1,
//! onnxruntime/core/optimizer/reshape_fusion.cc).

use super::super::ids::{Id, IdVec, VValId};
use super::super::view::{Absorbed, Adj, OpKind, Slots, VNode, View};
use super::{sole_reader, topological_order};

fn is_reshape_like(n: &VNode) -> bool {
    n.std() && matches!(n.op, "Reshape" | "Squeeze" | "Unsqueeze")
}

/// ReshapeFusion's FuseContiguousReshapes: a chain of Reshape/Squeeze/Unsqueeze nodes, each
/// the only reader of the previous one's output, ending in a statically known shape, becomes
/// one new Reshape with a constant shape. The first node's shape input is dropped, and nodes
/// left without readers by that (a pin's late dependency) are removed.
pub(super) fn fuse_contiguous_reshapes(view: &mut View, adj: &mut Adj) -> bool {
    let nv = view.vals.len();
    let (readers, producer, preds, kinds, order) = adj.split();
    let candidate = view.nodes.iter().zip(kinds).any(|(n, &kind)| {
        kind == OpKind::ReshapeLike
            && sole_reader(view, readers, n).is_some_and(|r| kinds[r] == OpKind::ReshapeLike)
    });
    if !candidate {
        return false;
    }
    let vorder = topological_order(order, view, preds);
    let mut removed = IdVec::from_elem(false, view.nodes.len());
    let mut orphan_seeds: Vec<VValId> = Vec::new();
    let mut new_nodes = Vec::new();
    for &k in &vorder {
        if kinds[k] != OpKind::ReshapeLike || removed[k] {
            continue;
        }
        if !is_reshape_like(&view.nodes[k]) {
            continue;
        }
        let mut chain = vec![k];
        loop {
            let last = &view.nodes[*chain.last().unwrap()];
            let Some(Some(out)) = last.outputs.first() else {
                break;
            };
            if view.vals[*out].is_output || readers[*out].len() != 1 {
                break;
            }
            let next = readers[*out][0];
            let nn = &view.nodes[next];
            let static_out = nn
                .outputs
                .first()
                .copied()
                .flatten()
                .is_some_and(|o| view.vals[o].known_dims().is_some());
            if removed[next]
                || !is_reshape_like(nn)
                || nn.inputs.first() != Some(&Some(*out))
                || !static_out
            {
                break;
            }
            chain.push(next);
        }
        if chain.len() < 2 {
            continue;
        }
        let first = &view.nodes[chain[0]];
        let last = &view.nodes[*chain.last().unwrap()];
        let fused = VNode {
            anchor: last.anchor,
            index: view.next_index,
            op: "Reshape",
            domain: "",
            kind: OpKind::ReshapeLike,
            inputs: Slots::of(&[first.inputs[0]]),
            outputs: Slots::of(&[last.outputs[0]]),
            prepack: 0,
            scratch: Vec::new(),
            activation: false,
            follow_consumers: false,
        };
        view.next_index += 1;
        for &c in &chain {
            removed[c] = true;
            orphan_seeds.extend(view.nodes[c].inputs.iter().skip(1).flatten());
            view.absorbed.push(Absorbed {
                node: view.nodes[c].anchor,
                into: fused.anchor,
            });
        }
        new_nodes.push(fused);
    }
    // Remove what only fed the dropped shape inputs.
    let mut live_readers: IdVec<VValId, usize> = (0..nv)
        .map(|v| {
            readers[VValId::new(v)]
                .iter()
                .filter(|&&k| !removed[k])
                .count()
        })
        .collect();
    for n in &new_nodes {
        for v in n.inputs.iter().flatten() {
            live_readers[*v] += 1;
        }
    }
    while let Some(v) = orphan_seeds.pop() {
        let Some(p) = producer[v] else { continue };
        if removed[p] {
            continue;
        }
        let unread = view.nodes[p]
            .outputs
            .iter()
            .flatten()
            .all(|o| live_readers[*o] == 0 && !view.vals[*o].is_output);
        if unread {
            removed[p] = true;
            for i in view.nodes[p].inputs.iter().flatten() {
                live_readers[*i] -= 1;
                orphan_seeds.push(*i);
            }
        }
    }
    let changed = !new_nodes.is_empty();
    let removed = removed.as_slice();
    let mut k = 0;
    view.nodes.retain(|_| {
        let keep = !removed[k];
        k += 1;
        keep
    });
    view.nodes.extend(new_nodes);
    *order = Some(vorder);
    changed
}
