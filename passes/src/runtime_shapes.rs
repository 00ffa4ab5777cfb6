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

use crate::ir::{Graph, Node, NodeId, Shape, Tensor, ValueId};
use crate::ops::{self, OpCtx};
use crate::pin::Pinner;
use std::collections::HashMap;

/// Ops whose output is a view of their input (ONNX Runtime aliases the buffer): hiding their
/// input gains nothing, and ONNX Runtime merges chains of them, dropping shape inputs.
fn is_alias(op: &str) -> bool {
    matches!(
        op,
        "Reshape" | "Squeeze" | "Unsqueeze" | "Flatten" | "Identity"
    )
}

/// Runs `node`'s shape rule on what `g` currently knows; outputs whose rule fails or is
/// missing become unranked. Returns nothing: `g`'s values are updated.
fn infer_node(g: &mut Graph, nid: NodeId, opset: i64) {
    let node = g.node(nid);
    let outs = if node.is_standard_domain() {
        ops::lookup(&node.op_type).and_then(|r| {
            (r.infer)(&OpCtx {
                graph: g,
                node,
                opset,
            })
            .ok()
        })
    } else {
        None
    };
    let targets = node.outputs.clone();
    for (k, o) in targets.into_iter().enumerate() {
        let Some(o) = o else { continue };
        let info = outs.as_ref().and_then(|v| v.get(k).cloned());
        let v = g.value_mut(o);
        v.shape = info.as_ref().and_then(|i| i.shape.clone());
        v.constant = info.and_then(|i| i.constant);
    }
}

fn fully_known(s: &Option<Shape>) -> bool {
    s.as_ref()
        .is_some_and(|s| s.iter().all(|d| d.known().is_some()))
}

/// Makes every backward value (nodes `forward_end..`) whose buffer ONNX Runtime could pair
/// with another have dims ONNX Runtime cannot infer, and marks those values
/// `hide_shape`. Value ids are kept; node ids after `forward_end` change. Returns the
/// number of inputs read through a hiding alias.
pub fn hide_backward_shapes(g: &mut Graph, forward_end: usize, loss: ValueId, opset: i64) -> usize {
    // The truth, restored at the end; meanwhile `g` holds what inference alone can know.
    let mut truth: Vec<(Option<Shape>, Option<Tensor>)> = g
        .values
        .iter()
        .map(|v| (v.shape.clone(), v.constant.clone()))
        .collect();
    for v in &mut g.values {
        if v.producer.is_some() && v.initializer.is_none() {
            v.shape = None;
            v.constant = None;
        }
    }
    for i in 0..forward_end {
        infer_node(g, NodeId(i as u32), opset);
    }

    let mut pinner = Pinner::new(g);
    let backward: Vec<Node> = g.nodes.drain(forward_end..).collect();
    let mut zero: Option<Option<ValueId>> = None;
    let mut hidden_shape: HashMap<Vec<i64>, ValueId> = HashMap::new();
    let mut hidden_of: HashMap<ValueId, ValueId> = HashMap::new();
    let mut hides = 0;

    // Adds `n` and infers its outputs, remembering the true shapes of new values.
    let push = |g: &mut Graph, truth: &mut Vec<(Option<Shape>, Option<Tensor>)>, n: Node| {
        // Values made since the last node (new outputs, initializers) carry true shapes.
        for v in &g.values[truth.len()..] {
            truth.push((v.shape.clone(), v.constant.clone()));
        }
        let id = g.add_node(n);
        infer_node(g, id, opset);
    };

    for mut node in backward {
        // A node whose outputs are all tiny (the pins' own scalar arithmetic) cannot hold
        // a buffer worth pairing.
        let tiny = node.outputs.iter().flatten().all(|o| {
            let t = &truth[o.index()].0;
            let numel = t.as_deref().and_then(crate::ir::static_numel);
            numel.is_some_and(|n| n <= 16)
        });
        if !is_alias(&node.op_type) && !tiny {
            for k in 0..node.inputs.len() {
                let Some(x) = node.inputs[k] else { continue };
                let v = g.value(x);
                if v.initializer.is_some() || v.constant.is_some() || !fully_known(&v.shape) {
                    continue;
                }
                let Some(dims) = truth
                    .get(x.index())
                    .and_then(|t| t.0.as_ref())
                    .and_then(|s| crate::ir::static_dims(s))
                else {
                    continue;
                };
                if dims.is_empty() {
                    continue; // Scalars are never paired.
                }
                if let Some(&h) = hidden_of.get(&x) {
                    node.inputs[k] = Some(h);
                    continue;
                }
                let zero = match zero {
                    Some(z) => z,
                    None => {
                        let mut made = Vec::new();
                        let z = pinner.late_zero(g, loss, &mut made);
                        for n in made {
                            push(g, &mut truth, n);
                        }
                        zero = Some(z);
                        z
                    }
                };
                let Some(zero) = zero else { break };
                let mut made = Vec::new();
                let shape = match hidden_shape.get(&dims) {
                    Some(&s) => s,
                    None => {
                        let s = pinner.dims_plus(g, &dims, zero, &mut made);
                        hidden_shape.insert(dims.clone(), s);
                        s
                    }
                };
                let base = format!("{}/hidden", g.value(x).name);
                let h = pinner.reshape_to(g, x, shape, "hidden", &base, &mut made);
                for n in made {
                    push(g, &mut truth, n);
                }
                hidden_of.insert(x, h);
                node.inputs[k] = Some(h);
                hides += 1;
            }
        }
        push(g, &mut truth, node);
    }

    for (i, v) in g.values.iter_mut().enumerate() {
        let known = fully_known(&v.shape);
        let (shape, constant) = truth[i].clone();
        v.hide_shape = !known
            && v.initializer.is_none()
            && v.producer.is_some_and(|p| p.index() >= forward_end);
        v.shape = shape;
        v.constant = constant;
    }
    hides
}
