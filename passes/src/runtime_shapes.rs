//! Keeping ONNX Runtime from pairing backward buffers with forward ones.
//!
//! ONNX Runtime's allocation planner gives a new value the most recently freed buffer of
//! exactly the same shape, and releases a shared buffer only after the last reader of the
//! last value in it. A forward activation dropped for recomputation dies early in the
//! forward; the next value of its shape is often a backward one, so the buffer stays
//! allocated, idle, from the forward until that backward value dies — across the backward's
//! peak. Measured on the GPT-2 fixture, this ate the whole saving of recomputation.
//!
//! The planner pairs buffers only when both values' shapes are fully known when the session
//! is created. So every backward node reads its forward inputs (and graph inputs) through
//! `Reshape(x, dims(x) + zero)`, where `zero` is `0 * int64(loss[0])`: the same tensor (a
//! zero-copy alias), but with dims that shape inference cannot know. Everything the backward
//! computes from such inputs has unknown dims too, and `value_info` is not written for it
//! (`Value::hide_shape`), so no backward value reuses a buffer the forward freed, and the
//! backward's own values are freed at their last reader. Which values end up unknown is
//! decided by running the shape rules without the file's shapes, the way ONNX Runtime's
//! inference sees the graph.

use crate::ir::{Graph, Node, NodeId, Patch, Region, Shape, Tensor, ValueId};
use crate::ops::{self, OpCtx, OutInfo};
use crate::pass::{Pass, PassError, Unit};
use crate::pin::Pinner;
use std::collections::HashMap;

/// Ops whose output is a view of their input (ONNX Runtime aliases the buffer): hiding their
/// input gains nothing, and ONNX Runtime merges chains of them, dropping shape inputs
/// (`ops::MemoryClass::is_view`).
pub fn is_alias(op: &str) -> bool {
    ops::is_view_op(op)
}

/// True shapes and constants of the values whose inferred ones `g` holds meanwhile (saved
/// when first overwritten; a value never overwritten keeps its true ones in `g`).
#[derive(Default)]
struct Truths {
    /// Per value: its true shape, once saved.
    shapes: Vec<Option<Option<Shape>>>,
    /// The saved values that had a constant, and it.
    constants: Vec<(ValueId, Tensor)>,
}

impl Truths {
    /// Saves `v`'s true shape and constant (once), leaving neither in `g`.
    fn save(&mut self, g: &mut Graph, v: ValueId) {
        let i = v.index();
        if self.shapes.len() <= i {
            self.shapes.resize(g.values.len().max(i + 1), None);
        }
        if self.shapes[i].is_none() {
            let val = g.value_mut(v);
            self.shapes[i] = Some(val.shape.take());
            if let Some(c) = val.constant.take() {
                self.constants.push((v, c));
            }
        }
    }

    /// `v`'s true shape.
    fn shape<'g>(&'g self, g: &'g Graph, v: ValueId) -> Option<&'g Shape> {
        match self.shapes.get(v.index()) {
            Some(Some(s)) => s.as_ref(),
            _ => g.value(v).shape.as_ref(),
        }
    }
}

/// Shape rules by op type (`ops::shape_rule`, remembered).
#[derive(Default)]
struct Rules(HashMap<String, Option<ops::ShapeRule>, crate::fxhash::FastHash>);

impl Rules {
    fn get(&mut self, op_type: &str) -> Option<ops::ShapeRule> {
        if let Some(&r) = self.0.get(op_type) {
            return r;
        }
        let r = ops::shape_rule(op_type);
        self.0.insert(op_type.to_string(), r);
        r
    }
}

/// What `node`'s shape rule infers from what `g` currently knows, per output (`node` need
/// not be in `g` yet: the pass infers nodes it has only queued); `None` past the rule's
/// outputs, or for all of them when it fails or is missing.
fn inferred(g: &Graph, node: &Node, opset: i64, rules: &mut Rules) -> Vec<Option<OutInfo>> {
    let outs = if node.is_standard_domain() {
        rules.get(&node.op_type).and_then(|r| {
            r(&OpCtx {
                graph: g,
                node,
                opset,
            })
            .ok()
        })
    } else {
        None
    };
    let mut outs = outs.unwrap_or_default().into_iter();
    node.outputs.iter().map(|_| outs.next()).collect()
}

