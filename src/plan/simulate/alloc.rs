//! The run: ONNX Runtime's sequential allocation planner (onnxruntime/core/framework/
//! allocation_planner.cc: ComputeReuseCount, ComputeSingleStreamReusePlan, the deallocation
//! plan) and the execution of the steps, counting the bytes held at each.

use super::held::{HeldBuffers, HeldChange};
use super::kernels::{alias_input, inplace_input, same_shape};
use super::order::schedule;
use super::transformers::constant_sharing::sharing_key;
use super::view::{build_view, Csr, VVal, View};
use super::{Breakdown, OptLevel, SimOptions, Simulation, SMALL_INITIALIZER_MAX_BYTES};
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::fxhash::FastHash;
use onnx_ac_passes::ir::{Dim, Graph, NodeId, ValueId};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Weight, graph input, or no buffer.
    None,
    Allocate,
    Output,
    Reuse,
}

/// One allocation (+) or release (-) of the simulated run, at a step of the order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocEvent {
    /// Index into the order.
    pub step: usize,
    pub bytes: i64,
    /// What the buffer holds: a value's name, `name (NCHWc)` for a blocked copy, or
    /// `scratch of <op>`.
    pub what: String,
    /// The buffer (an index of the simulator's own), to pair an allocation with its release;
    /// `usize::MAX` for kernel scratch.
    pub buffer: usize,
}

pub(super) struct Run {
    pub(super) sim: Simulation,
    pub(super) events: Vec<AllocEvent>,
    /// With events: the run's buffers step by step, for [`held_buffers`].
    pub(super) held: Option<HeldBuffers>,
}

/// Simulates `order` over `g` under ONNX Runtime's default session options. `info` marks
/// which live values are gradients or saved activations in the breakdown.
pub fn simulate(g: &Graph, order: &[NodeId], info: Option<&TrainingInfo>) -> Simulation {
    simulate_with(g, order, info, &SimOptions::default())
}

/// [`simulate`] under the given session options.
pub fn simulate_with(
    g: &Graph,
    order: &[NodeId],
    info: Option<&TrainingInfo>,
    opts: &SimOptions,
) -> Simulation {
    run(g, order, info, opts, false).sim
}

/// The allocations and releases of the simulated run, in order (to compare with a trace of
/// ONNX Runtime's allocator).
pub fn allocation_events(g: &Graph, order: &[NodeId], opts: &SimOptions) -> Vec<AllocEvent> {
    run(g, order, None, opts, true).events
}

/// A value's class under the planner's SameSize (values of one class have the same
/// element size and shape; `None`: equal to no value).
pub(super) fn shape_class<'v>(
    v: &'v VVal,
    ids: &mut HashMap<(u64, &'v [Dim]), u32, FastHash>,
) -> Option<u32> {
    if v.hidden || v.string {
        return None;
    }
    let elem = v.elem?;
    let d = v.dims.as_deref()?;
    let comparable = d.iter().all(|x| match x {
        Dim::Known(_) => true,
        Dim::Sym(p) => !p.is_empty(),
        Dim::Unknown => false,
    });
    if !comparable {
        return None;
    }
    let next = ids.len() as u32;
    Some(*ids.entry((elem, d)).or_insert(next))
}

/// [`shape_class`] of each value, computed on first request.
pub(super) struct ShapeClasses<'v> {
    pub(super) vals: &'v [VVal<'v>],
    pub(super) ids: HashMap<(u64, &'v [Dim]), u32, FastHash>,
    pub(super) memo: Vec<Option<Option<u32>>>,
}

impl<'v> ShapeClasses<'v> {
    pub(super) fn new(vals: &'v [VVal<'v>]) -> Self {
        ShapeClasses {
            vals,
            ids: HashMap::default(),
            memo: vec![None; vals.len()],
        }
    }

    pub(super) fn get(&mut self, v: usize) -> Option<u32> {
        if let Some(c) = self.memo[v] {
            return c;
        }
        let c = shape_class(&self.vals[v], &mut self.ids);
        self.memo[v] = Some(c);
        c
    }
}

