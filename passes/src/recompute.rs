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
use crate::ir::{Graph, Node, NodeId, Origin, Region, ValueId};
use crate::pass::{Manager, Pass, PassError, Unit};
use std::collections::BTreeMap;
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

/// Whether node `n` of a rewritten graph `g` is recomputation work: a copy
/// (`Origin::RecomputeOf`), or the shape-hiding alias through which a backward node reads a
/// copy (`hide-backward-shapes` adds it because the copy exists). What a plan's added time
/// and the report's recomputed nodes count.
pub fn is_recompute_work(g: &Graph, n: &Node) -> bool {
    n.recompute_of().is_some()
        || (n.origin.is_defence_of("hide-backward-shapes")
            && n.input(0)
                .and_then(|x| g.value(x).producer)
                .is_some_and(|p| g.node(p).recompute_of().is_some()))
}

/// Every forward value a plan may drop: recomputable and not a graph output (a hostile
/// plan's content, for tests and benchmarks of the rewrite's scaling).
pub fn droppable_forward_values(g: &Graph) -> Vec<ValueId> {
    g.forward_nodes()
        .iter()
        .flat_map(|n| n.outputs.iter().flatten().copied())
        .filter(|&v| not_recomputable(g, v).is_none() && !g.outputs.contains(&v))
        .collect()
}

