//! Keeps the backward in the backward. ONNX Runtime's default execution order is a reverse
//! depth-first walk from the outputs, so a backward node that reads only forward values
//! (Relu's mask, Erf's exp(−x²), a transposed weight) may run during the forward and hold
//! its result until the backward needs it — memory no planner can win back. Each such node
//! reads one of its forward inputs through a pin (`pin.rs`) on the backward value made
//! just before it in file order, so it runs where the builder placed it.

use crate::ir::{Graph, Node, NodeId, Patch, Region, ValueId};
use crate::pass::{Pass, PassError, Unit};
use crate::pin::Pinner;

/// The `order-backward` pass: [`sinks_last`], then [`pin_backward_roots`].
pub struct OrderBackward;

impl Pass for OrderBackward {
    fn name(&self) -> &'static str {
        "order-backward"
    }
    fn summary(&self) -> &'static str {
        "orders the backward for ONNX Runtime's walk: sinks last, roots pinned late"
    }
    fn run(&self, unit: &mut Unit<'_>) -> Result<(), PassError> {
        let info = unit.info_for(self.name())?;
        let loss = info.loss;
        let seed = unit.seed.ok_or(PassError::Missing {
            pass: self.name(),
            what: "the loss gradient's seed (pass autodiff)",
        })?;
        let g = &mut unit.model.graph;
        sinks_last(g);
        pin_backward_roots(g, loss, seed);
        unit.names = None;
        Ok(())
    }
}

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
/// them, so the file stays topologically sorted. Value ids are kept; backward node ids
/// change. Returns how many sinks moved.
pub fn sinks_last(g: &mut Graph) -> usize {
    let backward_start = g.backward_start();
    let mut read = vec![false; g.values.len()];
    for n in &g.nodes {
        for i in n.inputs.iter().flatten() {
            read[i.index()] = true;
        }
    }
    let backward = &g.nodes[backward_start..];
    let is_sink: Vec<bool> = backward
        .iter()
        .map(|n| n.outputs.iter().flatten().all(|o| !read[o.index()]))
        .collect();
    let early = early_contributions(g, backward, &is_sink);
    let mut pinner = Pinner::new(g).made_by("order-backward", Region::Backward);
    // Pins (their nodes and the values the pinner queues) go before their reader; the sinks
    // leave their place for the end, reversed.
    let mut patch = Patch::new(g);
    let node_count = g.nodes.len();
    let mut sinks = Vec::new();
    for k in 0..node_count - backward_start {
        let id = NodeId((backward_start + k) as u32);
        if is_sink[k] {
            sinks.push(id);
            continue;
        }
        if early[k].is_empty() {
            continue;
        }
        // The node's inputs as its pins rewire them: each contribution pins the first
        // input still read from a computed value (a pin's value has no producer yet).
        let mut inputs = g.node(id).inputs.clone();
        for &c in &early[k] {
            let x = inputs.iter().enumerate().find_map(|(j, i)| {
                let i = (*i)?;
                let v = patch.read(g, i);
                (v.producer.is_some() && v.constant.is_none()).then_some((j, i))
            });
            let Some((j, x)) = x else { continue };
            let mut pins = Vec::new();
            if let Some(dep) = pinner.late_zero(g, &mut patch, c, &mut pins) {
                let op = &g.node(id).op_type;
                if let Some(p) = pinner.pin_for(g, &mut patch, x, dep, op, &mut pins) {
                    inputs[j] = Some(p);
                    patch.set_input(id, j, Some(p));
                }
            }
            patch.insert_all_before(id, pins);
        }
    }
    let moved = sinks.len();
    let end = NodeId(node_count as u32);
    for &s in sinks.iter().rev() {
        patch.insert_before(end, g.node(s).clone());
        patch.replace(s, Vec::new());
    }
    patch.apply(g);
    moved
}

