//! Keeps the backward in the backward. ONNX Runtime's default execution order is a reverse
//! depth-first walk from the outputs, so a backward node that reads only forward values
//! (Relu's mask, Erf's exp(−x²), a transposed weight) may run during the forward and hold
//! its result until the backward needs it — memory no planner can win back. Each such node
//! reads one of its forward inputs through a pin (`pin.rs`) on the backward value made
//! just before it in file order, so it runs where the builder placed it.

use crate::ir::{Graph, Node, ValueId};
use crate::pin::Pinner;

/// Moves the backward's sinks (nodes whose outputs no node reads: weight gradients, mostly)
/// to the end of the file, the one the builder placed first last.
///
/// ONNX Runtime's default order walks depth-first from the sinks, the last in the file first,
/// and runs a node only when the walk reaches it. In builder order the last sink is the
/// first layer's gradient, whose walk runs the whole chain of activation gradients before
/// any other sink: every weight-gradient MatMul then waits for the end of the step, holding
/// its activation gradient and its saved (or recomputed) input across the whole backward.
/// Reversed at the end, the sinks are walked in backward order, so each weight gradient runs
/// as soon as its inputs exist and frees them. Sinks read nothing another node writes after
/// them, so the file stays topologically sorted. Value ids are kept; node ids after
/// `forward_end` change. Returns how many sinks moved.
pub fn sinks_last(g: &mut Graph, forward_end: usize) -> usize {
    let mut read = vec![false; g.values.len()];
    for n in &g.nodes {
        for i in n.inputs.iter().flatten() {
            read[i.index()] = true;
        }
    }
    let backward: Vec<Node> = g.nodes.drain(forward_end..).collect();
    let (mut sinks, rest): (Vec<Node>, Vec<Node>) = backward
        .into_iter()
        .partition(|n| n.outputs.iter().flatten().all(|o| !read[o.index()]));
    sinks.reverse();
    let moved = sinks.len();
    for n in rest.into_iter().chain(sinks) {
        g.add_node(n);
    }
    moved
}

/// Pins backward roots (backward nodes none of whose inputs the backward computes).
/// Returns how many were pinned. Value ids are kept; node ids after `forward_end` change.
pub fn pin_backward_roots(g: &mut Graph, forward_end: usize) -> usize {
    let mut pinner = Pinner::new(g);
    let backward: Vec<Node> = g.nodes.drain(forward_end..).collect();
    let mut made_by_backward = vec![false; g.values.len()];
    for n in &backward {
        for o in n.outputs.iter().flatten() {
            made_by_backward[o.index()] = true;
        }
    }
    let mut out: Vec<Node> = Vec::with_capacity(backward.len());
    let mut last: Option<ValueId> = None;
    let mut pinned = 0;
    for mut node in backward {
        let reads_backward = node
            .inputs
            .iter()
            .flatten()
            .any(|&i| made_by_backward.get(i.index()).copied().unwrap_or(false));
        if !reads_backward {
            // The forward input to pin: an activation, else a parameter; never a constant
            // (ONNX Runtime folds nodes of constants away).
            let pick = node.inputs.iter().enumerate().find_map(|(k, i)| {
                let i = (*i)?;
                let v = g.value(i);
                (v.producer.is_some() && v.constant.is_none()).then_some((k, i))
            });
            let pick = pick.or_else(|| {
                node.inputs.iter().enumerate().find_map(|(k, i)| {
                    let i = (*i)?;
                    let v = g.value(i);
                    (v.initializer.is_some()
                        && v.dtype.is_some_and(|d| d.is_float())
                        && v.value_bytes_hint() > 64)
                        .then_some((k, i))
                })
            });
            if let (Some((k, x)), Some(late)) = (pick, last) {
                let mut pins = Vec::new();
                if let Some(dep) = pinner.late_zero(g, late, &mut pins) {
                    if let Some(p) = pinner.pin_for(g, x, dep, &node.op_type, &mut pins) {
                        node.inputs[k] = Some(p);
                        pinned += 1;
                    }
                }
                out.append(&mut pins);
            }
        }
        if let Some(&o) = node.outputs.iter().flatten().next() {
            last = Some(o);
        }
        out.push(node);
    }
    for n in out {
        g.add_node(n);
    }
    pinned
}

trait BytesHint {
    fn value_bytes_hint(&self) -> u64;
}

impl BytesHint for crate::ir::Value {
    /// Bytes of an initializer (0 when unknown).
    fn value_bytes_hint(&self) -> u64 {
        self.initializer
            .as_ref()
            .and_then(|t| t.size_bytes())
            .unwrap_or(0)
    }
}
