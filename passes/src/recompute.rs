//! The rewrite: for each forward value chosen for recomputation, duplicate its forward
//! sub-graph from values that are kept, place the copies right before the first backward
//! node that reads it, and rewire every backward reader to the copy.
//!
//! Two ONNX Runtime optimizations silently undo a plain duplicate (see docs/design.md):
//! common-subexpression elimination merges the copy with its original, and the default
//! execution order may run the copy during the forward. Both are defeated by one data
//! dependency: every copied chain reads one of its kept inputs through
//! `Reshape(x, shape(x) + 0 * int64(late[0]))`, where `late` is a backward value computed
//! just before the copy is needed. Integer arithmetic makes it exact whatever `late` holds
//! (Inf and NaN included), it reads a value so it cannot be constant-folded, and the copy
//! cannot run before `late` exists nor be merged with the original.

use crate::autodiff::TrainingInfo;
use crate::ir::{Graph, Node, NodeId, ValueId};
use std::collections::{BTreeMap, HashMap};
use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RewriteOptions {
    /// Add the late data dependency that defeats CSE and early scheduling.
    pub pin_late: bool,
    /// Hide the backward's dims from ONNX Runtime so that it cannot keep freed forward
    /// buffers for backward values (`runtime_shapes.rs`).
    pub hide_shapes: bool,
}

impl RewriteOptions {
    /// Every defence on (the default), or none.
    pub fn defended(on: bool) -> Self {
        RewriteOptions {
            pin_late: on,
            hide_shapes: on,
        }
    }
}

impl Default for RewriteOptions {
    fn default() -> Self {
        RewriteOptions::defended(true)
    }
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum RecomputeError {
    #[error("value '{value}' cannot be recomputed: {reason}")]
    NotRecomputable { value: String, reason: String },
    #[error(transparent)]
    Ir(#[from] crate::IrError),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RewriteReport {
    /// Forward nodes copied into the backward.
    pub copied_nodes: usize,
    /// Recompute groups (one per insertion point).
    pub groups: usize,
    /// Groups that got the late dependency.
    pub pinned_groups: usize,
    /// Backward inputs read through a shape-hiding alias.
    pub hidden_inputs: usize,
}

/// Ops whose result changes from run to run (`OpDef::random`; Dropout only in training
/// mode, its third input present): never recomputed.
pub fn is_random(n: &Node) -> bool {
    crate::ops::lookup(&n.op_type).is_some_and(|d| d.is_random(n))
}

/// Every forward value a plan may drop: recomputable and not a graph output (a hostile
/// plan's content, for tests and benchmarks of the rewrite's scaling).
pub fn droppable_forward_values(g: &Graph, info: &TrainingInfo) -> Vec<ValueId> {
    g.nodes[..info.forward_end]
        .iter()
        .flat_map(|n| n.outputs.iter().flatten().copied())
        .filter(|&v| not_recomputable(g, info, v).is_none() && !g.outputs.contains(&v))
        .collect()
}

/// Why a forward value cannot be recomputed, if it cannot.
pub fn not_recomputable(g: &Graph, info: &TrainingInfo, v: ValueId) -> Option<String> {
    let val = g.value(v);
    let Some(p) = val.producer else {
        return Some("it is a graph input or initializer".into());
    };
    if p.index() >= info.forward_end {
        return Some("it is computed by the backward".into());
    }
    let n = g.node(p);
    if is_random(n) {
        return Some(format!(
            "its producer '{}' ({}) is random",
            n.name, n.op_type
        ));
    }
    if !n.is_standard_domain()
        || n.attrs
            .iter()
            .any(|a| matches!(a.value, crate::ir::AttrValue::Opaque(_)))
    {
        return Some(format!(
            "its producer '{}' ({}) is opaque to onnx-ac",
            n.name, n.op_type
        ));
    }
    None
}

/// Whether ONNX Runtime's kernel for `n` returns a view of its first input (`Alias`): the
/// output shares the input's buffer, so it holds no memory of its own.
pub fn is_view(n: &Node) -> bool {
    n.is_standard_domain() && crate::runtime_shapes::is_alias(&n.op_type)
}

/// The value whose buffer the forward value `v` is a view of, when `v` is a view of another
/// forward activation: dropping `v` frees memory only if that value is dropped too.
pub fn view_base(g: &Graph, info: &TrainingInfo, v: ValueId) -> Option<ValueId> {
    viewed(g, info, v).filter(|&b| not_recomputable(g, info, b).is_none())
}

/// The forward activation whose buffer the forward value `v` shares, when `v` is a view of
/// one (whether or not that activation can be recomputed).
pub fn viewed(g: &Graph, info: &TrainingInfo, v: ValueId) -> Option<ValueId> {
    let p = g.value(v).producer?;
    if p.index() >= info.forward_end || !is_view(g.node(p)) {
        return None;
    }
    let base = g.node(p).input(0)?;
    let bv = g.value(base);
    let computed = bv.producer.is_some_and(|q| q.index() < info.forward_end);
    (bv.constant.is_none() && computed).then_some(base)
}

/// `values` with, for each view among them, the values it is a view of (a buffer is freed only
/// when every value sharing it is dropped): the drop set a plan stands for.
pub fn with_view_bases(g: &Graph, info: &TrainingInfo, values: &[ValueId]) -> Vec<ValueId> {
    let mut seen = vec![false; g.values.len()];
    let mut out = Vec::with_capacity(values.len());
    for &v in values {
        let mut cur = Some(v);
        while let Some(x) = cur {
            if std::mem::replace(&mut seen[x.index()], true) {
                break;
            }
            out.push(x);
            cur = view_base(g, info, x);
        }
    }
    out
}

struct Rewriter<'a> {
    src: &'a Graph,
    g: Graph,
    /// Per value of `src`: dropped for recomputation.
    drop: Vec<bool>,
    /// Copy of each forward node already made (by original node id).
    copies: HashMap<NodeId, Vec<Option<ValueId>>>,
    pinner: crate::pin::Pinner<'a>,
    pending: Vec<Node>,
    /// Copies made for the current group whose inputs include a kept value.
    roots: Vec<usize>,
}

impl Rewriter<'_> {
    fn fresh(&mut self, base: &str) -> String {
        self.pinner.fresh(base)
    }

