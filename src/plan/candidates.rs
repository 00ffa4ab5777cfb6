//! Recompute candidates: forward activations the backward reads, with their producers'
//! costs and the sources a recompute needs.

use onnx_ac_passes::autodiff::saved_activations;
use onnx_ac_passes::ir::{Graph, ValueId};
use onnx_ac_passes::recompute::{is_view, not_recomputable};
use std::collections::HashSet;

/// Saved activations that may be recomputed (not random, not opaque, not folded).
pub fn candidates(g: &Graph) -> Vec<ValueId> {
    saved_activations(g)
        .into_iter()
        .filter(|&v| not_recomputable(g, v).is_none())
        .filter(|&v| g.value_bytes(v).unwrap_or(0) > 0)
        .collect()
}

/// Seconds to recompute `v` when the values in `dropped` are not kept: its producer plus,
/// recursively, the producers of dropped inputs (each node once). A dropped view is
/// recomputed with the value it is a view of (the rewrite drops both: `with_view_bases`).
pub fn recompute_time(
    g: &Graph,
    v: ValueId,
    dropped: &HashSet<ValueId>,
    cost: super::NodeCost,
) -> f64 {
    let mut seen = Stamps::new(g.nodes.len());
    chain_time(g, v, &|x| dropped.contains(&x), &mut seen, &|p| cost(g, p))
}

/// Marks that clear in O(1): a node is marked when its stamp is the current one.
struct Stamps {
    stamp: Vec<u32>,
    now: u32,
}

impl Stamps {
    fn new(n: usize) -> Stamps {
        Stamps {
            stamp: vec![0; n],
            now: 0,
        }
    }

    fn clear(&mut self) {
        self.now += 1;
    }

    /// Marks `i`; false if it was marked already.
    fn mark(&mut self, i: usize) -> bool {
        let fresh = self.stamp[i] != self.now;
        self.stamp[i] = self.now;
        fresh
    }
}

/// The recomputation of a plan shared out among its dropped values, each node once:
/// [`RecomputeShares::share`] of `v` is its producer plus the producers of the dropped values
/// it needs that no earlier call counted. `dropped` is the plan's drop set with its views'
/// bases ([`onnx_ac_passes::recompute::with_view_bases`]), as the rewrite drops them. Called
/// in creation order, the shares add up to the plan's recomputation (the rewrite copies each
/// node once) and the calls together visit each node and edge once, however long the
/// dropped chains are (a per-value closure is quadratic on a chain).
pub struct RecomputeShares<'a> {
    g: &'a Graph,
    dropped: &'a dyn Fn(ValueId) -> bool,
    counted: Vec<bool>,
}

/// One value's share: seconds, and the kept values its counted nodes read (constants left
/// out), once each, by id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Share {
    pub time_s: f64,
    pub sources: Vec<ValueId>,
}

impl<'a> RecomputeShares<'a> {
    pub fn new(g: &'a Graph, dropped: &'a dyn Fn(ValueId) -> bool) -> Self {
        RecomputeShares {
            g,
            dropped,
            counted: vec![false; g.nodes.len()],
        }
    }

    pub fn share(&mut self, v: ValueId, cost: super::NodeCost) -> Share {
        let g = self.g;
        let mut out = Share::default();
        let mut stack = vec![v];
        while let Some(x) = stack.pop() {
            let Some(p) = g.value(x).producer else {
                continue;
            };
            if std::mem::replace(&mut self.counted[p.index()], true) {
                continue;
            }
            out.time_s += cost(g, p);
            for &i in g.node(p).inputs.iter().flatten() {
                if (self.dropped)(i) {
                    stack.push(i);
                } else if g.value(i).constant.is_none() {
                    out.sources.push(i);
                }
            }
        }
        out.sources.sort_unstable();
        out.sources.dedup();
        out
    }
}

/// [`recompute_time`] with the dropped set as a predicate and the node costs as a lookup.
fn chain_time(
    g: &Graph,
    v: ValueId,
    dropped: &dyn Fn(ValueId) -> bool,
    seen: &mut Stamps,
    cost: &dyn Fn(onnx_ac_passes::ir::NodeId) -> f64,
) -> f64 {
    seen.clear();
    let mut stack = vec![v];
    let mut total = 0.0;
    while let Some(x) = stack.pop() {
        let Some(p) = g.value(x).producer else {
            continue;
        };
        if !seen.mark(p.index()) {
            continue;
        }
        total += cost(p);
        let node = g.node(p);
        let view_of = is_view(node).then(|| node.input(0)).flatten();
        for i in node.inputs.iter().flatten() {
            let computed = g.value(*i).producer.is_some() && g.value(*i).constant.is_none();
            if dropped(*i) || (Some(*i) == view_of && computed) {
                stack.push(*i);
            }
        }
    }
    total
}