/// A parameter used in several places gets its gradient from a sink that sums the
/// contributions (a tied embedding: the LM head's part at the start of the backward, the
/// embedding's at its end). ONNX Runtime's walk reaches a contribution only through that
/// sink, at the end, so the first part would be computed last and hold its inputs (the
/// logits' gradient) across the whole backward. Each contribution but the last is made an
/// input of the next backward node that is not a sink (through a pin, zero-size), so it runs
/// as soon as its inputs exist. Returns, per node of `backward`, the contributions to pin
/// it on.
fn early_contributions(g: &Graph, backward: &[Node], is_sink: &[bool]) -> Vec<Vec<ValueId>> {
    let mut made_at: Vec<Option<usize>> = vec![None; g.values.len()];
    for (k, n) in backward.iter().enumerate() {
        for o in n.outputs.iter().flatten() {
            made_at[o.index()] = Some(k);
        }
    }
    let mut early: Vec<Vec<ValueId>> = vec![Vec::new(); backward.len()];
    for (k, n) in backward.iter().enumerate() {
        if !is_sink[k] || n.op_type != "Sum" {
            continue;
        }
        let mut parts: Vec<(usize, ValueId)> = n
            .inputs
            .iter()
            .flatten()
            .filter_map(|&i| made_at[i.index()].map(|m| (m, i)))
            .collect();
        parts.sort_unstable();
        parts.pop();
        for (m, c) in parts {
            // The next node after the contribution's producer that is no sink and reads a
            // computed value (it cannot be an ancestor of the contribution: the file is
            // sorted).
            let next = (m + 1..backward.len()).find(|&j| {
                !is_sink[j]
                    && backward[j].inputs.iter().flatten().any(|&i| {
                        let v = g.value(i);
                        v.producer.is_some() && v.constant.is_none()
                    })
            });
            if let Some(j) = next {
                early[j].push(c);
            }
        }
    }
    early
}

/// How many readers computing from forward values alone a root's pin looks through.
const MAX_FACTOR_DEPTH: usize = 16;

