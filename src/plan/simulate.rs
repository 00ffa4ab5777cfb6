//! The memory simulator: for a graph and an execution order, the bytes alive at every step,
//! the peak, and what is alive at the peak.
//!
//! Model (matching how ONNX Runtime's CPU allocation planner behaves, see docs/design.md):
//! - parameters and graph inputs are alive for the whole step (they are counted apart);
//! - a node's outputs are allocated when it runs, and a value is freed after its last
//!   reader ran; graph outputs live to the end;
//! - Reshape, Flatten, Squeeze, Unsqueeze and Identity outputs alias their input's buffer;
//! - elementwise ops may write in place into an input that dies at that node and has the
//!   output's size (ONNX Runtime's `MayInplace` kernels);
//! - values known at compile time (folded shapes, constants) are initializers after
//!   ONNX Runtime's constant folding: not activations.

use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, NodeId, ValueId};
use serde::Serialize;

/// ONNX Runtime's default execution order: a reverse depth-first walk from the nodes whose
/// outputs no node reads, taking the last such node first and, below each node, its
/// producers by ascending index (GraphViewer's topological order with `NodeCompare`).
pub fn ort_default_order(g: &Graph) -> Vec<NodeId> {
    let n = g.nodes.len();
    let mut producer_nodes: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut has_consumer = vec![false; n];
    for (i, node) in g.nodes.iter().enumerate() {
        for v in node.inputs.iter().flatten() {
            if let Some(p) = g.value(*v).producer {
                if !producer_nodes[i].contains(&p.index()) {
                    producer_nodes[i].push(p.index());
                }
                has_consumer[p.index()] = true;
            }
        }
    }
    let mut stack: Vec<(usize, bool)> = (0..n)
        .filter(|&i| !has_consumer[i])
        .map(|i| (i, false))
        .collect();
    let mut visited = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while let Some((i, leave)) = stack.pop() {
        if leave {
            order.push(NodeId(i as u32));
            continue;
        }
        if visited[i] {
            continue;
        }
        visited[i] = true;
        stack.push((i, true));
        let mut ins = producer_nodes[i].clone();
        // Sorted by descending index and pushed in that order: the smallest is popped first.
        ins.sort_unstable_by(|a, b| b.cmp(a));
        for p in ins {
            if !visited[p] {
                stack.push((p, false));
            }
        }
    }
    order
}

fn aliases_input(op: &str) -> bool {
    matches!(
        op,
        "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Identity"
    )
}