/// Why a forward value cannot be recomputed, if it cannot.
pub fn not_recomputable(g: &Graph, v: ValueId) -> Option<String> {
    let val = g.value(v);
    let Some(p) = val.producer else {
        return Some("it is a graph input or initializer".into());
    };
    if g.in_backward(p) {
        return Some("it is computed by the backward".into());
    }
    let n = g.node(p);
    if is_random(n) {
        return Some(format!(
            "its producer {} is random",
            crate::error::NodeRef::of(g, p)
        ));
    }
    if !n.is_standard_domain()
        || n.attrs
            .iter()
            .any(|a| matches!(a.value, crate::ir::AttrValue::Opaque(_)))
    {
        return Some(format!(
            "its producer {} is opaque to onnx-ac",
            crate::error::NodeRef::of(g, p)
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
pub fn view_base(g: &Graph, v: ValueId) -> Option<ValueId> {
    viewed(g, v).filter(|&b| not_recomputable(g, b).is_none())
}

/// The forward activation whose buffer the forward value `v` shares, when `v` is a view of
/// one (whether or not that activation can be recomputed).
pub fn viewed(g: &Graph, v: ValueId) -> Option<ValueId> {
    let p = g.value(v).producer?;
    if g.in_backward(p) || !is_view(g.node(p)) {
        return None;
    }
    let base = g.node(p).input(0)?;
    let bv = g.value(base);
    let computed = bv.producer.is_some_and(|q| !g.in_backward(q));
    (bv.constant.is_none() && computed).then_some(base)
}

/// `values` with, for each view among them, the values it is a view of (a buffer is freed only
/// when every value sharing it is dropped): the drop set a plan stands for.
pub fn with_view_bases(g: &Graph, values: &[ValueId]) -> Vec<ValueId> {
    let mut seen = vec![false; g.values.len()];
    let mut out = Vec::with_capacity(values.len());
    for &v in values {
        let mut cur = Some(v);
        while let Some(x) = cur {
            if std::mem::replace(&mut seen[x.index()], true) {
                break;
            }
            out.push(x);
            cur = view_base(g, x);
        }
    }
    out
}

/// Rewrites `g` so that the values in `recompute` (and the values they are views of,
/// [`with_view_bases`]) are dropped after their last forward use and recomputed for the
/// backward. Value ids of `g` stay valid in the result (new values
/// are appended); node ids from the backward's start on change. The passes `recompute`,
/// `pin-late` and `hide-backward-shapes` (as `opts` asks) on a copy of `g`.
pub fn apply_recompute(
    g: &Graph,
    info: &TrainingInfo,
    recompute: &[ValueId],
    opts: RewriteOptions,
) -> Result<(Graph, RewriteReport), RecomputeError> {
    // The planner rewrites once per plan it simulates: the names are borrowed from `g`, not
    // copied, and the copy of `g` is made once with room for what the passes add.
    let model = crate::ir::Model {
        graph: copy_with_room(g),
        ..Default::default()
    };
    let mut unit = Unit::training(model, info.clone());
    unit.recompute = recompute.to_vec();
    unit.rewrite = opts;
    unit.names = Some(crate::ir::Names::borrowing(g));
    Manager::new()
        .run(&mut unit, "recompute", "hide-backward-shapes")
        .map_err(|e| match e {
            PassError::Recompute(e) => e,
            other => match other.into_ir() {
                Ok(e) => RecomputeError::Ir(e),
                Err(other) => RecomputeError::Ir(crate::IrError::Invariant(other.to_string())),
            },
        })?;
    let rg = unit.model.graph;
    if !valid_in_file_order(&rg) {
        crate::ir::verify(&rg)?;
    }
    Ok((rg, unit.stats.rewrite))
}

/// The `recompute` pass: copies the producers of the dropped values (`Unit::recompute` and
/// the values they are views of) right before their first backward reader, and rewires every
/// backward reader to the copies. Copies are marked `Origin::RecomputeOf`.
pub struct Recompute;

impl Pass for Recompute {
    fn name(&self) -> &'static str {
        "recompute"
    }
    fn summary(&self) -> &'static str {
        "copies each dropped value's producer before its first backward reader"
    }
    fn run(&self, unit: &mut Unit<'_>) -> Result<(), PassError> {
        unit.info_for(self.name())?;
        let g = &mut unit.model.graph;
        for &v in &unit.recompute {
            if let Some(reason) = not_recomputable(g, v) {
                return Err(RecomputeError::NotRecomputable {
                    value: g.value(v).name.clone(),
                    reason,
                }
                .into());
            }
        }
        let mut drop = vec![false; g.values.len()];
        for v in with_view_bases(g, &unit.recompute) {
            drop[v.index()] = true;
        }
        let names = unit
            .names
            .take()
            .unwrap_or_else(|| crate::ir::Names::of_graph(g));
        let backward_start = g.backward_start();
        // Copies and rewired inputs are queued, then applied in one pass over the nodes
        // (the planner rewrites every plan it simulates).
        let node_count = g.nodes.len();
        let mut rw = Rewriter {
            names,
            patch: crate::ir::Patch::new(g),
            g,
            drop,
            copies: vec![None; backward_start],
            pending: Vec::new(),
        };
        let report = &mut unit.stats.rewrite;
        for id in (backward_start..node_count).map(|k| NodeId(k as u32)) {
            for k in 0..rw.g.node(id).inputs.len() {
                if let Some(i) = rw.g.node(id).inputs[k].filter(|&i| rw.dropped(i)) {
                    let c = rw.copy_of(i);
                    rw.patch.set_input(id, k, Some(c));
                }
            }
            if !rw.pending.is_empty() {
                report.groups += 1;
                report.copied_nodes += rw.pending.len();
                rw.patch.insert_all_before(id, rw.pending.drain(..));
            }
        }
        rw.patch.apply(rw.g);
        unit.names = Some(rw.names);
        Ok(())
    }
}

struct Rewriter<'g, 'a> {
    g: &'g mut Graph,
    names: crate::ir::Names<'a>,
    /// The copies (nodes and values) and rewired inputs, queued.
    patch: crate::ir::Patch,
    /// Per value of the graph before the rewrite: dropped for recomputation.
    drop: Vec<bool>,
    /// Per forward node: the outputs of its copy, once made.
    copies: Vec<Option<Vec<Option<ValueId>>>>,
    pending: Vec<Node>,
}

impl Rewriter<'_, '_> {
    fn dropped(&self, v: ValueId) -> bool {
        self.drop.get(v.index()).copied().unwrap_or(false)
    }

    fn is_copied(&self, n: NodeId) -> bool {
        self.copies[n.index()].is_some()
    }

    /// The copy of `v` (a dropped value), made with its dropped sources on first request.
    /// Depth-first without recursion (a chain of dropped values can be as long as the
    /// graph): a node is copied once every dropped input of it is, in input order.
    fn copy_of(&mut self, v: ValueId) -> ValueId {
        let producer =
            |g: &Graph, x: ValueId| g.value(x).producer.expect("dropped values have producers");
        let p = producer(self.g, v);
        let mut stack: Vec<(NodeId, usize)> = vec![(p, 0)];
        while let Some(&(n, next)) = stack.last() {
            if self.is_copied(n) {
                stack.pop();
                continue;
            }
            let inputs = &self.g.node(n).inputs;
            let mut pending_input = None;
            let mut k = next;
            while k < inputs.len() {
                let i = inputs[k];
                k += 1;
                if let Some(i) = i.filter(|&i| self.dropped(i)) {
                    let q = producer(self.g, i);
                    if !self.is_copied(q) {
                        pending_input = Some(q);
                        break;
                    }
                }
            }
            stack.last_mut().expect("not empty").1 = k;
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
            .g
            .value(v)
            .producer
            .expect("dropped values have producers");
        let k = self
            .g
            .node(p)
            .outputs
            .iter()
            .position(|o| *o == Some(v))
            .expect("v is an output of its producer");
        self.copies[p.index()].as_ref().expect("copied")[k].expect("copied output")
    }

    /// Copies forward node `p`, whose dropped inputs were copied.
    fn make_copy(&mut self, p: NodeId) {
        let mut copy = self.g.node(p).clone();
        for i in copy.inputs.iter_mut().flatten() {
            if self.dropped(*i) {
                *i = self.copied(*i);
            }
        }
        for o in copy.outputs.iter_mut().flatten() {
            let orig = self.g.value(*o);
            let name = self.names.fresh(&format!("{}/recompute", orig.name));
            let value = crate::ir::Value {
                name,
                dtype: orig.dtype,
                shape: orig.shape.clone(),
                constant: orig.constant.clone(),
                ..Default::default()
            };
            *o = self.patch.add_value(value);
        }
        // Node names share the value namespace: both must be unique for profiling.
        copy.name = self.names.fresh(&format!("{}/recompute", copy.name));
        copy.origin = Origin::RecomputeOf(p);
        self.copies[p.index()] = Some(copy.outputs.clone());
        self.pending.push(copy);
    }
}

/// The `pin-late` pass: each group of copies `recompute` placed before a backward node reads
/// one kept input per copy through `Reshape(x, shape(x) + 0 * int64(late[0]))`, `late` a
/// backward value made just before (the module's header says why).
pub struct PinLate;

impl Pass for PinLate {
    fn name(&self) -> &'static str {
        "pin-late"
    }
    fn summary(&self) -> &'static str {
        "each group of copies reads a kept input through a pin on a late backward value (against CSE and early scheduling)"
    }
    fn enabled(&self, unit: &Unit<'_>) -> bool {
        unit.rewrite.pin_late
    }
    fn run(&self, unit: &mut Unit<'_>) -> Result<(), PassError> {
        unit.info_for(self.name())?;
        let names = unit.take_names();
        let g = &mut unit.model.graph;
        let mut pinner =
            crate::pin::Pinner::with_names(names).made_by("pin-late", Region::Backward);
        let pinned = pin_groups(g, &mut pinner);
        unit.stats.rewrite.pinned_groups += pinned;
        unit.names = Some(pinner.into_names());
        Ok(())
    }
}

/// Pins the groups of copies of `g`'s backward (runs of `RecomputeOf` nodes); returns how
/// many groups got a pin. The pins' values are numbered right after their group's copies,
/// as a rewrite that pinned each group as it copied it would have numbered them (value ids
/// order the file's `value_info`).
fn pin_groups(g: &mut Graph, pinner: &mut crate::pin::Pinner) -> usize {
    let backward_start = g.backward_start();
    if !g.nodes[backward_start..]
        .iter()
        .any(|n| n.recompute_of().is_some())
    {
        return 0;
    }
    let mut is_copy = vec![false; g.values.len()];
    let mut first_copy_value = g.values.len();
    for n in &g.nodes[backward_start..] {
        if n.recompute_of().is_some() {
            for o in n.outputs.iter().flatten() {
                is_copy[o.index()] = true;
                first_copy_value = first_copy_value.min(o.index());
            }
        }
    }
    let copy = |v: ValueId| is_copy.get(v.index()).copied().unwrap_or(false);
    let node_count = g.nodes.len();
    let made_from = g.values.len();
    // Pins (their nodes and the values the pinner queues) go before their group.
    let mut patch = crate::ir::Patch::new(g);
    // Per group: its copies' values and its pins' values (ids), in order.
    let mut order: Vec<ValueId> = Vec::new();
    let mut pinned_groups = 0;
    // The most recent backward value (of a node the rewrite did not make), for pinning
    // copies late.
    let mut last_backward_value: Option<ValueId> = None;
    // The current group: its nodes' ids.
    let mut group = backward_start..backward_start;
    for id in backward_start..node_count {
        if g.nodes[id].recompute_of().is_some() {
            if group.is_empty() {
                group = id..id;
            }
            group.end = id + 1;
            continue;
        }
        let node = &g.nodes[id];
        if !group.is_empty() {
            // `node` is the backward node the group was copied for. Prefer a backward
            // value it reads (not a copy); else the latest one made.
            let late = node
                .inputs
                .iter()
                .flatten()
                .copied()
                .find(|&i| !copy(i) && g.value(i).producer.is_some_and(|p| g.in_backward(p)))
                .or(last_backward_value);
            let pins_from = patch.next_value().index();
            let mut pins = Vec::new();
            if let Some(late) = late {
                let mut pinned_any = false;
                let mut pinned_cache: BTreeMap<(ValueId, bool), ValueId> = BTreeMap::new();
                let mut dep: Option<Option<ValueId>> = None;
                for c in group.clone() {
                    // Copies (this group's or an earlier one's) are new values: only
                    // original values need the dependency.
                    let kept = g.nodes[c].inputs.iter().enumerate().find_map(|(k, i)| {
                        let i = (*i)?;
                        (!copy(i) && g.value(i).constant.is_none()).then_some((k, i))
                    });
                    let Some((k, x)) = kept else { continue };
                    let dep = *dep
                        .get_or_insert_with(|| pinner.late_zero(g, &mut patch, late, &mut pins));
                    let Some(dep) = dep else { break };
                    let merges = crate::pin::merges_a_reshape(&g.nodes[c].op_type);
                    let pinned = match pinned_cache.get(&(x, merges)) {
                        Some(&p) => Some(p),
                        None => {
                            let op = &g.nodes[c].op_type;
                            pinner.pin_for(g, &mut patch, x, dep, op, &mut pins)
                        }
                    };
                    if let Some(p) = pinned {
                        pinned_cache.insert((x, merges), p);
                        patch.set_input(NodeId(c as u32), k, Some(p));
                        pinned_any = true;
                    }
                }
                if pinned_any {
                    pinned_groups += 1;
                }
            }
            for c in group.clone() {
                order.extend(g.nodes[c].outputs.iter().flatten().copied());
            }
            order.extend((pins_from..patch.next_value().index()).map(|v| ValueId(v as u32)));
            patch.insert_all_before(NodeId(group.start as u32), pins);
            group = id..id;
        }
        if let Some(o) = g.nodes[id].outputs.iter().flatten().next() {
            last_backward_value = Some(*o);
        }
    }
    patch.apply(g);
    renumber_tail(g, backward_start, first_copy_value.min(made_from), &order);
    pinned_groups
}

/// Renumbers the values from `from` on into `order` (then any not in it, in id order), in
/// `g`'s nodes from `first_node` on and its initializer list (no other node or list refers
/// to them).
fn renumber_tail(g: &mut Graph, first_node: usize, from: usize, order: &[ValueId]) {
    let n = g.values.len();
    let mut new_id: Vec<u32> = vec![u32::MAX; n - from];
    // Per new position: the old index (from `from`).
    let mut old_of: Vec<usize> = Vec::with_capacity(n - from);
    for v in order.iter().map(|v| v.index()) {
        if v >= from && new_id[v - from] == u32::MAX {
            new_id[v - from] = (from + old_of.len()) as u32;
            old_of.push(v - from);
        }
    }
    for (k, id) in new_id.iter_mut().enumerate() {
        if *id == u32::MAX {
            *id = (from + old_of.len()) as u32;
            old_of.push(k);
        }
    }
    if old_of.iter().enumerate().all(|(k, &old)| k == old) {
        return;
    }
    let map = |v: &mut ValueId| {
        if v.index() >= from {
            *v = ValueId(new_id[v.index() - from]);
        }
    };
    let mut tail: Vec<crate::ir::Value> = g.values.split_off(from);
    g.values
        .extend(old_of.iter().map(|&old| std::mem::take(&mut tail[old])));
    for node in &mut g.nodes[first_node..] {
        node.inputs.iter_mut().flatten().for_each(map);
        node.outputs.iter_mut().flatten().for_each(map);
    }
    g.initializers.iter_mut().for_each(map);
    g.inputs.iter_mut().for_each(map);
    g.outputs.iter_mut().for_each(map);
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

/// A copy of `g` with room for what the rewrite adds (about half again).
fn copy_with_room(g: &Graph) -> Graph {
    let mut nodes = Vec::with_capacity(g.nodes.len() + g.nodes.len() / 2 + 64);
    nodes.extend(g.nodes.iter().cloned());
    let mut values = Vec::with_capacity(g.values.len() + g.values.len() / 2 + 64);
    values.extend(g.values.iter().cloned());
    Graph {
        name: g.name.clone(),
        doc_string: g.doc_string.clone(),
        nodes,
        values,
        inputs: g.inputs.clone(),
        outputs: g.outputs.clone(),
        initializers: g.initializers.clone(),
        opaque_sparse_initializers: g.opaque_sparse_initializers.clone(),
        opaque_quantization_annotations: g.opaque_quantization_annotations.clone(),
        metadata: g.metadata.clone(),
    }
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
        let all: Vec<ValueId> = g
            .forward_nodes()
            .iter()
            .flat_map(|n| n.outputs.iter().flatten().copied())
            .filter(|&v| not_recomputable(g, v).is_none() && !g.outputs.contains(&v))
            .collect();
        assert!(all.len() > 19_000, "{}", all.len());
        let (rg, report) = apply_recompute(g, &info, &all, RewriteOptions::default()).unwrap();
        assert!(report.copied_nodes >= 19_000, "{report:?}");
        crate::ir::verify(&rg).unwrap();
    }

    /// `pin-late` is a pass of its own, yet numbers values as the one-loop rewrite did: each
    /// group's copies, then that group's pins, group after group (value ids order the
    /// written `value_info`). And the passes run one by one give what `apply_recompute` gives.
    #[test]
    fn pins_are_numbered_after_their_group_and_passes_compose() {
        let m = synth::transformer_with_nodes(1_000);
        let (tm, info) = build_training_graph(&m, &synth::cross_entropy()).unwrap();
        let g = &tm.graph;
        let drop = droppable_forward_values(g);
        let opts = RewriteOptions {
            pin_late: true,
            hide_shapes: false,
        };
        let (rg, report) = apply_recompute(g, &info, &drop, opts).unwrap();
        assert!(report.groups > 1 && report.pinned_groups > 1, "{report:?}");
        let n0 = g.values.len() as u32;
        // Per run of new nodes (pins, then copies) before a backward node: the new values
        // it made, copies' first.
        let mut runs: Vec<(Vec<u32>, Vec<u32>)> = vec![Default::default()];
        for n in rg.backward_nodes() {
            let made = n.outputs.iter().flatten().map(|v| v.0).filter(|&v| v >= n0);
            match n.origin {
                Origin::RecomputeOf(_) => runs.last_mut().unwrap().0.extend(made),
                o if o.is_defence_of("pin-late") => {
                    let pins = &mut runs.last_mut().unwrap().1;
                    pins.extend(made);
                    pins.extend(
                        n.inputs
                            .iter()
                            .flatten()
                            .map(|v| v.0)
                            .filter(|&v| v >= n0 && rg.values[v as usize].initializer.is_some()),
                    );
                }
                _ => runs.push(Default::default()),
            }
        }
        let mut next = n0;
        let mut seen = std::collections::BTreeSet::new();
        for (copies, mut pins) in runs.into_iter().filter(|r| !r.0.is_empty()) {
            // Pins shared with an earlier group (its late value's zero) were made then.
            pins.retain(|v| seen.insert(*v));
            pins.sort_unstable();
            for v in copies.into_iter().chain(pins) {
                assert_eq!(v, next, "value {} out of order", rg.values[v as usize].name);
                next += 1;
            }
        }
        assert_eq!(next as usize, rg.values.len());
        // The same passes through the manager, one at a time, verified after each.
        let mut unit = Unit::training(tm.clone(), info.clone());
        unit.recompute = drop;
        unit.rewrite = opts;
        let mut mgr = Manager::new().verify_each(true);
        for pass in ["recompute", "pin-late", "hide-backward-shapes"] {
            mgr.run(&mut unit, pass, pass).unwrap();
        }
        assert_eq!(mgr.ran(), ["recompute", "pin-late"]);
        assert_eq!(unit.model.graph, rg);
        assert_eq!(unit.stats.rewrite, report);
    }

    /// A dropped view drops the value it is a view of (they share one buffer).
    #[test]
    fn views_are_dropped_with_their_base() {
        let m = synth::transformer_with_nodes(1_000);
        let (tm, _) = build_training_graph(&m, &synth::cross_entropy()).unwrap();
        let g = &tm.graph;
        let view = g
            .value_ids()
            .find(|&v| {
                g.value(v)
                    .producer
                    .is_some_and(|p| !g.in_backward(p) && is_view(g.node(p)))
                    && view_base(g, v).is_some()
            })
            .expect("a view of an activation");
        let base = view_base(g, view).unwrap();
        let closed = with_view_bases(g, &[view]);
        assert_eq!(closed[0], view);
        assert!(closed.contains(&base));
    }
}
