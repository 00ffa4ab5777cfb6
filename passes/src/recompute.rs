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
use std::collections::{BTreeMap, HashMap, HashSet};
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

/// Ops whose result changes from run to run: never recomputed.
pub fn is_random(n: &Node) -> bool {
    match n.op_type.as_str() {
        "RandomNormal" | "RandomUniform" | "RandomNormalLike" | "RandomUniformLike"
        | "Bernoulli" | "Multinomial" => true,
        // Dropout is random only in training mode (third input true).
        "Dropout" => n.input(2).is_some(),
        _ => false,
    }
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

struct Rewriter<'a> {
    src: &'a Graph,
    g: Graph,
    drop: HashSet<ValueId>,
    /// Copy of each forward node already made (by original node id).
    copies: HashMap<NodeId, Vec<Option<ValueId>>>,
    pinner: crate::pin::Pinner,
    pending: Vec<Node>,
    /// Copies made for the current group whose inputs include a kept value.
    roots: Vec<usize>,
}

impl Rewriter<'_> {
    fn fresh(&mut self, base: &str) -> String {
        self.pinner.fresh(&self.g, base)
    }

    /// The copy of `v` (a dropped value), made with its dropped sources on first request.
    fn copy_of(&mut self, v: ValueId) -> ValueId {
        let p = self
            .src
            .value(v)
            .producer
            .expect("dropped values have producers");
        if !self.copies.contains_key(&p) {
            let node = self.src.node(p).clone();
            let inputs: Vec<Option<ValueId>> = node
                .inputs
                .iter()
                .map(|i| {
                    i.map(|i| {
                        if self.drop.contains(&i) {
                            self.copy_of(i)
                        } else {
                            i
                        }
                    })
                })
                .collect();
            let outputs: Vec<Option<ValueId>> = node
                .outputs
                .iter()
                .map(|o| {
                    o.map(|o| {
                        let orig = self.src.value(o).clone();
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
                .any(|i| !self.drop.contains(i) && self.src.value(*i).constant.is_none());
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
        let k = self
            .src
            .node(p)
            .outputs
            .iter()
            .position(|o| *o == Some(v))
            .expect("v is an output of its producer");
        self.copies[&p][k].expect("copied output")
    }

    fn fresh_node_name(&mut self, base: &str) -> String {
        // Node names share the value namespace here: both must be unique for profiling.
        self.fresh(base)
    }
}

/// Rewrites `g` so that the values in `recompute` are dropped after their last forward use
/// and recomputed for the backward. Value ids of `g` stay valid in the result (new values
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
    let mut rw = Rewriter {
        src: g,
        g: g.clone(),
        drop: recompute.iter().copied().collect(),
        copies: HashMap::new(),
        pinner: crate::pin::Pinner::new(g),
        pending: Vec::new(),
        roots: Vec::new(),
    };
    let mut report = RewriteReport::default();
    let backward: Vec<Node> = rw.g.nodes.drain(info.forward_end..).collect();
    let mut out_nodes: Vec<Node> = Vec::with_capacity(backward.len());
    // The most recent backward value, for pinning copies late.
    let mut last_backward_value: Option<ValueId> = None;
    for mut node in backward {
        let needs_copy = node.inputs.iter().flatten().any(|i| rw.drop.contains(i));
        if needs_copy {
            rw.pending.clear();
            rw.roots.clear();
            let inputs: Vec<Option<ValueId>> = node
                .inputs
                .iter()
                .map(|i| {
                    i.map(|i| {
                        if rw.drop.contains(&i) {
                            rw.copy_of(i)
                        } else {
                            i
                        }
                    })
                })
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
                        let key = (
                            x,
                            matches!(
                                reader.as_str(),
                                "Reshape" | "Squeeze" | "Unsqueeze" | "Flatten"
                            ),
                        );
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
                out_nodes.extend(pins);
                out_nodes.append(&mut group);
            }
            node.inputs = inputs;
        }
        if let Some(o) = node.outputs.iter().flatten().next() {
            last_backward_value = Some(*o);
        }
        out_nodes.push(node);
    }
    for n in out_nodes {
        rw.g.add_node(n);
    }
    if opts.hide_shapes {
        report.hidden_inputs =
            crate::runtime_shapes::hide_backward_shapes(&mut rw.g, info.forward_end, info.loss, info.opset);
    }
    crate::ir::verify(&rw.g)?;
    Ok((rw.g, report))
}
