//! Topological order and structural checks. petgraph does the graph algorithm; the IR stays
//! a plain arena.

use super::graph::{Graph, NodeId};
use crate::error::{IrError, NodeRef};
use petgraph::graph::DiGraph;

/// Checks that every node input is defined, every value has at most one producer, and the
/// graph is acyclic. Returns a topological order of the nodes that keeps file order wherever
/// the file is already ordered.
pub fn topo_order(g: &Graph) -> Result<Vec<NodeId>, IrError> {
    let mut producer: Vec<Option<NodeId>> = vec![None; g.values.len()];
    for id in g.node_ids() {
        for &o in g.node(id).outputs.iter().flatten() {
            if let Some(prev) = producer[o.index()] {
                return Err(IrError::DuplicateProducer {
                    value: g.value(o).name.clone(),
                    first: NodeRef::of(g, prev),
                    second: NodeRef::of(g, id),
                });
            }
            producer[o.index()] = Some(id);
        }
    }
    let mut is_source = vec![false; g.values.len()];
    for &v in g.inputs.iter().chain(&g.initializers) {
        is_source[v.index()] = true;
    }
    for (i, v) in g.values.iter().enumerate() {
        if v.initializer.is_some() {
            is_source[i] = true;
        }
    }
    let mut dg: DiGraph<NodeId, ()> = DiGraph::with_capacity(g.nodes.len(), g.nodes.len() * 2);
    for id in g.node_ids() {
        dg.add_node(id);
    }
    let mut already_sorted = true;
    for id in g.node_ids() {
        let n = g.node(id);
        for &i in n.inputs.iter().flatten() {
            match producer[i.index()] {
                Some(p) => {
                    if p >= id {
                        already_sorted = false;
                    }
                    dg.add_edge((p.0).into(), (id.0).into(), ());
                }
                None if is_source[i.index()] => {}
                None => {
                    return Err(IrError::UndefinedInput {
                        node: NodeRef::of(g, id),
                        value: g.value(i).name.clone(),
                    })
                }
            }
        }
    }
    for &o in &g.outputs {
        if producer[o.index()].is_none() && !is_source[o.index()] {
            return Err(IrError::UndefinedOutput {
                value: g.value(o).name.clone(),
            });
        }
    }
    if already_sorted {
        return Ok(g.node_ids().collect());
    }
    match petgraph::algo::toposort(&dg, None) {
        Ok(order) => {
            // toposort's order is not file order; make it stable by a Kahn pass that always
            // picks the smallest ready node index.
            let _ = order;
            Ok(stable_kahn(g, &producer))
        }
        Err(cycle) => Err(IrError::Cycle {
            node: NodeRef::of(g, NodeId(cycle.node_id().index() as u32)),
        }),
    }
}

fn stable_kahn(g: &Graph, producer: &[Option<NodeId>]) -> Vec<NodeId> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let n = g.nodes.len();
    let mut indeg = vec![0usize; n];
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    for id in g.node_ids() {
        for &i in g.node(id).inputs.iter().flatten() {
            if let Some(p) = producer[i.index()] {
                succ[p.index()].push(id.index());
                indeg[id.index()] += 1;
            }
        }
    }
    let mut heap: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indeg[i] == 0).map(Reverse).collect();
    let mut out = Vec::with_capacity(n);
    while let Some(Reverse(i)) = heap.pop() {
        out.push(NodeId(i as u32));
        for &s in &succ[i] {
            indeg[s] -= 1;
            if indeg[s] == 0 {
                heap.push(Reverse(s));
            }
        }
    }
    out
}

/// Reorders the node arena topologically (node ids change; value ids do not).
pub fn sort_nodes(g: &mut Graph) -> Result<(), IrError> {
    let order = topo_order(g)?;
    if order.iter().enumerate().all(|(i, n)| n.index() == i) {
        return Ok(());
    }
    let old = std::mem::take(&mut g.nodes);
    let mut slots: Vec<Option<super::graph::Node>> = old.into_iter().map(Some).collect();
    for id in order {
        let node = slots[id.index()].take().expect("each node once");
        g.add_node(node);
    }
    Ok(())
}

