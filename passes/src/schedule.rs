//! Keeps the backward in the backward. ONNX Runtime's default execution order is a reverse
//! depth-first walk from the outputs, so a backward node that reads only forward values
//! (Relu's mask, Erf's exp(−x²), a transposed weight) may run during the forward and hold
//! its result until the backward needs it — memory no planner can win back. Each such node
//! reads one of its forward inputs through a pin (`pin.rs`) on the backward value made
//! just before it in file order, so it runs where the builder placed it.

use crate::ir::{Graph, Node, ValueId};
use crate::pin::Pinner;

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