pub(super) fn run(
    g: &Graph,
    order: &[NodeId],
    info: Option<&TrainingInfo>,
    opts: &SimOptions,
    want_events: bool,
) -> Run {
    run_view(
        g,
        build_view(g, opts, false),
        order,
        info,
        opts,
        want_events,
    )
}

pub(super) fn run_view(
    g: &Graph,
    view: View,
    order: &[NodeId],
    info: Option<&TrainingInfo>,
    opts: &SimOptions,
    want_events: bool,
) -> Run {
    let vals = &view.vals;
    let nv = vals.len();
    let sizes: Vec<u64> = vals.iter().map(|v| v.bytes().unwrap_or(0)).collect();
    let bytes = |v: usize| sizes[v];
    let name = |v: usize| match vals[v].orig {
        Some(o) if v < g.values.len() => g.value(o).name.clone(),
        Some(o) => format!("{} (NCHWc)", g.value(o).name),
        None => format!("value {v}"),
    };

    // Weights and inputs.
    let mut read = vec![false; nv];
    for n in &view.nodes {
        for v in n.inputs.iter().flatten() {
            read[*v] = true;
        }
    }
    let (mut params, mut small, mut inputs) = (0u64, 0u64, 0u64);
    // With optimizations, ConstantSharing merges single-element constants of equal type,
    // rank and value.
    let mut shared: std::collections::HashSet<_, FastHash> = Default::default();
    for (i, v) in vals.iter().enumerate() {
        if v.is_static && i < g.values.len() {
            let b = bytes(i);
            params += b;
            let merged = opts.level == OptLevel::All
                && v.constant
                && sharing_key(g, ValueId(i as u32)).is_some_and(|k| !shared.insert(k));
            if read[i] && b <= SMALL_INITIALIZER_MAX_BYTES && !merged {
                small += b;
            }
        }
        if v.is_input {
            inputs += bytes(i);
        }
    }
    small += view.new_small_initializers;
    let prepacked: u64 = view.nodes.iter().map(|n| n.prepack).sum();

    // The steps, and the position in `order` each step is reported at.
    let (steps, at_of) = schedule(&view, order, g.nodes.len());

    // Allocation planner (ComputeReuseCount + ComputeSingleStreamReusePlan).
    let mut use_count = vec![0i64; nv];
    for (i, v) in vals.iter().enumerate() {
        if v.is_input || v.is_static {
            use_count[i] += 1;
        }
        if v.is_output {
            use_count[i] += 1;
        }
    }
    for &k in &steps {
        let n = &view.nodes[k];
        for v in n.inputs.iter().flatten() {
            use_count[*v] += 1;
        }
        for o in n.outputs.iter().flatten() {
            use_count[*o] += 1;
        }
    }
    let mut buffer: Vec<usize> = (0..nv).collect();
    let mut kind = vec![Kind::None; nv];
    // The freed buffers by shape class (`same_shape` is equality of classes), most recently
    // freed last: the top of a class's list is the buffer ONNX Runtime's search of its free
    // list (most recent first) finds. Buffers of no class are never reused.
    let mut class = ShapeClasses::new(vals);
    let mut freelist: Vec<Vec<usize>> = Vec::new();
    for &k in &steps {
        let n = &view.nodes[k];
        for (oi, o) in n.outputs.iter().enumerate() {
            let Some(o) = *o else { continue };
            if vals[o].is_output {
                kind[o] = Kind::Output;
                continue;
            }
            let mut reuse: Option<usize> = None;
            if let Some(Some(x)) = alias_input(n, oi).and_then(|i| n.inputs.get(i)) {
                reuse = Some(*x);
            } else if let Some(Some(x)) = inplace_input(n, oi).and_then(|i| n.inputs.get(i)) {
                if use_count[buffer[*x]] == 1 && same_shape(&vals[*x], &vals[o]) {
                    reuse = Some(*x);
                }
            }
            let scalar = vals[o].dims.as_deref().is_none_or(|s| s.is_empty());
            if reuse.is_none() && !scalar {
                if let Some(c) = class.get(o) {
                    reuse = freelist.get_mut(c as usize).and_then(Vec::pop);
                }
            }
            match reuse {
                Some(r) => {
                    let orig = buffer[r];
                    buffer[o] = orig;
                    use_count[orig] += use_count[o];
                    kind[o] = Kind::Reuse;
                }
                None => kind[o] = Kind::Allocate,
            }
        }
        for v in n.inputs.iter().chain(n.outputs.iter()).flatten() {
            let orig = buffer[*v];
            use_count[orig] -= 1;
            if use_count[orig] == 0 {
                if let Some(c) = class.get(orig) {
                    let c = c as usize;
                    if freelist.len() <= c {
                        freelist.resize_with(c + 1, Vec::new);
                    }
                    freelist[c].push(orig);
                }
            }
        }
    }

    // Deallocation plan: an allocated buffer is released after the last step reading a value
    // that shares it.
    let mut release_at: Vec<Option<usize>> = vec![None; nv];
    for (s, &k) in steps.iter().enumerate() {
        for v in view.nodes[k].inputs.iter().flatten() {
            let orig = buffer[*v];
            if kind[orig] == Kind::Allocate {
                release_at[orig] = Some(s);
            }
        }
    }
    // The buffers released after each step, in buffer order.
    let releases = {
        let mut start = vec![0usize; steps.len() + 1];
        for s in release_at.iter().flatten() {
            start[s + 1] += 1;
        }
        for s in 0..steps.len() {
            start[s + 1] += start[s];
        }
        let mut fill = start.clone();
        let mut items = vec![0usize; start[steps.len()]];
        for (b, r) in release_at.iter().enumerate() {
            if let Some(s) = r {
                items[fill[*s]] = b;
                fill[*s] += 1;
            }
        }
        Csr { start, items }
    };

    // Execution.
    let mut is_saved = vec![false; g.values.len()];
    let mut is_grad = vec![false; g.values.len()];
    if let Some(info) = info {
        for v in onnx_ac_passes::autodiff::saved_activations(g, info) {
            is_saved[v.index()] = true;
        }
        for &v in info.step_results() {
            is_grad[v.index()] = true;
        }
    }
    let mut held = vec![0u64; nv]; // bytes held per buffer (0: not allocated)
    let mut holder = vec![usize::MAX; nv]; // the value last written into each buffer
    let mut live = 0u64;
    let mut timeline = vec![0u64; order.len()];
    let mut has_step = vec![false; order.len()];
    let mut live_after = vec![None; order.len()];
    let mut peak = (0u64, 0usize, 0u64, 0usize); // (bytes, step in order, scratch, step)
                                                 // (step, buffer, bytes allocated (+) or released (-), value now in the buffer)
    let mut log: Vec<(usize, usize, i64, usize)> = Vec::with_capacity(2 * steps.len());
    let mut largest = 0u64;
    let mut events = Vec::new();
    for (s, &k) in steps.iter().enumerate() {
        let n = &view.nodes[k];
        let at = at_of[k];
        for o in n.outputs.iter().flatten() {
            let o = *o;
            let b = bytes(o);
            largest = largest.max(b);
            let target = match kind[o] {
                Kind::Allocate | Kind::Output => o,
                // A reused buffer already released is allocated again (and kept).
                Kind::Reuse => buffer[o],
                Kind::None => continue,
            };
            if vals[target].is_static || vals[target].is_input {
                continue;
            }
            holder[target] = o;
            let fresh = held[target] == 0 && b > 0;
            log.push((s, target, if fresh { b as i64 } else { 0 }, o));
            if fresh {
                held[target] = b;
                live += b;
                if want_events {
                    events.push(AllocEvent {
                        step: at,
                        bytes: b as i64,
                        what: name(o),
                        buffer: target,
                    });
                }
            }
        }
        let scratch: u64 = n.scratch.iter().sum();
        if want_events {
            for &b in &n.scratch {
                events.push(AllocEvent {
                    step: at,
                    bytes: b as i64,
                    what: format!("scratch of {}", n.op),
                    buffer: usize::MAX,
                });
            }
            for &b in &n.scratch {
                events.push(AllocEvent {
                    step: at,
                    bytes: -(b as i64),
                    what: format!("scratch of {}", n.op),
                    buffer: usize::MAX,
                });
            }
        }
        let step_peak = live + scratch;
        if at < timeline.len() {
            timeline[at] = timeline[at].max(step_peak);
            has_step[at] = true;
        }
        if step_peak > peak.0 || s == 0 {
            peak = (step_peak, at, scratch, s);
        }
        for &b in &releases[s] {
            if held[b] > 0 {
                live -= held[b];
                log.push((s, b, -(held[b] as i64), holder[b]));
                if want_events {
                    events.push(AllocEvent {
                        step: at,
                        bytes: -(held[b] as i64),
                        what: name(holder[b]),
                        buffer: b,
                    });
                }
                held[b] = 0;
            }
        }
        if at < live_after.len() {
            live_after[at] = Some(live);
        }
    }
    // Positions of the order where nothing runs hold what the previous step left.
    let mut carry = 0;
    for t in 0..timeline.len() {
        if !has_step[t] {
            timeline[t] = carry;
        }
        if let Some(l) = live_after[t] {
            carry = l;
        }
    }

    let mut bd = Breakdown {
        parameters: params,
        graph_inputs: inputs,
        prepacked,
        scratch: peak.2,
        transients: peak.2,
        ..Breakdown::default()
    };
    if let Some(info) = info.filter(|i| i.optimizer.is_some()) {
        bd.optimizer_state = g
            .inputs
            .iter()
            .filter(|&&i| g.value(i).initializer.is_some() && !info.params.contains(&i))
            .filter_map(|&i| g.value_bytes(i))
            .sum();
    }
    // What was held at the peak: replay the log up to the peak step's releases.
    let mut at_peak: HashMap<usize, (u64, usize)> = HashMap::new();
    for &(s, b, delta, v) in &log {
        if s > peak.3 || (s == peak.3 && delta < 0) {
            break;
        }
        if delta < 0 {
            at_peak.remove(&b);
        } else if delta > 0 {
            at_peak.insert(b, (delta as u64, v));
        } else if let Some(e) = at_peak.get_mut(&b) {
            e.1 = v;
        }
    }
    if std::env::var_os("ONNX_AC_SIM_DEBUG").is_some() {
        let mut last_read = vec![0usize; nv];
        for (s, &k) in steps.iter().enumerate() {
            for v in view.nodes[k].inputs.iter().flatten() {
                last_read[*v] = s;
            }
        }
        let mut rows: Vec<_> = at_peak.iter().map(|(&b, &(h, v))| (h, b, v)).collect();
        rows.sort();
        for (h, b, v) in rows.iter().rev() {
            let idle = last_read[*v] < peak.3;
            eprintln!(
                "{h:>10} {} holder={} first={} release={:?}",
                if idle { "IDLE" } else { "live" },
                name(*v),
                name(*b),
                release_at[*b]
            );
        }
    }
    for (h, v) in at_peak.into_values() {
        // Classify a buffer by the value it holds (the original of an NCHWc copy).
        match vals[v].orig.map(|o| o.index()) {
            Some(o) if is_grad[o] => bd.gradients += h,
            Some(o) if is_saved[o] => bd.saved_activations += h,
            _ => bd.transients += h,
        }
    }
    let act = peak.0;
    let baseline = small + prepacked;
    let held = want_events.then(|| HeldBuffers {
        steps: steps
            .iter()
            .map(|&k| (at_of[k], view.nodes[k].scratch.iter().sum()))
            .collect(),
        log: log
            .iter()
            .map(|&(s, buffer, bytes, v)| HeldChange {
                step: s,
                buffer,
                bytes,
                value: vals[v].orig,
            })
            .collect(),
    });
    Run {
        held,
        sim: Simulation {
            peak_bytes: params + inputs + prepacked + act,
            activation_peak_bytes: act,
            peak_step: peak.1,
            timeline,
            breakdown: bd,
            largest_value_bytes: largest,
            counted_peak_bytes: baseline + act,
            baseline_bytes: baseline,
            small_initializer_bytes: small,
            level: opts.level,
        },
        events,
    }
}
