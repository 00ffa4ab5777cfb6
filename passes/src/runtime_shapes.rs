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

use crate::ir::{Graph, Node, NodeId, Patch, Shape, Tensor, ValueId};
use crate::ops::{self, OpCtx};
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

/// Runs `node`'s shape rule on what `g` currently knows; outputs whose rule fails or is
/// missing become unranked. Returns nothing: `g`'s values are updated (their true shapes
/// saved in `truths` first).
fn infer_node(g: &mut Graph, nid: NodeId, opset: i64, truths: &mut Truths, rules: &mut Rules) {
    let node = g.node(nid);
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
    for k in 0..g.node(nid).outputs.len() {
        let info = outs.next();
        let Some(o) = g.node(nid).outputs[k] else {
            continue;
        };
        truths.save(g, o);
        let v = g.value_mut(o);
        (v.shape, v.constant) = match info {
            Some(i) => (i.shape, i.constant),
            None => (None, None),
        };
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
        let info = unit.info.as_ref().ok_or(PassError::Missing {
            pass: "hide-backward-shapes",
            what: "a training graph (pass autodiff)",
        })?;
        let (forward_end, loss, opset) = (info.forward_end, info.loss, info.opset);
        let mut pinner = Pinner::with_names(unit.take_names()).made_by(self.name());
        let g = &mut unit.model.graph;
        let backward: Vec<Node> = g.nodes.split_off(forward_end.min(g.nodes.len()));
        unit.stats.rewrite.hidden_inputs +=
            hide_backward_nodes(g, backward, loss, opset, &mut pinner);
        unit.names = Some(pinner.into_names());
        Ok(())
    }
}

/// Makes every backward value (nodes `forward_end..`) whose buffer ONNX Runtime could pair
/// with another have dims ONNX Runtime cannot infer, and marks those values
/// `hide_shape`. Value ids are kept; node ids after `forward_end` change. Returns the
/// number of inputs read through a hiding alias.
pub fn hide_backward_shapes(g: &mut Graph, forward_end: usize, loss: ValueId, opset: i64) -> usize {
    let mut pinner = Pinner::new(g).made_by("hide-backward-shapes");
    let backward: Vec<Node> = g.nodes.drain(forward_end..).collect();
    hide_backward_nodes(g, backward, loss, opset, &mut pinner)
}

/// [`hide_backward_shapes`] of the graph made of `g` (its forward: every node of `g`) and
/// `backward` (its backward, appended to `g`). `pinner` avoids every name of that graph.
///
/// Not one patch: the backward is rebuilt node by node, each node's outputs inferred from
/// what the nodes before it (aliases included) made, so each alias's values (queued by the
/// pinner in a patch) are applied to `g` before its nodes are appended and inferred.
fn hide_backward_nodes(
    g: &mut Graph,
    backward: impl IntoIterator<Item = Node>,
    loss: ValueId,
    opset: i64,
    pinner: &mut Pinner<'_>,
) -> usize {
    let forward_end = g.nodes.len();
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
    for i in 0..forward_end {
        infer_node(g, NodeId(i as u32), opset, &mut truths, &mut rules);
    }

    let mut zero: Option<Option<ValueId>> = None;
    let mut hidden_shape: HashMap<Vec<i64>, ValueId> = HashMap::new();
    // Per value: the alias it is read through.
    let mut hidden_of: Vec<Option<ValueId>> = vec![None; g.values.len()];
    let mut hides = 0;

    // Adds `n` and infers its outputs.
    let mut push = |g: &mut Graph, truths: &mut Truths, n: Node| {
        let id = g.add_node(n);
        infer_node(g, id, opset, truths, &mut rules);
    };

    for mut node in backward {
        // A node whose outputs are all tiny (the pins' own scalar arithmetic) cannot hold
        // a buffer worth pairing.
        let tiny = node.outputs.iter().flatten().all(|o| {
            let numel = truths.shape(g, *o).and_then(|s| crate::ir::static_numel(s));
            numel.is_some_and(|n| n <= 16)
        });
        if !is_alias(&node.op_type) && !tiny {
            for k in 0..node.inputs.len() {
                let Some(x) = node.inputs[k] else { continue };
                // (An input hidden before passed every check below, and what they read has
                // not changed since.)
                if let Some(h) = hidden_of.get(x.index()).copied().flatten() {
                    node.inputs[k] = Some(h);
                    continue;
                }
                let v = g.value(x);
                if v.initializer.is_some() || v.constant.is_some() || !fully_known(&v.shape) {
                    continue;
                }
                let Some(dims) = truths.shape(g, x).and_then(|s| crate::ir::static_dims(s)) else {
                    continue;
                };
                if dims.is_empty() {
                    continue; // Scalars are never paired.
                }
                let zero = match zero {
                    Some(z) => z,
                    None => {
                        let mut made = Vec::new();
                        let mut patch = Patch::new(g);
                        let z = pinner.late_zero(g, &mut patch, loss, &mut made);
                        patch.apply(g);
                        for n in made {
                            push(g, &mut truths, n);
                        }
                        zero = Some(z);
                        z
                    }
                };
                let Some(zero) = zero else { break };
                let mut made = Vec::new();
                let mut patch = Patch::new(g);
                let shape = match hidden_shape.get(&dims) {
                    Some(&s) => s,
                    None => {
                        let s = pinner.dims_plus(&mut patch, &dims, zero, &mut made);
                        hidden_shape.insert(dims, s);
                        s
                    }
                };
                let base = format!("{}/hidden", g.value(x).name);
                let h = pinner.reshape_to(g, &mut patch, x, shape, "hidden", &base, &mut made);
                patch.apply(g);
                for n in made {
                    push(g, &mut truths, n);
                }
                if hidden_of.len() <= x.index() {
                    hidden_of.resize(x.index() + 1, None);
                }
                hidden_of[x.index()] = Some(h);
                node.inputs[k] = Some(h);
                hides += 1;
            }
        }
        push(g, &mut truths, node);
    }

    for (i, v) in g.values.iter_mut().enumerate() {
        v.hide_shape = v.initializer.is_none()
            && v.producer.is_some_and(|p| p.index() >= forward_end)
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
