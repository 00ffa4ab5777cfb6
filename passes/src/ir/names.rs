//! The fresh-name service: names for the nodes and values a pass adds, unused in the graph
//! the service was made for and distinct from every name it gave out.
//!
//! ONNX keeps value names and node names apart (each must be unique among its kind). The
//! rewrite passes and the autodiff builder use one namespace for both ([`Names::fresh`],
//! [`Names::numbered`]: stricter, and profiles key on node names); the lowerings name
//! values and nodes each in its own namespace ([`Names::fresh_value`],
//! [`Names::fresh_node`]), as they always did, so that a lowered node keeps the name it
//! had (`LSTM/Split_4`) when a value of the lowering is named so too.

use super::graph::Graph;
use crate::fxhash::FastHash;
use std::collections::HashMap;

/// Namespace bits of a taken name.
const VALUE: u8 = 1;
const NODE: u8 = 2;
const BOTH: u8 = VALUE | NODE;

/// Fresh names for one graph; see the module header. Made once per pass (or handed from pass
/// to pass, `pass::Unit::names`), so the graph's names are read once.
pub struct Names<'a> {
    store: NameStore<'a>,
    /// Per base name, per namespace mask (minus one), the first suffix not tried yet: names
    /// are only ever added, so a base asked for again (every pin's `…/Reshape`) resumes
    /// there instead of probing `_1`, `_2`, … from the start (quadratic in the names of one
    /// base otherwise).
    next_suffix: HashMap<String, [usize; 3], FastHash>,
    /// The next number [`Names::numbered`] tries, shared by every stem (the autodiff
    /// builder's `grad/mul_7`, `grad/Mul_8`, …).
    counter: usize,
}

/// The names fresh names must avoid, each with its namespace bits: every value and node
/// name of the graph the service was made for, and every name it made since.
enum NameStore<'a> {
    /// Owned copies (the graph is changed while the service is used).
    Owned(HashMap<String, u8, FastHash>),
    /// The names of a graph that outlives the service, borrowed, and the names made since.
    Borrowed {
        graph: HashMap<&'a str, u8, FastHash>,
        made: HashMap<String, u8, FastHash>,
    },
}

impl NameStore<'_> {
    /// Whether `name` is taken in a namespace of `bits`.
    fn taken(&self, name: &str, bits: u8) -> bool {
        match self {
            NameStore::Owned(taken) => taken.get(name).is_some_and(|b| b & bits != 0),
            NameStore::Borrowed { graph, made } => {
                graph.get(name).is_some_and(|b| b & bits != 0)
                    || made.get(name).is_some_and(|b| b & bits != 0)
            }
        }
    }

    fn claim(&mut self, name: String, bits: u8) {
        let map = match self {
            NameStore::Owned(taken) => taken,
            NameStore::Borrowed { made, .. } => made,
        };
        *map.entry(name).or_insert(0) |= bits;
    }
}

impl Names<'static> {
    /// The names of `g`, which the caller may change: every name is copied.
    pub fn of_graph(g: &Graph) -> Names<'static> {
        let mut taken: HashMap<String, u8, FastHash> =
            HashMap::with_capacity_and_hasher(g.values.len() + g.nodes.len(), FastHash::default());
        for v in &g.values {
            *taken.entry(v.name.clone()).or_insert(0) |= VALUE;
        }
        for n in &g.nodes {
            *taken.entry(n.name.clone()).or_insert(0) |= NODE;
        }
        Names::with_store(NameStore::Owned(taken))
    }
}