fn may_inplace(op: &str) -> bool {
    matches!(
        op,
        "Relu"
            | "Sigmoid"
            | "Tanh"
            | "Neg"
            | "Exp"
            | "Log"
            | "Sqrt"
            | "Reciprocal"
            | "Abs"
            | "Erf"
            | "LeakyRelu"
            | "Add"
            | "Sub"
            | "Mul"
            | "Div"
            | "Where"
            | "Softmax"
    )
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Breakdown {
    pub parameters: u64,
    /// Graph inputs (the batch, labels) and other initializers' bytes are in `parameters`.
    pub graph_inputs: u64,
    /// Gradient outputs alive at the peak.
    pub gradients: u64,
    /// Forward values alive at the peak that the backward reads.
    pub saved_activations: u64,
    /// Everything else alive at the peak.
    pub transients: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Simulation {
    /// Total peak: parameters + graph inputs + live values.
    pub peak_bytes: u64,
    /// Peak of the live values alone (what recomputation can change).
    pub activation_peak_bytes: u64,
    /// Index into the order of the step at the peak.
    pub peak_step: usize,
    /// Live value bytes during each step (after its outputs are allocated).
    pub timeline: Vec<u64>,
    pub breakdown: Breakdown,
    /// The largest single value allocated (an incompressible transient).
    pub largest_value_bytes: u64,
}

/// Simulates `order` over `g`. `info` marks which live values are gradients or saved
/// activations in the breakdown.
pub fn simulate(g: &Graph, order: &[NodeId], info: Option<&TrainingInfo>) -> Simulation {
    let nv = g.values.len();
    let mut fixed = vec![false; nv];
    let mut params = 0u64;
    let mut inputs = 0u64;
    for &i in &g.initializers {
        fixed[i.index()] = true;
        params += g.value_bytes(i).unwrap_or(0);
    }
    for &i in &g.inputs {
        if !fixed[i.index()] {
            fixed[i.index()] = true;
            inputs += g.value_bytes(i).unwrap_or(0);
        }
    }
    // Folded values become initializers in ONNX Runtime: count them as parameters.
    for (i, v) in g.values.iter().enumerate() {
        if v.constant.is_some() && v.producer.is_some() && !fixed[i] {
            fixed[i] = true;
            params += g.value_bytes(ValueId(i as u32)).unwrap_or(0);
        }
    }
    let pos: Vec<usize> = {
        let mut p = vec![usize::MAX; g.nodes.len()];
        for (k, n) in order.iter().enumerate() {
            p[n.index()] = k;
        }
        p
    };
    // Buffers: each non-fixed value owns one unless it aliases its input's.
    let mut buffer_of: Vec<usize> = (0..nv).collect();
    let mut buf_bytes = vec![0u64; nv];
    // Step of each value's last reader; a value nobody reads dies where it is made.
    let mut last_use = vec![usize::MAX; nv];
    let is_output: Vec<bool> = {
        let mut o = vec![false; nv];
        for &v in &g.outputs {
            o[v.index()] = true;
        }
        o
    };
    for &nid in order {
        let n = g.node(nid);
        let k = pos[nid.index()];
        for v in n.inputs.iter().flatten() {
            let l = &mut last_use[v.index()];
            *l = if *l == usize::MAX { k } else { (*l).max(k) };
        }
    }
    for &nid in order {
        for o in g.node(nid).outputs.iter().flatten() {
            if last_use[o.index()] == usize::MAX {
                last_use[o.index()] = pos[nid.index()];
            }
        }
    }
    // Resolve aliases and in-place writes in execution order.
    let mut is_saved = vec![false; nv];
    let mut is_grad = vec![false; nv];
    if let Some(info) = info {
        for v in onnx_ac_passes::autodiff::saved_activations(g, info) {
            is_saved[v.index()] = true;
        }
        for &v in &info.grads {
            is_grad[v.index()] = true;
        }
    }
    let mut refs = vec![0usize; nv]; // live values per buffer
    let mut live_bytes = 0u64;
    let mut timeline = Vec::with_capacity(order.len());
    let mut peak = (0u64, 0usize);
    let mut largest = 0u64;
    let mut live_values: Vec<bool> = vec![false; nv];
    let mut peak_live: Vec<bool> = Vec::new();
    for (k, &nid) in order.iter().enumerate() {
        let n = g.node(nid);
        for (oi, o) in n.outputs.iter().enumerate() {
            let Some(o) = *o else { continue };
            if fixed[o.index()] {
                continue;
            }
            let bytes = g.value_bytes(o).unwrap_or(0);
            largest = largest.max(bytes);
            let input0 = n.input(0).filter(|i| !fixed[i.index()]);
            let buf = if oi == 0 && aliases_input(&n.op_type) && input0.is_some() {
                buffer_of[input0.unwrap().index()]
            } else if oi == 0 && may_inplace(&n.op_type) {
                // In place into an input that dies here, has no other alias alive, and
                // matches the output's size.
                n.inputs
                    .iter()
                    .flatten()
                    .filter(|i| !fixed[i.index()] && !is_output[i.index()])
                    .find(|i| {
                        let b = buffer_of[i.index()];
                        last_use[i.index()] == k && refs[b] == 1 && buf_bytes[b] == bytes
                    })
                    .map(|i| buffer_of[i.index()])
                    .unwrap_or(o.index())
            } else {
                o.index()
            };
            buffer_of[o.index()] = buf;
            if refs[buf] == 0 {
                buf_bytes[buf] = bytes;
                live_bytes += bytes;
            }
            refs[buf] += 1;
            live_values[o.index()] = true;
        }
        timeline.push(live_bytes);
        if live_bytes > peak.0 {
            peak = (live_bytes, k);
            peak_live = live_values.clone();
        }
        // Free what dies here (inputs at their last use, and outputs nobody reads).
        let dying: Vec<ValueId> = n
            .inputs
            .iter()
            .chain(&n.outputs)
            .flatten()
            .filter(|v| last_use[v.index()] == k)
            .copied()
            .collect();
        for v in dying {
            if fixed[v.index()] || is_output[v.index()] || !live_values[v.index()] {
                continue;
            }
            live_values[v.index()] = false;
            let b = buffer_of[v.index()];
            refs[b] -= 1;
            if refs[b] == 0 {
                live_bytes -= buf_bytes[b];
            }
        }
    }
    let mut bd = Breakdown {
        parameters: params,
        graph_inputs: inputs,
        ..Breakdown::default()
    };
    let mut counted = vec![false; nv];
    for (i, &alive) in peak_live.iter().enumerate() {
        if !alive {
            continue;
        }
        let b = buffer_of[i];
        if counted[b] {
            continue;
        }
        counted[b] = true;
        let bytes = buf_bytes[b];
        if is_grad[i] {
            bd.gradients += bytes;
        } else if is_saved[i] {
            bd.saved_activations += bytes;
        } else {
            bd.transients += bytes;
        }
    }
    Simulation {
        peak_bytes: params + inputs + peak.0,
        activation_peak_bytes: peak.0,
        peak_step: peak.1,
        timeline,
        breakdown: bd,
        largest_value_bytes: largest,
    }
}