/// Makes `g` hold what inference knows of `outputs` (unranked where it knows nothing), their
/// true shapes saved in `truths` first.
fn record(
    g: &mut Graph,
    outputs: &[Option<ValueId>],
    infos: Vec<Option<OutInfo>>,
    truths: &mut Truths,
) {
    for (&o, info) in outputs.iter().zip(infos) {
        let Some(o) = o else { continue };
        truths.save(g, o);
        let v = g.value_mut(o);
        (v.shape, v.constant) = match info {
            Some(i) => (i.shape, i.constant),
            None => (None, None),
        };
    }
}

/// Infers `node` (queued, not in `g`) into `g`'s values.
fn infer_node(g: &mut Graph, node: &Node, opset: i64, truths: &mut Truths, rules: &mut Rules) {
    let infos = inferred(g, node, opset, rules);
    record(g, &node.outputs, infos, truths);
}

/// Infers node `id` of `g` into `g`'s values.
fn infer_in_place(g: &mut Graph, id: NodeId, opset: i64, truths: &mut Truths, rules: &mut Rules) {
    let infos = inferred(g, g.node(id), opset, rules);
    // (Taken for the call, which writes the graph's values; put back as they were.)
    let outputs = std::mem::take(&mut g.node_mut(id).outputs);
    record(g, &outputs, infos, truths);
    g.node_mut(id).outputs = outputs;
}

/// Queues `made` before node `before`, inferring each node as it comes.
fn queue(
    g: &mut Graph,
    patch: &mut Patch,
    before: NodeId,
    made: Vec<Node>,
    opset: i64,
    truths: &mut Truths,
    rules: &mut Rules,
) {
    for n in made {
        infer_node(g, &n, opset, truths, rules);
        patch.insert_before(before, n);
    }
}

fn fully_known(s: &Option<Shape>) -> bool {
    s.as_ref()
        .is_some_and(|s| s.iter().all(|d| d.known().is_some()))
}

/// The `hide-backward-shapes` pass: [`hide_backward_shapes`] of the training graph.
pub struct HideBackwardShapes;

impl Pass for HideBackwardShapes {
    fn name(&self) -> &'static str {
        "hide-backward-shapes"
    }
    fn summary(&self) -> &'static str {
        "the backward reads forward values through aliases of dims ONNX Runtime cannot infer (against buffer pairing)"
    }
    fn enabled(&self, unit: &Unit<'_>) -> bool {
        unit.rewrite.hide_shapes
    }
    fn run(&self, unit: &mut Unit<'_>) -> Result<(), PassError> {
        let info = unit.info_for(self.name())?;
        let (loss, opset) = (info.loss, info.opset);
        let mut pinner =
            Pinner::with_names(unit.take_names()).made_by(self.name(), Region::Backward);
        unit.stats.rewrite.hidden_inputs +=
            hide_backward_shapes(&mut unit.model.graph, loss, opset, &mut pinner);
        unit.names = Some(pinner.into_names());
        Ok(())
    }
}