    fn dropped(&self, v: ValueId) -> bool {
        self.drop.get(v.index()).copied().unwrap_or(false)
    }

    /// The copy of `v` (a dropped value), made with its dropped sources on first request.
    /// Depth-first without recursion (a chain of dropped values can be as long as the
    /// graph): a node is copied once every dropped input of it is, in input order.
    fn copy_of(&mut self, v: ValueId) -> ValueId {
        let src = self.src;
        let producer = |x: ValueId| {
            src.value(x)
                .producer
                .expect("dropped values have producers")
        };
        let p = producer(v);
        let mut stack: Vec<(NodeId, usize)> = vec![(p, 0)];
        while let Some(top) = stack.last_mut() {
            let (n, next) = (top.0, &mut top.1);
            if self.copies.contains_key(&n) {
                stack.pop();
                continue;
            }
            let inputs = &src.node(n).inputs;
            let mut pending_input = None;
            while *next < inputs.len() {
                let i = inputs[*next];
                *next += 1;
                if let Some(i) = i.filter(|&i| self.dropped(i)) {
                    let q = producer(i);
                    if !self.copies.contains_key(&q) {
                        pending_input = Some(q);
                        break;
                    }
                }
            }
            match pending_input {
                Some(q) => stack.push((q, 0)),
                None => {
                    stack.pop();
                    self.make_copy(n);
                }
            }
        }
        self.copied(v)
    }

    /// The copy of `v`, whose producer was copied.
    fn copied(&self, v: ValueId) -> ValueId {
        let p = self
            .src
            .value(v)
            .producer
            .expect("dropped values have producers");
        let k = self
            .src
            .node(p)
            .outputs
            .iter()
            .position(|o| *o == Some(v))
            .expect("v is an output of its producer");
        self.copies[&p][k].expect("copied output")
    }

