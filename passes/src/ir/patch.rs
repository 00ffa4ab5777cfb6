//! Queued edits of a graph, applied in one pass over its nodes.
//!
//! A rewrite reads the graph as it was (node ids stay valid while it queues) and records
//! what to change: nodes to insert before a node, a node's replacement, an input to
//! rewire, values and initializers to add. [`Patch::apply`] then moves each node once into its new place
//! and renumbers the producers from the first edited node on: O(nodes + edits), however
//! many edits (splicing each insertion into the node list was O(nodes) per edit).
//!
//! Value ids are stable: the graph's values keep theirs and the patch's values are
//! appended in the order they were added, so value numbering (which orders the written
//! `value_info`) is what appending them one by one gave; so is the order of the
//! initializers it adds, appended to the graph's list. Node ids after the first edited
//! node change.

use super::graph::{Graph, Node, NodeId, Value, ValueId};
use super::tensor::Tensor;

/// Edits queued against one graph; see the module header.
#[derive(Debug, Default)]
pub struct Patch {
    /// Id of the first value this patch adds: the graph's value count when it was made.
    first_value: usize,
    values: Vec<Value>,
    /// The queued values that are initializers, in the order queued.
    initializers: Vec<ValueId>,
    /// Nodes to insert before the node of that index (the node count: at the end), in the
    /// order queued.
    inserts: Vec<(usize, Node)>,
    /// Nodes whose place the given nodes take, in order.
    replaces: Vec<(usize, Vec<Node>)>,
    /// (node, input slot, new input).
    set_inputs: Vec<(NodeId, usize, Option<ValueId>)>,
}

impl Patch {
    /// An empty patch for `g`; values added to `g` after this (other than by the patch) and
    /// before [`Patch::apply`] would clash with the patch's value ids.
    pub fn new(g: &Graph) -> Patch {
        Patch {
            first_value: g.values.len(),
            ..Patch::default()
        }
    }

    /// Queues a value; its id is final (the graph's values, then the patch's in order).
    pub fn add_value(&mut self, v: Value) -> ValueId {
        let id = ValueId((self.first_value + self.values.len()) as u32);
        self.values.push(v);
        id
    }

    /// Queues an initializer value holding `t` (as [`Graph::add_initializer`]).
    pub fn add_initializer(&mut self, name: impl Into<String>, t: Tensor) -> ValueId {
        let id = self.add_value(Value {
            name: name.into(),
            dtype: Some(t.dtype),
            shape: Some(super::types::known_shape(&t.dims)),
            initializer: Some(t),
            ..Value::default()
        });
        self.initializers.push(id);
        id
    }

    /// A value queued by this patch, for reading back before it is applied.
    pub fn value(&self, id: ValueId) -> Option<&Value> {
        self.values.get(id.index().checked_sub(self.first_value)?)
    }

    /// Value `id` of `g` with this patch applied: queued here, else `g`'s.
    pub fn read<'s>(&'s self, g: &'s Graph, id: ValueId) -> &'s Value {
        self.value(id).unwrap_or_else(|| g.value(id))
    }

    /// The id the next queued value gets.
    pub fn next_value(&self) -> ValueId {
        ValueId((self.first_value + self.values.len()) as u32)
    }

    /// Queues `node` to go right before `anchor` (`NodeId(g.nodes.len())`: at the end),
    /// after the nodes queued before it at the same anchor.
    pub fn insert_before(&mut self, anchor: NodeId, node: Node) {
        self.inserts.push((anchor.index(), node));
    }

    /// Queues `nodes` to go right before `anchor`, in order.
    pub fn insert_all_before(&mut self, anchor: NodeId, nodes: impl IntoIterator<Item = Node>) {
        let a = anchor.index();
        self.inserts.extend(nodes.into_iter().map(|n| (a, n)));
    }

    /// Queues `nodes` (in order) to take `node`'s place; `node`'s outputs lose their
    /// producer unless one of `nodes` makes them. Nodes queued before `node` come first.
    pub fn replace(&mut self, node: NodeId, nodes: Vec<Node>) {
        self.replaces.push((node.index(), nodes));
    }

    /// Queues input `slot` of `node` (a node of the graph, not one queued) to read `v`.
    pub fn set_input(&mut self, node: NodeId, slot: usize, v: Option<ValueId>) {
        self.set_inputs.push((node, slot, v));
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
            && self.inserts.is_empty()
            && self.replaces.is_empty()
            && self.set_inputs.is_empty()
    }