impl<'a> Names<'a> {
    /// The names of `g`, borrowed (not copied), for a graph whose names are those of `g`
    /// plus the names this service makes (a rewrite of a copy of `g`).
    pub fn borrowing(g: &'a Graph) -> Names<'a> {
        let mut graph: HashMap<&'a str, u8, FastHash> =
            HashMap::with_capacity_and_hasher(g.values.len() + g.nodes.len(), FastHash::default());
        for v in &g.values {
            *graph.entry(&v.name).or_insert(0) |= VALUE;
        }
        for n in &g.nodes {
            *graph.entry(&n.name).or_insert(0) |= NODE;
        }
        Names::with_store(NameStore::Borrowed {
            graph,
            made: HashMap::default(),
        })
    }

    fn with_store(store: NameStore<'a>) -> Names<'a> {
        Names {
            store,
            next_suffix: HashMap::default(),
            counter: 0,
        }
    }

    /// A name unused by values and nodes: `base`, else `base_1`, `base_2`, ...
    pub fn fresh(&mut self, base: &str) -> String {
        self.fresh_in(BOTH, base)
    }

    /// A value name unused by values (node names may equal it), as [`Names::fresh`].
    pub fn fresh_value(&mut self, base: &str) -> String {
        self.fresh_in(VALUE, base)
    }

    /// A node name unused by nodes (value names may equal it), as [`Names::fresh`].
    pub fn fresh_node(&mut self, base: &str) -> String {
        self.fresh_in(NODE, base)
    }

    fn fresh_in(&mut self, bits: u8, base: &str) -> String {
        let slot = usize::from(bits) - 1;
        let mut k = self.next_suffix.get(base).map_or(0, |next| next[slot]);
        let mut name = if k == 0 {
            base.to_string()
        } else {
            format!("{base}_{k}")
        };
        while self.store.taken(&name, bits) {
            k += 1;
            name = format!("{base}_{k}");
        }
        match self.next_suffix.get_mut(base) {
            Some(next) => next[slot] = k + 1,
            None => {
                let mut next = [0; 3];
                next[slot] = k + 1;
                self.next_suffix.insert(base.to_string(), next);
            }
        }
        self.store.claim(name.clone(), bits);
        name
    }

    /// A name unused by values and nodes: `{stem}_{k}`, `k` the first number from one
    /// counter shared by every stem that gives a free name.
    pub fn numbered(&mut self, stem: &str) -> String {
        let mut k = self.counter;
        loop {
            let name = format!("{stem}_{k}");
            k += 1;
            if !self.store.taken(&name, BOTH) {
                self.counter = k;
                self.store.claim(name.clone(), BOTH);
                return name;
            }
        }
    }

    /// `name` itself if no value or node has it (a parameter's `…​.grad`), else
    /// [`Names::numbered`] of `stem`.
    pub fn exact_or_numbered(&mut self, name: &str, stem: &str) -> String {
        if !self.store.taken(name, BOTH) {
            self.store.claim(name.to_string(), BOTH);
            name.to_string()
        } else {
            self.numbered(stem)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Node;

    /// Names from one base are `base`, `base_1`, ... in order, skip names the graph or an
    /// earlier call holds, and stay distinct over many calls (20,000 from one base: the
    /// case that was quadratic).
    #[test]
    fn fresh_names_skip_taken_names_and_stay_distinct() {
        let mut g = Graph::default();
        g.new_value("x");
        g.new_value("x_2");
        let mut n = Node::new("Relu", vec![], vec![]);
        n.name = "x_4".into();
        g.add_node(n);
        for mut names in [Names::of_graph(&g), Names::borrowing(&g)] {
            assert_eq!(names.fresh("x"), "x_1");
            assert_eq!(names.fresh("x"), "x_3");
            // Node names are avoided too.
            assert_eq!(names.fresh("x"), "x_5");
            assert_eq!(names.fresh("y"), "y");
            // A base that looks like another base's suffixed name.
            assert_eq!(names.fresh("x_6"), "x_6");
            assert_eq!(names.fresh("x"), "x_7");
            let mut all = std::collections::HashSet::new();
            for _ in 0..20_000 {
                let n = names.fresh("z");
                assert!(all.insert(n.clone()), "{n} given twice");
            }
            assert!(all.contains("z") && all.contains("z_19999"));
        }
    }

    /// Value and node names of a lowering each avoid their own kind only.
    #[test]
    fn value_and_node_namespaces() {
        let mut g = Graph::default();
        g.new_value("v");
        let mut n = Node::new("Relu", vec![], vec![]);
        n.name = "n".into();
        g.add_node(n);
        let mut names = Names::of_graph(&g);
        assert_eq!(names.fresh_value("n"), "n");
        assert_eq!(names.fresh_value("v"), "v_1");
        assert_eq!(names.fresh_node("v"), "v");
        assert_eq!(names.fresh_node("n"), "n_1");
        // `v_1` is a value's name only.
        assert_eq!(names.fresh_node("v"), "v_1");
        assert_eq!(names.fresh_value("s"), "s");
        assert_eq!(names.fresh_node("s"), "s");
        // Either kind blocks a name for both.
        assert_eq!(names.fresh("s"), "s_1");
        assert_eq!(names.fresh_value("s"), "s_2");
    }

    /// `numbered` shares one counter between stems and skips taken names; `exact_or_numbered`
    /// takes the exact name once.
    #[test]
    fn numbered_names_share_a_counter() {
        let mut g = Graph::default();
        g.new_value("grad/mul_1");
        let mut n = Node::new("Relu", vec![], vec![]);
        n.name = "loss".into();
        g.add_node(n);
        let mut names = Names::of_graph(&g);
        assert_eq!(names.numbered("grad/mul"), "grad/mul_0");
        assert_eq!(names.numbered("grad/mul"), "grad/mul_2");
        assert_eq!(names.numbered("grad/Add"), "grad/Add_3");
        assert_eq!(names.exact_or_numbered("w.grad", "grad/w.grad"), "w.grad");
        assert_eq!(
            names.exact_or_numbered("w.grad", "grad/w.grad"),
            "grad/w.grad_4"
        );
        assert_eq!(names.exact_or_numbered("loss", "loss/loss"), "loss/loss_5");
    }
}