    /// Copies node `p` of the forward, whose dropped inputs were copied.
    fn make_copy(&mut self, p: NodeId) {
        let node = self.src.node(p).clone();
        let inputs: Vec<Option<ValueId>> = node
            .inputs
            .iter()
            .map(|i| i.map(|i| if self.dropped(i) { self.copied(i) } else { i }))
            .collect();
        let outputs: Vec<Option<ValueId>> = node
            .outputs
            .iter()
            .map(|o| {
                o.map(|o| {
                    let orig = self.src.value(o);
                    let name = self.fresh(&format!("{}/recompute", orig.name));
                    self.g.add_value(crate::ir::Value {
                        name,
                        dtype: orig.dtype,
                        shape: orig.shape.clone(),
                        constant: orig.constant.clone(),
                        ..Default::default()
                    })
                })
            })
            .collect();
        let has_kept_input = node
            .inputs
            .iter()
            .flatten()
            .any(|i| !self.dropped(*i) && self.src.value(*i).constant.is_none());
        let mut copy = node;
        copy.name = self.fresh_node_name(&format!("{}/recompute", copy.name));
        copy.inputs = inputs;
        copy.outputs = outputs.clone();
        if has_kept_input {
            self.roots.push(self.pending.len());
        }
        self.pending.push(copy);
        self.copies.insert(p, outputs);
    }

    fn fresh_node_name(&mut self, base: &str) -> String {
        // Node names share the value namespace here: both must be unique for profiling.
        self.fresh(base)
    }
}

/// Rewrites `g` so that the values in `recompute` (and the values they are views of,
/// [`with_view_bases`]) are dropped after their last forward use and recomputed for the
/// backward. Value ids of `g` stay valid in the result (new values
/// are appended); node ids after `info.forward_end` change.
pub fn apply_recompute(
    g: &Graph,
    info: &TrainingInfo,
    recompute: &[ValueId],
    opts: RewriteOptions,
) -> Result<(Graph, RewriteReport), RecomputeError> {
    for &v in recompute {
        if let Some(reason) = not_recomputable(g, info, v) {
            return Err(RecomputeError::NotRecomputable {
                value: g.value(v).name.clone(),
                reason,
            });
        }
    }
    let mut drop = vec![false; g.values.len()];
    for v in with_view_bases(g, info, recompute) {
        drop[v.index()] = true;
    }
    let mut names = crate::pin::NameSet::with_capacity(g.values.len() + g.nodes.len());
    // With shapes to hide, what `g` knows of the values its nodes compute is left out of the
    // copy (`hide_backward_nodes` starts by forgetting it, and restores it from `g`); until
    // then the pinner reads values from `g`.
    let (copy, mut backward) = split_copy(g, info.forward_end, &mut names, opts.hide_shapes);
    let mut rw = Rewriter {
        src: g,
        g: copy,
        drop,
        copies: HashMap::new(),
        pinner: crate::pin::Pinner::avoiding(names).reading_values_of(g),
        pending: Vec::new(),
        roots: Vec::new(),
    };
    let mut report = RewriteReport::default();
    // The new backward: each node of `backward` (rewired in place), preceded by the nodes of
    // `inserted` it needs (`before[i]` of them for node `i`).
    let mut inserted: Vec<Node> = Vec::new();
    let mut before: Vec<usize> = Vec::with_capacity(backward.len());
    // The most recent backward value, for pinning copies late.
    let mut last_backward_value: Option<ValueId> = None;
    for node in backward.iter_mut() {
        let inserted_before = inserted.len();
        let needs_copy = node.inputs.iter().flatten().any(|i| rw.dropped(*i));
        if needs_copy {
            rw.pending.clear();
            rw.roots.clear();
            let inputs: Vec<Option<ValueId>> = node
                .inputs
                .iter()
                .map(|i| i.map(|i| if rw.dropped(i) { rw.copy_of(i) } else { i }))
                .collect();
            let mut group = std::mem::take(&mut rw.pending);
            if !group.is_empty() {
                report.groups += 1;
                report.copied_nodes += group.len();
                // Prefer a backward value this node reads; else the latest one made.
                let late = node
                    .inputs
                    .iter()
                    .flatten()
                    .copied()
                    .find(|i| {
                        g.value(*i)
                            .producer
                            .is_some_and(|p| p.index() >= info.forward_end)
                    })
                    .or(last_backward_value);
                let mut pins = Vec::new();
                if let (true, Some(late)) = (opts.pin_late, late) {
                    let roots = std::mem::take(&mut rw.roots);
                    let mut pinned_any = false;
                    let mut pinned_cache: BTreeMap<(ValueId, bool), ValueId> = BTreeMap::new();
                    let mut dep: Option<Option<ValueId>> = None;
                    for r in roots {
                        let copy = &group[r];
                        let kept = copy.inputs.iter().enumerate().find_map(|(k, i)| {
                            let i = (*i)?;
                            // Copies (this group's or an earlier one's) are new values:
                            // only original values need the dependency.
                            let original = i.index() < g.values.len();
                            (original && g.value(i).constant.is_none()).then_some((k, i))
                        });
                        let Some((k, x)) = kept else { continue };
                        let dep = *dep
                            .get_or_insert_with(|| rw.pinner.late_zero(&mut rw.g, late, &mut pins));
                        let Some(dep) = dep else { break };
                        let reader = group[r].op_type.clone();
                        let key = (x, crate::pin::merges_a_reshape(&reader));
                        let pinned = match pinned_cache.get(&key) {
                            Some(&p) => Some(p),
                            None => rw.pinner.pin_for(&mut rw.g, x, dep, &reader, &mut pins),
                        };
                        if let Some(p) = pinned {
                            pinned_cache.insert(key, p);
                            group[r].inputs[k] = Some(p);
                            pinned_any = true;
                        }
                    }
                    if pinned_any {
                        report.pinned_groups += 1;
                    }
                }
                inserted.extend(pins);
                inserted.append(&mut group);
            }
            node.inputs = inputs;
        }
        if let Some(o) = node.outputs.iter().flatten().next() {
            last_backward_value = Some(*o);
        }
        before.push(inserted.len() - inserted_before);
    }
    let out_nodes = interleave(backward, inserted, before);
    if opts.hide_shapes {
        // The pinner's names are now exactly the rewritten graph's.
        report.hidden_inputs = crate::runtime_shapes::hide_backward_nodes(
            &mut rw.g,
            out_nodes,
            info.loss,
            info.opset,
            rw.pinner.renew(),
            Some(g),
        );
    } else {
        for n in out_nodes {
            rw.g.add_node(n);
        }
    }
    if !valid_in_file_order(&rw.g) {
        crate::ir::verify(&rw.g)?;
    }
    Ok((rw.g, report))
}