    /// Applies the queued edits: values appended, inputs set, then one pass moving every
    /// node from the first edited one on into place and recording it as its outputs'
    /// producer.
    ///
    /// Panics if values were added to `g` outside the patch since [`Patch::new`] while the
    /// patch adds values too (their ids would clash), or if an edit names a node the graph
    /// does not have: both are bugs of the pass, not of its input.
    pub fn apply(mut self, g: &mut Graph) {
        if !self.values.is_empty() {
            assert_eq!(
                g.values.len(),
                self.first_value,
                "values added to the graph beside a patch that adds values"
            );
            g.values.append(&mut self.values);
            g.initializers.append(&mut self.initializers);
        }
        for (n, slot, v) in self.set_inputs {
            g.nodes[n.index()].inputs[slot] = v;
        }
        if self.inserts.is_empty() && self.replaces.is_empty() {
            return;
        }
        let n = g.nodes.len();
        // Stable: nodes queued at one anchor keep their order (a run already in anchor
        // order, as a front-to-back rewrite queues, is sorted in one linear scan).
        self.inserts.sort_by_key(|(a, _)| *a);
        self.replaces.sort_by_key(|(a, _)| *a);
        assert!(
            self.inserts.last().is_none_or(|(a, _)| *a <= n)
                && self.replaces.last().is_none_or(|(a, _)| *a < n),
            "patch names a node past the graph's end"
        );
        let first = self
            .inserts
            .first()
            .map(|(a, _)| *a)
            .into_iter()
            .chain(self.replaces.first().map(|(a, _)| *a))
            .min()
            .unwrap_or(n);
        for &(r, _) in &self.replaces {
            for o in g.nodes[r].outputs.iter().flatten() {
                g.values[o.index()].producer = None;
            }
        }
        let added = self.inserts.len() + self.replaces.iter().map(|(_, v)| v.len()).sum::<usize>();
        let tail = g.nodes.split_off(first);
        g.nodes.reserve(tail.len() + added);
        let mut inserts = self.inserts.into_iter().peekable();
        let mut replaces = self.replaces.into_iter().peekable();
        for (k, node) in (first..).zip(tail) {
            while let Some((_, m)) = inserts.next_if(|(a, _)| *a == k) {
                g.nodes.push(m);
            }
            let mut replaced = false;
            while let Some((_, ms)) = replaces.next_if(|(a, _)| *a == k) {
                g.nodes.extend(ms);
                replaced = true;
            }
            if !replaced {
                g.nodes.push(node);
            }
        }
        g.nodes.extend(inserts.map(|(_, m)| m));
        for (k, node) in g.nodes.iter().enumerate().skip(first) {
            for o in node.outputs.iter().flatten() {
                g.values[o.index()].producer = Some(NodeId(k as u32));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a -> Relu -> b -> Neg -> c`, named n0, n1.
    fn chain() -> Graph {
        let mut g = Graph::default();
        let a = g.new_value("a");
        let b = g.new_value("b");
        let c = g.new_value("c");
        g.inputs.push(a);
        g.outputs.push(c);
        for (i, (op, x, y)) in [("Relu", a, b), ("Neg", b, c)].into_iter().enumerate() {
            let mut n = Node::new(op, vec![Some(x)], vec![Some(y)]);
            n.name = format!("n{i}");
            g.add_node(n);
        }
        g
    }

    fn named(name: &str, x: ValueId, y: ValueId) -> Node {
        let mut n = Node::new("Identity", vec![Some(x)], vec![Some(y)]);
        n.name = name.into();
        n
    }

    fn names(g: &Graph) -> Vec<&str> {
        g.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    /// Every value's producer is the node (by index) that outputs it, and only that one.
    fn producers_consistent(g: &Graph) -> bool {
        let mut want = vec![None; g.values.len()];
        for (k, n) in g.nodes.iter().enumerate() {
            for o in n.outputs.iter().flatten() {
                want[o.index()] = Some(NodeId(k as u32));
            }
        }
        g.values.iter().zip(want).all(|(v, w)| v.producer == w)
    }

    #[test]
    fn empty_patch_is_identity() {
        let mut g = chain();
        let before = g.clone();
        let p = Patch::new(&g);
        assert!(p.is_empty());
        p.apply(&mut g);
        assert_eq!(g, before);
    }

    #[test]
    fn insert_before_first_and_last_and_at_end() {
        let mut g = chain();
        let mut p = Patch::new(&g);
        let x = p.add_value(Value {
            name: "x".into(),
            ..Value::default()
        });
        let y = p.add_value(Value {
            name: "y".into(),
            ..Value::default()
        });
        let z = p.add_value(Value {
            name: "z".into(),
            ..Value::default()
        });
        assert_eq!((x, y, z), (ValueId(3), ValueId(4), ValueId(5)));
        assert_eq!(p.value(y).map(|v| v.name.as_str()), Some("y"));
        p.insert_before(NodeId(1), named("before_last", ValueId(1), y));
        p.insert_before(NodeId(0), named("before_first", ValueId(0), x));
        p.insert_before(NodeId(2), named("at_end", ValueId(2), z));
        p.apply(&mut g);
        assert_eq!(
            names(&g),
            ["before_first", "n0", "before_last", "n1", "at_end"]
        );
        let value_names: Vec<&str> = g.values.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(value_names, ["a", "b", "c", "x", "y", "z"]);
        assert!(producers_consistent(&g));
        assert_eq!(g.value(ValueId(2)).producer, Some(NodeId(3)));
    }

    /// Several insertions at one anchor keep the order they were queued in, also when
    /// queued between insertions at other anchors.
    #[test]
    fn insertions_at_one_anchor_keep_their_order() {
        let mut g = chain();
        let mut p = Patch::new(&g);
        let vs: Vec<ValueId> = (0..4)
            .map(|i| {
                p.add_value(Value {
                    name: format!("v{i}"),
                    ..Value::default()
                })
            })
            .collect();
        p.insert_before(NodeId(1), named("p", ValueId(1), vs[0]));
        p.insert_before(NodeId(0), named("other", ValueId(0), vs[1]));
        p.insert_all_before(
            NodeId(1),
            [named("q", vs[0], vs[2]), named("r", vs[2], vs[3])],
        );
        p.apply(&mut g);
        assert_eq!(names(&g), ["other", "n0", "p", "q", "r", "n1"]);
        assert!(producers_consistent(&g));
    }

    #[test]
    fn replace_moves_producers_and_clears_dropped_outputs() {
        let mut g = chain();
        let mut p = Patch::new(&g);
        let t = p.add_value(Value {
            name: "t".into(),
            ..Value::default()
        });
        // n0 (a -> b) becomes a -> t and t -> b, after a node inserted before it.
        p.insert_before(NodeId(0), named("first", ValueId(0), ValueId(0)));
        p.replace(
            NodeId(0),
            vec![named("r0", ValueId(0), t), named("r1", t, ValueId(1))],
        );
        p.apply(&mut g);
        assert_eq!(names(&g), ["first", "r0", "r1", "n1"]);
        assert!(producers_consistent(&g));
        assert_eq!(g.value(ValueId(1)).producer, Some(NodeId(2)));
        // A replacement that does not make the old output leaves it without a producer.
        let mut p = Patch::new(&g);
        p.replace(NodeId(3), vec![]);
        p.apply(&mut g);
        assert_eq!(names(&g), ["first", "r0", "r1"]);
        assert_eq!(g.value(ValueId(2)).producer, None);
        assert!(producers_consistent(&g));
    }

    #[test]
    fn set_input_rewires_a_node_of_the_graph() {
        let mut g = chain();
        let mut p = Patch::new(&g);
        p.set_input(NodeId(1), 0, Some(ValueId(0)));
        p.insert_before(NodeId(1), named("m", ValueId(0), ValueId(0)));
        p.apply(&mut g);
        assert_eq!(names(&g), ["n0", "m", "n1"]);
        assert_eq!(g.nodes[2].inputs, [Some(ValueId(0))]);
        assert!(producers_consistent(&g));
    }

    /// Initializers queued between plain values keep their ids and are appended to the
    /// graph's list in the order queued, as adding them to the graph one by one did.
    #[test]
    fn initializers_keep_value_and_list_order() {
        let mut g = chain();
        let w = g.add_initializer("w", Tensor::from_i64(vec![1], &[7]));
        let mut want = g.clone();
        let mut p = Patch::new(&g);
        assert_eq!(p.next_value(), ValueId(4));
        let i1 = p.add_initializer("i1", Tensor::from_i64(vec![1], &[1]));
        let v = p.add_value(Value {
            name: "v".into(),
            ..Value::default()
        });
        let i2 = p.add_initializer("i2", Tensor::from_i64(vec![2], &[2, 3]));
        assert_eq!(
            (i1, v, i2, p.next_value()),
            (ValueId(4), ValueId(5), ValueId(6), ValueId(7))
        );
        // Reads see queued values first, the graph's otherwise.
        assert_eq!(p.read(&g, i2).name, "i2");
        assert_eq!(p.read(&g, w).name, "w");
        p.apply(&mut g);
        want.add_initializer("i1", Tensor::from_i64(vec![1], &[1]));
        want.new_value("v");
        want.add_initializer("i2", Tensor::from_i64(vec![2], &[2, 3]));
        assert_eq!(g, want);
        assert_eq!(g.initializers, [w, i1, i2]);
    }
}