/// Makes every backward value whose buffer ONNX Runtime could pair with another have dims
/// ONNX Runtime cannot infer, and marks those values `hide_shape`: the backward reads its
/// inputs through aliases (made by `pinner`, which avoids every name of `g`), queued in one
/// patch. Value ids are kept; backward node ids change. Returns the number of inputs read
/// through an alias.
fn hide_backward_shapes(
    g: &mut Graph,
    loss: ValueId,
    opset: i64,
    pinner: &mut Pinner<'_>,
) -> usize {
    let backward_start = g.backward_start();
    let node_count = g.nodes.len();
    // The truth, restored at the end; meanwhile `g` holds what inference alone can know.
    let mut truths = Truths::default();
    truths
        .shapes
        .reserve(g.values.len() + g.values.len() / 2 + 64);
    for i in 0..g.values.len() {
        let v = &g.values[i];
        if v.producer.is_some() && v.initializer.is_none() {
            truths.save(g, ValueId(i as u32));
        }
    }
    let mut rules = Rules::default();
    for id in g.node_ids().take(backward_start).collect::<Vec<_>>() {
        infer_in_place(g, id, opset, &mut truths, &mut rules);
    }

    // The aliases' nodes and the rewired inputs (the aliases' values are applied as they
    // are made: this patch adds none).
    let mut patch = Patch::new(g);
    let mut zero: Option<Option<ValueId>> = None;
    let mut hidden_shape: HashMap<Vec<i64>, ValueId> = HashMap::new();
    // Per value: the alias it is read through.
    let mut hidden_of: Vec<Option<ValueId>> = vec![None; g.values.len()];
    let mut hides = 0;

    // The backward in order: each node's aliases are queued (and inferred) before it, then
    // it is inferred as it will read.
    for id in (backward_start..node_count).map(|k| NodeId(k as u32)) {
        let node = g.node(id);
        // A node whose outputs are all tiny (the pins' own scalar arithmetic) cannot hold
        // a buffer worth pairing.
        let tiny = node.outputs.iter().flatten().all(|o| {
            let numel = truths.shape(g, *o).and_then(|s| crate::ir::static_numel(s));
            numel.is_some_and(|n| n <= 16)
        });
        // Its inputs as it will read them, once one changes.
        let mut reads: Option<Vec<Option<ValueId>>> = None;
        if !is_alias(&node.op_type) && !tiny {
            for k in 0..g.node(id).inputs.len() {
                let Some(x) = g.node(id).inputs[k] else {
                    continue;
                };
                // (An input hidden before passed every check below, and what they read has
                // not changed since.)
                let h = match hidden_of.get(x.index()).copied().flatten() {
                    Some(h) => h,
                    None => {
                        let v = g.value(x);
                        if v.initializer.is_some() || v.constant.is_some() || !fully_known(&v.shape)
                        {
                            continue;
                        }
                        let Some(dims) = truths.shape(g, x).and_then(|s| crate::ir::static_dims(s))
                        else {
                            continue;
                        };
                        if dims.is_empty() {
                            continue; // Scalars are never paired.
                        }
                        let zero = match zero {
                            Some(z) => z,
                            None => {
                                let mut made = Vec::new();
                                // (Values applied at once: the shape rules read them.)
                                let mut values = Patch::new(g);
                                let z = pinner.late_zero(g, &mut values, loss, &mut made);
                                values.apply(g);
                                queue(g, &mut patch, id, made, opset, &mut truths, &mut rules);
                                zero = Some(z);
                                z
                            }
                        };
                        let Some(zero) = zero else { break };
                        let mut made = Vec::new();
                        let mut values = Patch::new(g);
                        let shape = match hidden_shape.get(&dims) {
                            Some(&s) => s,
                            None => {
                                let s = pinner.dims_plus(&mut values, &dims, zero, &mut made);
                                hidden_shape.insert(dims, s);
                                s
                            }
                        };
                        let base = format!("{}/hidden", g.value(x).name);
                        let h =
                            pinner.reshape_to(g, &mut values, x, shape, "hidden", &base, &mut made);
                        values.apply(g);
                        queue(g, &mut patch, id, made, opset, &mut truths, &mut rules);
                        if hidden_of.len() <= x.index() {
                            hidden_of.resize(x.index() + 1, None);
                        }
                        hidden_of[x.index()] = Some(h);
                        hides += 1;
                        h
                    }
                };
                reads.get_or_insert_with(|| g.node(id).inputs.clone())[k] = Some(h);
                patch.set_input(id, k, Some(h));
            }
        }
        match reads {
            None => infer_in_place(g, id, opset, &mut truths, &mut rules),
            Some(inputs) => {
                // Inferred as it will read; the patch rewires it.
                let file = std::mem::replace(&mut g.node_mut(id).inputs, inputs);
                infer_in_place(g, id, opset, &mut truths, &mut rules);
                g.node_mut(id).inputs = file;
            }
        }
    }
    patch.apply(g);

    let in_backward: Vec<bool> = g.node_ids().map(|n| g.in_backward(n)).collect();
    for (i, v) in g.values.iter_mut().enumerate() {
        v.hide_shape = v.initializer.is_none()
            && v.producer.is_some_and(|p| in_backward[p.index()])
            && !fully_known(&v.shape);
        if let Some(shape) = truths.shapes.get_mut(i).and_then(Option::take) {
            v.shape = shape;
            v.constant = None;
        }
    }
    for (v, c) in truths.constants {
        g.value_mut(v).constant = Some(c);
    }
    hides
}