/// `nodes`, each preceded by the next `before[i]` nodes of `inserted` (nodes are moved once).
fn interleave(
    nodes: Vec<Node>,
    inserted: Vec<Node>,
    before: Vec<usize>,
) -> impl Iterator<Item = Node> {
    let (mut nodes, mut inserted, mut before) =
        (nodes.into_iter(), inserted.into_iter(), before.into_iter());
    let mut left: Option<usize> = None;
    std::iter::from_fn(move || loop {
        match left {
            None => left = Some(before.next()?),
            Some(0) => {
                left = None;
                return nodes.next();
            }
            Some(n) => {
                left = Some(n - 1);
                return inserted.next();
            }
        }
    })
}

/// Whether `crate::ir::verify` accepts `g` (ids in range, each output recording its node as
/// producer, every input made by an earlier node or a source, every graph output defined),
/// checked in one pass; when this says no, `verify` itself reports why.
fn valid_in_file_order(g: &Graph) -> bool {
    const NONE: u32 = u32::MAX;
    let nv = g.values.len();
    let mut producer = vec![NONE; nv];
    for (id, n) in g.nodes.iter().enumerate() {
        for o in n.outputs.iter().flatten() {
            let Some(v) = g.values.get(o.index()) else {
                return false;
            };
            if producer[o.index()] != NONE || v.producer != Some(NodeId(id as u32)) {
                return false;
            }
            producer[o.index()] = id as u32;
        }
    }
    let mut is_source = vec![false; nv];
    for &v in g.inputs.iter().chain(&g.initializers) {
        match is_source.get_mut(v.index()) {
            Some(s) => *s = true,
            None => return false,
        }
    }
    for (i, v) in g.values.iter().enumerate() {
        if v.initializer.is_some() {
            is_source[i] = true;
        }
    }
    for (id, n) in g.nodes.iter().enumerate() {
        for i in n.inputs.iter().flatten() {
            match producer.get(i.index()) {
                None => return false,
                Some(&NONE) if !is_source[i.index()] => return false,
                Some(&NONE) => {}
                Some(&p) if p as usize >= id => return false,
                Some(_) => {}
            }
        }
    }
    g.outputs
        .iter()
        .all(|o| o.index() < nv && (producer[o.index()] != NONE || is_source[o.index()]))
}