/// Pins backward roots (backward nodes none of whose inputs the backward computes); `seed`
/// is the gradient the backward starts from. Returns how many were pinned. Value ids are
/// kept; backward node ids change.
///
/// A pin must not extend a lifetime nor make a value run early: the late value it reads is
/// one the root's first reader reads anyway (a backward input of it made before the root).
/// Only when there is none does the pin read the loss (alive the whole run anyway): the root
/// then cannot run before the forward ends, and ONNX Runtime's walk reaches it through its
/// reader.
pub fn pin_backward_roots(g: &mut Graph, loss: ValueId, seed: ValueId) -> usize {
    let backward_start = g.backward_start();
    let mut pinner = Pinner::new(g).made_by("order-backward", Region::Backward);
    let backward = &g.nodes[backward_start..];
    let mut made_by_backward = vec![false; g.values.len()];
    for n in backward {
        for o in n.outputs.iter().flatten() {
            made_by_backward[o.index()] = true;
        }
    }
    let made = |v: ValueId| made_by_backward.get(v.index()).copied().unwrap_or(false);
    // Each backward node's backward-made inputs.
    let readers_inputs: Vec<Vec<ValueId>> = backward
        .iter()
        .map(|n| {
            n.inputs
                .iter()
                .flatten()
                .copied()
                .filter(|&i| made(i))
                .collect()
        })
        .collect();
    // Where in `backward` each value is made.
    let mut made_at: Vec<Option<usize>> = vec![None; g.values.len()];
    for (k, n) in backward.iter().enumerate() {
        for o in n.outputs.iter().flatten() {
            made_at[o.index()] = Some(k);
        }
    }
    let is_root: Vec<bool> = backward
        .iter()
        .map(|n| !n.inputs.iter().flatten().any(|&i| made(i)))
        .collect();
    // Backward nodes that do not read the gradient flowing from `seed` (derivative factors
    // such as `y * (1 - y)`, computed from forward values alone).
    let mut forward_only = vec![true; backward.len()];
    for (k, n) in backward.iter().enumerate() {
        forward_only[k] =
            !n.inputs.iter().flatten().any(|&i| {
                i == seed || made_at[i.index()].is_some_and(|m| m < k && !forward_only[m])
            });
    }
    // The first backward reader of each value, by position in `backward`.
    let mut first_reader: Vec<Option<usize>> = vec![None; g.values.len()];
    for (k, n) in backward.iter().enumerate() {
        for &i in n.inputs.iter().flatten() {
            if let Some(slot) = first_reader.get_mut(i.index()) {
                slot.get_or_insert(k);
            }
        }
    }
    // Per backward node: the first backward node reading one of its outputs.
    let next_reader: Vec<Option<usize>> = backward
        .iter()
        .map(|n| {
            n.outputs
                .iter()
                .flatten()
                .filter_map(|o| first_reader[o.index()])
                .min()
        })
        .collect();
    // Each root's pin (its nodes and the values the pinner queues) goes right before it.
    let mut patch = Patch::new(g);
    let mut pinned = 0;
    for k in 0..is_root.len() {
        if is_root[k] {
            // A backward input of the root's first reader, made before the root (so it cannot
            // depend on it).
            let reader = next_reader[k];
            // Through the readers that compute from forward values alone, to the first one
            // that reads a gradient: pinned on that gradient, the root runs when it is
            // needed instead of as soon as the forward ends, where ONNX Runtime's walk puts
            // a factor visited before the gradient it multiplies (every layer's factors
            // would then be alive at once).
            let mut at = reader;
            for _ in 0..MAX_FACTOR_DEPTH {
                match at {
                    Some(r) if forward_only[r] => at = next_reader[r],
                    _ => break,
                }
            }
            let gradient = at.filter(|&r| !forward_only[r]).and_then(|r| {
                readers_inputs[r]
                    .iter()
                    .copied()
                    .find(|&i| made_at[i.index()].is_some_and(|m| m < k && !forward_only[m]))
            });
            let read_anyway = gradient.or_else(|| {
                reader.and_then(|r| {
                    readers_inputs[r]
                        .iter()
                        .copied()
                        .find(|&i| made_at[i.index()].is_some_and(|m| m < k))
                })
            });
            if let Some(late) = read_anyway.or(Some(loss)) {
                let id = NodeId((backward_start + k) as u32);
                pinned += pin_one(g, &mut pinner, id, late, &mut patch);
            }
        }
    }
    patch.apply(g);
    pinned
}

/// The forward input of a root to pin: an activation, else a parameter; never a constant
/// (ONNX Runtime folds nodes of constants away).
fn pick_input(g: &Graph, node: &Node) -> Option<(usize, ValueId)> {
    let pick = node.inputs.iter().enumerate().find_map(|(k, i)| {
        let i = (*i)?;
        let v = g.value(i);
        (v.producer.is_some() && v.constant.is_none()).then_some((k, i))
    });
    pick.or_else(|| {
        node.inputs.iter().enumerate().find_map(|(k, i)| {
            let i = (*i)?;
            let v = g.value(i);
            (v.initializer.is_some()
                && v.dtype.is_some_and(|d| d.is_float())
                && v.value_bytes_hint() > 64)
                .then_some((k, i))
        })
    })
}

/// Queues the pin of root `id` on `late` into `patch`; 1 if pinned.
fn pin_one(g: &Graph, pinner: &mut Pinner, id: NodeId, late: ValueId, patch: &mut Patch) -> usize {
    let Some((k, x)) = pick_input(g, g.node(id)) else {
        return 0;
    };
    let mut pins = Vec::new();
    let mut done = 0;
    if let Some(dep) = pinner.late_zero(g, patch, late, &mut pins) {
        let op = &g.node(id).op_type;
        if let Some(p) = pinner.pin_for(g, patch, x, dep, op, &mut pins) {
            patch.set_input(id, k, Some(p));
            done = 1;
        }
    }
    patch.insert_all_before(id, pins);
    done
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
