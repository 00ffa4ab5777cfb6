//! The run: ONNX Runtime's sequential allocation planner (onnxruntime/core/framework/
//! allocation_planner.cc: ComputeReuseCount, ComputeSingleStreamReusePlan, the deallocation
//! plan) and the execution of the steps, counting the bytes held at each.

use super::held::{HeldBuffers, HeldChange};
use super::ids::{Csr, Id, IdVec, VNodeId, VValId};
use super::kernels::{alias_input, inplace_input, same_shape};
use super::order::{session_steps, SessionSteps};
use super::transformers::constant_sharing::sharing_key;
use super::view::{build_view, VVal, Vals, View};
use super::{Breakdown, OptLevel, SimOptions, Simulation, SMALL_INITIALIZER_MAX_BYTES};
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::fxhash::FastHash;
use onnx_ac_passes::ir::{Dim, Graph, NodeId, ValueId};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
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
    /// With events: the run's buffers step by step, for [`held_buffers`](super::held_buffers).
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
fn shape_class<'v>(v: &'v VVal, ids: &mut HashMap<(u64, &'v [Dim]), u32, FastHash>) -> Option<u32> {
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
struct ShapeClasses<'v> {
    vals: &'v Vals<'v>,
    ids: HashMap<(u64, &'v [Dim]), u32, FastHash>,
    memo: IdVec<VValId, Option<Option<u32>>>,
}

impl<'v> ShapeClasses<'v> {
    fn new(vals: &'v Vals<'v>) -> Self {
        ShapeClasses {
            vals,
            ids: HashMap::default(),
            memo: IdVec::from_elem(None, vals.len()),
        }
    }

    fn get(&mut self, v: VValId) -> Option<u32> {
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
    let sizes: IdVec<VValId, u64> = vals.iter().map(|v| v.bytes().unwrap_or(0)).collect();
    let bytes = |v: VValId| sizes[v];
    let name = |v: VValId| match vals[v].orig {
        Some(o) if v.index() < g.values.len() => g.value(o).name.clone(),
        Some(o) => format!("{} (NCHWc)", g.value(o).name),
        None => format!("value {}", v.index()),
    };

    let Weights {
        params,
        small,
        inputs,
        prepacked,
    } = weights(g, &view, &sizes, opts);

    // The steps, and the position in `order` each step is reported at.
    let SessionSteps { steps, at: at_of } = session_steps(&view, order, g.nodes.len());

    let BufferPlan { buffer, kind } = plan_buffers(&view, &steps);

    let Releases {
        at: release_at,
        after_step: releases,
    } = releases(&view, &steps, &buffer, &kind);

    // Execution.
    let mut is_saved = vec![false; g.values.len()];
    let mut is_grad = vec![false; g.values.len()];
    if let Some(info) = info {
        for v in onnx_ac_passes::autodiff::saved_activations(g) {
            is_saved[v.index()] = true;
        }
        for &v in info.step_results() {
            is_grad[v.index()] = true;
        }
    }
    let mut held: IdVec<VValId, u64> = IdVec::from_elem(0, nv); // bytes held per buffer (0: not allocated)
                                                                // The value last written into each buffer (set before the buffer is first held).
    let mut holder: IdVec<VValId, VValId> = vals.ids().collect();
    let mut live = 0u64;
    let mut timeline = vec![0u64; order.len()];
    let mut has_step = vec![false; order.len()];
    let mut live_after = vec![None; order.len()];
    let mut peak = Peak::default();
    let mut log: Vec<Change> = Vec::with_capacity(2 * steps.len());
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
            log.push(Change {
                step: s,
                buffer: target,
                bytes: if fresh { b as i64 } else { 0 },
                value: o,
            });
            if fresh {
                held[target] = b;
                live += b;
                if want_events {
                    events.push(AllocEvent {
                        step: at,
                        bytes: b as i64,
                        what: name(o),
                        buffer: target.index(),
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
        if step_peak > peak.bytes || s == 0 {
            peak = Peak {
                bytes: step_peak,
                at,
                scratch,
                step: s,
            };
        }
        for &b in &releases[s] {
            if held[b] > 0 {
                live -= held[b];
                log.push(Change {
                    step: s,
                    buffer: b,
                    bytes: -(held[b] as i64),
                    value: holder[b],
                });
                if want_events {
                    events.push(AllocEvent {
                        step: at,
                        bytes: -(held[b] as i64),
                        what: name(holder[b]),
                        buffer: b.index(),
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
        scratch: peak.scratch,
        transients: peak.scratch,
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
    // Per buffer: the bytes held and the value holding them.
    let mut at_peak: HashMap<VValId, (u64, VValId)> = HashMap::new();
    for &Change {
        step: s,
        buffer: b,
        bytes: delta,
        value: v,
    } in &log
    {
        if s > peak.step || (s == peak.step && delta < 0) {
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
        let mut last_read: IdVec<VValId, usize> = IdVec::from_elem(0, nv);
        for (s, &k) in steps.iter().enumerate() {
            for v in view.nodes[k].inputs.iter().flatten() {
                last_read[*v] = s;
            }
        }
        let mut rows: Vec<_> = at_peak.iter().map(|(&b, &(h, v))| (h, b, v)).collect();
        rows.sort();
        for (h, b, v) in rows.iter().rev() {
            let idle = last_read[*v] < peak.step;
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
    let act = peak.bytes;
    let baseline = small + prepacked;
    let held = want_events.then(|| HeldBuffers {
        steps: steps
            .iter()
            .map(|&k| (at_of[k], view.nodes[k].scratch.iter().sum()))
            .collect(),
        log: log
            .iter()
            .map(|c| HeldChange {
                step: c.step,
                buffer: c.buffer.index(),
                bytes: c.bytes,
                value: vals[c.value].orig,
            })
            .collect(),
    });
    Run {
        held,
        sim: Simulation {
            peak_bytes: params + inputs + prepacked + act,
            activation_peak_bytes: act,
            peak_step: peak.at,
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

/// The session's persistent bytes.
struct Weights {
    /// Every weight (`Breakdown::parameters`).
    params: u64,
    /// Small initializers ONNX Runtime copies into its allocator.
    small: u64,
    /// Graph inputs.
    inputs: u64,
    /// Prepacked weights.
    prepacked: u64,
}

fn weights(g: &Graph, view: &View, sizes: &IdVec<VValId, u64>, opts: &SimOptions) -> Weights {
    let vals = &view.vals;
    let nv = vals.len();
    let bytes = |v: VValId| sizes[v];
    let mut read = IdVec::from_elem(false, nv);
    for n in &view.nodes {
        for v in n.inputs.iter().flatten() {
            read[*v] = true;
        }
    }
    let (mut params, mut small, mut inputs) = (0u64, 0u64, 0u64);
    // With optimizations, ConstantSharing merges single-element constants of equal type,
    // rank and value.
    let mut shared: std::collections::HashSet<_, FastHash> = Default::default();
    for (i, v) in vals.iter_enumerated() {
        if v.is_static && i.index() < g.values.len() {
            let b = bytes(i);
            params += b;
            let merged = opts.level == OptLevel::All
                && v.constant
                && sharing_key(g, ValueId(i.index() as u32)).is_some_and(|k| !shared.insert(k));
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

    Weights {
        params,
        small,
        inputs,
        prepacked,
    }
}

/// Which buffer each value is written into, and how it got it.
struct BufferPlan {
    /// Per value, the value whose buffer it uses (itself when it has its own).
    buffer: IdVec<VValId, VValId>,
    kind: IdVec<VValId, Kind>,
}

fn plan_buffers(view: &View, steps: &[VNodeId]) -> BufferPlan {
    let vals = &view.vals;
    let nv = vals.len();
    // Allocation planner (ComputeReuseCount + ComputeSingleStreamReusePlan).
    let mut use_count: IdVec<VValId, i64> = IdVec::from_elem(0, nv);
    for (i, v) in vals.iter_enumerated() {
        if v.is_input || v.is_static {
            use_count[i] += 1;
        }
        if v.is_output {
            use_count[i] += 1;
        }
    }
    for &k in steps {
        let n = &view.nodes[k];
        for v in n.inputs.iter().flatten() {
            use_count[*v] += 1;
        }
        for o in n.outputs.iter().flatten() {
            use_count[*o] += 1;
        }
    }
    let mut buffer: IdVec<VValId, VValId> = vals.ids().collect();
    let mut kind = IdVec::from_elem(Kind::None, nv);
    // The freed buffers by shape class (`same_shape` is equality of classes), most recently
    // freed last: the top of a class's list is the buffer ONNX Runtime's search of its free
    // list (most recent first) finds. Buffers of no class are never reused.
    let mut class = ShapeClasses::new(vals);
    let mut freelist: Vec<Vec<VValId>> = Vec::new();
    for &k in steps {
        let n = &view.nodes[k];
        for (oi, o) in n.outputs.iter().enumerate() {
            let Some(o) = *o else { continue };
            if vals[o].is_output {
                kind[o] = Kind::Output;
                continue;
            }
            let mut reuse: Option<VValId> = None;
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
    BufferPlan { buffer, kind }
}

/// When the run releases each buffer.
struct Releases {
    /// Per buffer, the step after which it is released.
    at: IdVec<VValId, Option<usize>>,
    /// The buffers released after each step, in buffer order.
    after_step: Csr<usize, VValId>,
}

fn releases(
    view: &View,
    steps: &[VNodeId],
    buffer: &IdVec<VValId, VValId>,
    kind: &IdVec<VValId, Kind>,
) -> Releases {
    // Deallocation plan: an allocated buffer is released after the last step reading a value
    // that shares it.
    let mut release_at: IdVec<VValId, Option<usize>> = IdVec::from_elem(None, view.vals.len());
    for (s, &k) in steps.iter().enumerate() {
        for v in view.nodes[k].inputs.iter().flatten() {
            let orig = buffer[*v];
            if kind[orig] == Kind::Allocate {
                release_at[orig] = Some(s);
            }
        }
    }
    let releases = {
        let mut start = vec![0usize; steps.len() + 1];
        for s in release_at.iter().flatten() {
            start[s + 1] += 1;
        }
        for s in 0..steps.len() {
            start[s + 1] += start[s];
        }
        let mut fill = start.clone();
        let mut items = vec![VValId::new(0); start[steps.len()]];
        for (b, r) in release_at.iter_enumerated() {
            if let Some(s) = r {
                items[fill[*s]] = b;
                fill[*s] += 1;
            }
        }
        Csr::new(start, items)
    };
    Releases {
        at: release_at,
        after_step: releases,
    }
}

/// The step at the peak.
#[derive(Clone, Copy, Default)]
struct Peak {
    /// Bytes the run holds (scratch included).
    bytes: u64,
    /// Its position in the order given.
    at: usize,
    /// Its kernel scratch.
    scratch: u64,
    /// Its index among the steps run.
    step: usize,
}

/// A buffer allocated (+bytes), released (-bytes) or written with a new value (0).
#[derive(Clone, Copy)]
struct Change {
    /// Index among the steps run.
    step: usize,
    buffer: VValId,
    bytes: i64,
    /// The value now in the buffer.
    value: VValId,
}