/// A copy of `g` without its nodes from `forward_end` on (with room for what the rewrite
/// adds), and copies of those nodes. Every value and node name of `g` goes into `names` (as
/// it is read for the copy). `computed_unknown`: values computed by a node (initializers
/// aside) are copied without shape and constant.
fn split_copy<'a>(
    g: &'a Graph,
    forward_end: usize,
    names: &mut crate::pin::NameSet<'a>,
    computed_unknown: bool,
) -> (Graph, Vec<Node>) {
    let Graph {
        name,
        doc_string,
        nodes,
        values,
        inputs,
        outputs,
        initializers,
        opaque_sparse_initializers,
        opaque_quantization_annotations,
        metadata,
    } = g;
    let (forward, backward) = nodes.split_at(forward_end.min(nodes.len()));
    let mut new_nodes = Vec::with_capacity(nodes.len() + nodes.len() / 2 + 64);
    for n in forward {
        new_nodes.push(n.clone());
        names.insert(&n.name);
    }
    let backward = backward
        .iter()
        .map(|n| {
            names.insert(&n.name);
            n.clone()
        })
        .collect();
    let mut new_values = Vec::with_capacity(values.len() + values.len() / 2 + 64);
    for v in values {
        if computed_unknown && v.producer.is_some() && v.initializer.is_none() {
            new_values.push(crate::ir::Value {
                name: v.name.clone(),
                dtype: v.dtype,
                shape: None,
                opaque_type: v.opaque_type.clone(),
                producer: v.producer,
                initializer: None,
                constant: None,
                doc_string: v.doc_string.clone(),
                metadata: v.metadata.clone(),
                has_value_info: v.has_value_info,
                hide_shape: v.hide_shape,
            });
        } else {
            new_values.push(v.clone());
        }
        names.insert(&v.name);
    }
    let copy = Graph {
        name: name.clone(),
        doc_string: doc_string.clone(),
        nodes: new_nodes,
        values: new_values,
        inputs: inputs.clone(),
        outputs: outputs.clone(),
        initializers: initializers.clone(),
        opaque_sparse_initializers: opaque_sparse_initializers.clone(),
        opaque_quantization_annotations: opaque_quantization_annotations.clone(),
        metadata: metadata.clone(),
    };
    (copy, backward)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::build_training_graph;
    use crate::synth;

    /// A plan that drops every forward value of a 20,000-node chain makes the first
    /// recomputation copy the whole chain: no recursion per node (it overflowed the stack).
    #[test]
    fn a_whole_chain_recomputes_without_recursion() {
        let m = synth::wide_model(20_000);
        let (tm, info) = build_training_graph(&m, &synth::cross_entropy()).unwrap();
        let g = &tm.graph;
        let all: Vec<ValueId> = g.nodes[..info.forward_end]
            .iter()
            .flat_map(|n| n.outputs.iter().flatten().copied())
            .filter(|&v| not_recomputable(g, &info, v).is_none() && !g.outputs.contains(&v))
            .collect();
        assert!(all.len() > 19_000, "{}", all.len());
        let (rg, report) = apply_recompute(g, &info, &all, RewriteOptions::default()).unwrap();
        assert!(report.copied_nodes >= 19_000, "{report:?}");
        crate::ir::verify(&rg).unwrap();
    }

    /// A dropped view drops the value it is a view of (they share one buffer).
    #[test]
    fn views_are_dropped_with_their_base() {
        let m = synth::transformer_with_nodes(1_000);
        let (tm, info) = build_training_graph(&m, &synth::cross_entropy()).unwrap();
        let g = &tm.graph;
        let view = g
            .value_ids()
            .find(|&v| {
                g.value(v)
                    .producer
                    .is_some_and(|p| p.index() < info.forward_end && is_view(g.node(p)))
                    && view_base(g, &info, v).is_some()
            })
            .expect("a view of an activation");
        let base = view_base(g, &info, view).unwrap();
        let closed = with_view_bases(g, &info, &[view]);
        assert_eq!(closed[0], view);
        assert!(closed.contains(&base));
    }
}
