//! The execution order: ONNX Runtime's (the reverse depth-first walk of its `GraphViewer`,
//! onnxruntime/core/graph/graph_viewer.cc), mapped back to the nodes of the graph given, and
//! the steps of the session's nodes under a caller's order.

use super::alloc::run_view;
use super::ids::{Csr, Id, IdVec, VNodeId};
use super::view::{build_view, producers, readers_of, Absorbed, Nodes, View};
use super::{SimOptions, Simulation};
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, NodeId};
use std::collections::HashMap;

/// ONNX Runtime's order of `nodes`.
pub(super) fn view_order(nodes: &Nodes, nvals: usize) -> Vec<VNodeId> {
    let producer_of = producers(nodes, nvals);
    let mut start = Vec::with_capacity(nodes.len() + 1);
    let mut items = Vec::with_capacity(2 * nodes.len());
    for n in nodes {
        start.push(items.len());
        items.extend(n.inputs.iter().flatten().filter_map(|v| producer_of[*v]));
    }
    start.push(items.len());
    order_by_preds(nodes, &Csr::new(start, items))
}

/// [`view_order`], given the producers of each node's inputs: the reverse depth-first walk
/// of ONNX Runtime's `GraphViewer`. From the nodes no node reads (pushed in index order, so
/// the last is walked first), each node's producers sorted by index and pushed in that
/// order, so the producer with the largest index is walked first.
pub(super) fn order_by_preds(nodes: &Nodes, preds: &Csr<VNodeId, VNodeId>) -> Vec<VNodeId> {
    let n = nodes.len();
    // Rank by ONNX Runtime index: position r in `by_index` is the node with the r-th index.
    let sorted = nodes
        .as_slice()
        .windows(2)
        .all(|w| w[0].index <= w[1].index);
    let mut by_index: Vec<VNodeId> = nodes.ids().collect();
    let mut rank = IdVec::default();
    if !sorted {
        by_index.sort_by_key(|&k| nodes[k].index);
        rank = IdVec::from_elem(0, n);
        for (r, &k) in by_index.iter().enumerate() {
            rank[k] = r;
        }
    }
    // Each node's producers (ranks, sorted, repeats kept), flat.
    let mut start: Vec<u32> = Vec::with_capacity(n + 1);
    let mut items: Vec<u32> = Vec::with_capacity(2 * n);
    for &k in &by_index {
        let s = items.len();
        start.push(s as u32);
        for &p in &preds[k] {
            items.push(if sorted { p.index() } else { rank[p] } as u32);
        }
        let ps = &mut items[s..];
        match ps.len() {
            0 | 1 => {}
            2 => {
                if ps[0] > ps[1] {
                    ps.swap(0, 1);
                }
            }
            _ => ps.sort_unstable(),
        }
    }
    start.push(items.len() as u32);
    let mut has_consumer = vec![false; n];
    for &p in &items {
        has_consumer[p as usize] = true;
    }
    // Stack entries: rank << 1, plus 1 when leaving the node.
    let mut stack: Vec<u32> = Vec::with_capacity(n + items.len());
    stack.extend(
        (0..n as u32)
            .filter(|&i| !has_consumer[i as usize])
            .map(|i| i << 1),
    );
    let mut visited = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while let Some(e) = stack.pop() {
        let i = (e >> 1) as usize;
        if e & 1 == 1 {
            order.push(by_index[i]);
            continue;
        }
        if visited[i] {
            continue;
        }
        visited[i] = true;
        stack.push(e | 1);
        for &p in &items[start[i] as usize..start[i + 1] as usize] {
            if !visited[p as usize] {
                stack.push(p << 1);
            }
        }
    }
    order
}

/// ONNX Runtime's execution order under its default session options (all optimizations):
/// every node of `g`, in the order ONNX Runtime runs what it becomes. Nodes fused into another
/// come right after it; nodes ONNX Runtime does not run at all (`Constant`s, folded nodes)
/// come first, in file order.
pub fn ort_default_order(g: &Graph) -> Vec<NodeId> {
    ort_order(g, &SimOptions::default())
}

/// ONNX Runtime's execution order for the given session options; see [`ort_default_order`].
pub fn ort_order(g: &Graph, opts: &SimOptions) -> Vec<NodeId> {
    let mut view = build_view(g, opts, true);
    if view.order.is_none() {
        view.order = Some(view_order(&view.nodes, view.vals.len()));
    }
    order_of_view(g, &view)
}

/// [`ort_default_order`] and [`simulate`](super::simulate) of that order, modelling ONNX Runtime's graph once
/// (what `plan::evaluate` needs): the same results as the two calls.
pub fn simulate_ort_default(g: &Graph, info: Option<&TrainingInfo>) -> (Vec<NodeId>, Simulation) {
    let opts = SimOptions::default();
    let mut view = build_view(g, &opts, false);
    if view.order.is_none() {
        view.order = Some(view_order(&view.nodes, view.vals.len()));
    }
    let order = order_of_view(g, &view);
    let sim = run_view(g, view, &order, info, &opts, false).sim;
    (order, sim)
}