/// μ-TWO's ranking of `cands`: repeatedly the candidate with the most bytes per second of
/// recomputation given the ones ranked before it are dropped (the first of equals in a list
/// that loses each pick by `swap_remove`, as μ-TWO's loop does).
///
/// Dropping `v` only lengthens the recompute chains that pass through `v`, so a ratio is
/// recomputed only for the candidates downstream of `v` through dropped values; the others
/// keep their cached value (the same number `recompute_time` would give).
pub fn mutwo_order(g: &Graph, cands: &[ValueId], cost: super::NodeCost) -> Vec<ValueId> {
    // Flat tables instead of hashed sets: on long chains every pick re-rates the
    // candidates downstream of it, and each rating walks the dropped chain.
    let consumers = g.consumers();
    let node_cost: Vec<f64> = (0..g.nodes.len())
        .map(|i| cost(g, onnx_ac_passes::ir::NodeId(i as u32)))
        .collect();
    let mut dropped = vec![false; g.values.len()];
    let mut seen = Stamps::new(g.nodes.len());
    let ratio = |v: ValueId, dropped: &[bool], seen: &mut Stamps| {
        let t = chain_time(g, v, &|x| dropped[x.index()], seen, &|p| {
            node_cost[p.index()]
        })
        .max(1e-12);
        g.value_bytes(v).unwrap_or(0) as f64 / t
    };
    let mut remaining: Vec<(ValueId, f64)> = cands
        .iter()
        .map(|&v| (v, ratio(v, &dropped, &mut seen)))
        .collect();
    // Per value: its index in `remaining`, if it is there.
    let mut slot = vec![usize::MAX; g.values.len()];
    for (k, &(v, _)) in remaining.iter().enumerate() {
        slot[v.index()] = k;
    }
    let mut walked = Stamps::new(g.nodes.len());
    let mut order = Vec::with_capacity(cands.len());
    while !remaining.is_empty() {
        let (k, _) = remaining
            .iter()
            .enumerate()
            .map(|(k, &(_, r))| (k, r))
            .fold((0, f64::MIN), |best, x| if x.1 > best.1 { x } else { best });
        let (v, _) = remaining.swap_remove(k);
        slot[v.index()] = usize::MAX;
        if let Some(&(moved, _)) = remaining.get(k) {
            slot[moved.index()] = k;
        }
        dropped[v.index()] = true;
        order.push(v);
        // Candidates whose chain now runs through `v`.
        let mut stale = Vec::new();
        let mut stack = vec![v];
        walked.clear();
        while let Some(x) = stack.pop() {
            for &c in &consumers[x.index()] {
                if !walked.mark(c.index()) {
                    continue;
                }
                for &o in g.node(c).outputs.iter().flatten() {
                    if slot[o.index()] != usize::MAX {
                        stale.push(o);
                    }
                    if dropped[o.index()] {
                        stack.push(o);
                    }
                }
            }
        }
        for u in stale {
            let r = ratio(u, &dropped, &mut seen);
            remaining[slot[u.index()]].1 = r;
        }
    }
    order
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use onnx_ac_passes::autodiff::build_training_graph;
    use onnx_ac_passes::ir::NodeId;
    use onnx_ac_passes::synth;

    /// A toy cost model for planner tests: MatMuls ten times dearer than the rest.
    pub(in crate::plan) fn cost(g: &Graph, n: NodeId) -> f64 {
        if g.node(n).op_type == "MatMul" {
            1e-5
        } else {
            1e-6
        }
    }

    /// μ-TWO's loop as written in the paper: every ratio recomputed at every pick.
    fn naive_order(g: &Graph, cands: &[ValueId]) -> Vec<ValueId> {
        let mut remaining = cands.to_vec();
        let mut dropped = HashSet::new();
        let mut order = Vec::new();
        while !remaining.is_empty() {
            let (k, _) = remaining
                .iter()
                .enumerate()
                .map(|(k, &v)| {
                    let t = recompute_time(g, v, &dropped, &cost).max(1e-12);
                    (k, g.value_bytes(v).unwrap_or(0) as f64 / t)
                })
                .fold((0, f64::MIN), |best, x| if x.1 > best.1 { x } else { best });
            let v = remaining.swap_remove(k);
            dropped.insert(v);
            order.push(v);
        }
        order
    }

    #[test]
    fn cached_ratios_give_the_naive_ranking() {
        let m = synth::transformer_with_nodes(1_000);
        let (tm, _) = build_training_graph(&m, &synth::cross_entropy()).unwrap();
        let g = &tm.graph;
        let cands = candidates(g);
        assert!(cands.len() > 20, "{} candidates", cands.len());
        assert_eq!(mutwo_order(g, &cands, &cost), naive_order(g, &cands));
    }
}