/// Checks the arena's own invariants (ids in range, producers consistent) and the structure.
/// Run after every pass in tests and debug builds.
pub fn verify(g: &Graph) -> Result<(), IrError> {
    let nv = g.values.len();
    for id in g.node_ids() {
        let n = g.node(id);
        for v in n.inputs.iter().chain(&n.outputs).flatten() {
            if v.index() >= nv {
                return Err(IrError::Invariant(format!(
                    "node '{}' refers to value {v} out of range",
                    n.name
                )));
            }
        }
        for &o in n.outputs.iter().flatten() {
            if g.value(o).producer != Some(id) {
                return Err(IrError::Invariant(format!(
                    "value '{}' does not record node '{}' as its producer",
                    g.value(o).name,
                    n.name
                )));
            }
        }
    }
    let order = topo_order(g)?;
    if order.iter().enumerate().any(|(i, n)| n.index() != i) {
        return Err(IrError::Invariant(
            "nodes are not in topological order".into(),
        ));
    }
    // The backward is found as a suffix of the node list (`Graph::backward_start`).
    if let Some(w) = g
        .nodes
        .windows(2)
        .find(|w| w[0].origin.region() > w[1].origin.region())
    {
        return Err(IrError::Invariant(format!(
            "node '{}' ({:?}) comes after node '{}' ({:?}): the forward, the loss and the \
             backward must follow one another",
            w[1].name,
            w[1].origin.region(),
            w[0].name,
            w[0].origin.region()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Node, Origin, Region};

    /// `x -> Relu -> Neg -> Abs -> y`, nodes marked with `origins`.
    fn chain(origins: [Origin; 3]) -> Graph {
        let mut g = Graph::default();
        let mut x = g.new_value("x");
        g.inputs.push(x);
        for (k, (op, origin)) in ["Relu", "Neg", "Abs"].into_iter().zip(origins).enumerate() {
            let y = g.new_value(format!("v{k}"));
            let mut n = Node::new(op, vec![Some(x)], vec![Some(y)]);
            n.name = format!("n{k}");
            n.origin = origin;
            g.add_node(n);
            x = y;
        }
        g.outputs.push(x);
        g
    }

    /// The backward is found by provenance: copies and defences placed there count, a
    /// defence placed in the forward does not.
    #[test]
    fn the_backward_is_the_nodes_whose_origin_runs_there() {
        let forward_pin = Origin::Defence {
            pass: "runtime-weights",
            region: Region::Forward,
        };
        let g = chain([
            forward_pin,
            Origin::Loss,
            Origin::RecomputeOf(crate::ir::NodeId(0)),
        ]);
        verify(&g).unwrap();
        assert_eq!(g.backward_start(), 2);
        assert_eq!(g.forward_nodes().len(), 2);
        assert_eq!(g.backward_nodes()[0].name, "n2");
        assert!(!g.in_backward(crate::ir::NodeId(0)) && g.in_backward(crate::ir::NodeId(2)));
        // A graph from a file: no backward.
        let plain = chain([Origin::Model; 3]);
        assert_eq!(plain.backward_start(), 3);
        assert!(plain.backward_nodes().is_empty());
    }

    /// A forward node after a backward one breaks the suffix `backward_start` relies on.
    #[test]
    fn verify_rejects_a_region_going_back() {
        let late_pin = Origin::Defence {
            pass: "pin-late",
            region: Region::Backward,
        };
        let err = verify(&chain([Origin::Model, late_pin, Origin::Model])).unwrap_err();
        assert!(
            err.to_string()
                .contains("node 'n2' (Forward) comes after node 'n1' (Backward)"),
            "{err}"
        );
        let err = verify(&chain([Origin::Backward, Origin::Loss, Origin::Backward])).unwrap_err();
        assert!(err.to_string().contains("'n1' (Loss)"), "{err}");
    }
}