/// ONNX Runtime's execution order of `g` given its graph `view` (whose `order` is set).
pub(super) fn order_of_view(g: &Graph, view: &View) -> Vec<NodeId> {
    let vorder = view.order.as_deref().expect("the view's order");
    let mut placed = vec![false; g.nodes.len()];
    let mut anchors = Vec::new();
    for &k in vorder {
        let a = view.nodes[k].anchor;
        if !placed[a.index()] {
            placed[a.index()] = true;
            anchors.push(a);
        }
    }
    // Fused nodes right after the node that absorbed them.
    let mut after: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for &Absorbed { node: n, into } in &view.absorbed {
        if !placed[n.index()] && placed[into.index()] {
            placed[n.index()] = true;
            after.entry(into).or_default().push(n);
        }
    }
    let mut order: Vec<NodeId> = (0..g.nodes.len())
        .filter(|&i| !placed[i])
        .map(|i| NodeId(i as u32))
        .collect();
    for a in anchors {
        order.push(a);
        if let Some(ns) = after.get(&a) {
            order.extend(ns.iter().copied());
        }
    }
    order
}

/// The nodes of a view as they run under a caller's order.
pub(super) struct SessionSteps {
    /// The running nodes in execution order.
    pub(super) steps: Vec<VNodeId>,
    /// Per node, the position in the caller's order it is reported at.
    pub(super) at: IdVec<VNodeId, usize>,
}

/// The [`SessionSteps`] of `view` under `order`. When `order` runs the nodes in ONNX Runtime's
/// order, that order is used as is; otherwise nodes follow `order` by their anchors, and
/// layout copies run right before their first reader.
pub(super) fn session_steps(view: &View, order: &[NodeId], n_graph_nodes: usize) -> SessionSteps {
    let nodes = &view.nodes;
    let pos: Vec<usize> = {
        let mut p = vec![usize::MAX; n_graph_nodes];
        for (k, n) in order.iter().enumerate() {
            p[n.index()] = k;
        }
        p
    };
    let vorder = match &view.order {
        Some(o) => o.clone(),
        None => view_order(nodes, view.vals.len()),
    };
    let mut ort_rank = IdVec::from_elem(0, nodes.len());
    for (i, &k) in vorder.iter().enumerate() {
        ort_rank[k] = i;
    }
    // Keys: the anchor's position; for layout copies, the smallest key of their readers
    // (computed readers first: reverse ONNX Runtime order is a reverse topological order).
    let mut key: IdVec<VNodeId, usize> = nodes.iter().map(|n| pos[n.anchor.index()]).collect();
    let copies = nodes.iter().any(|n| n.follow_consumers);
    let readers = if copies {
        readers_of(nodes, view.vals.len())
    } else {
        Csr::new(Vec::new(), Vec::new())
    };
    for &k in vorder.iter().rev() {
        if copies && nodes[k].follow_consumers {
            let m = nodes[k]
                .outputs
                .iter()
                .flatten()
                .flat_map(|o| readers[*o].iter())
                .map(|&r| key[r])
                .min();
            if let Some(m) = m {
                key[k] = m;
            }
        }
    }
    let ort_anchor_seq: Vec<usize> = {
        let mut seen = vec![false; n_graph_nodes];
        vorder
            .iter()
            .map(|&k| nodes[k].anchor.index())
            .filter(|&a| !std::mem::replace(&mut seen[a], true))
            .collect()
    };
    let caller_seq: Vec<usize> = {
        let mut is_anchor = vec![false; n_graph_nodes];
        for n in nodes {
            is_anchor[n.anchor.index()] = true;
        }
        order
            .iter()
            .map(|n| n.index())
            .filter(|&i| is_anchor[i])
            .collect()
    };
    if ort_anchor_seq == caller_seq {
        return SessionSteps {
            steps: vorder,
            at: key,
        };
    }
    // List scheduling by (key, ONNX Runtime rank) over the dependencies.
    let producer_of = producers(nodes, view.vals.len());
    let mut waiting: IdVec<VNodeId, usize> = IdVec::from_elem(0, nodes.len());
    let mut succ: IdVec<VNodeId, Vec<VNodeId>> = IdVec::from_elem(Vec::new(), nodes.len());
    for (k, n) in nodes.iter_enumerated() {
        for v in n.inputs.iter().flatten() {
            if let Some(p) = producer_of[*v] {
                waiting[k] += 1;
                succ[p].push(k);
            }
        }
    }
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<(usize, usize, VNodeId)>> = nodes
        .ids()
        .filter(|&k| waiting[k] == 0)
        .map(|k| std::cmp::Reverse((key[k], ort_rank[k], k)))
        .collect();
    let mut steps = Vec::with_capacity(nodes.len());
    while let Some(std::cmp::Reverse((_, _, k))) = ready.pop() {
        steps.push(k);
        for &c in &succ[k] {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.push(std::cmp::Reverse((key[c], ort_rank[c], c)));
            }
        }
    }
    SessionSteps { steps, at: key }
}
