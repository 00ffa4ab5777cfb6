//! Live memory over a training step's schedule, by category, and the tensors live at its peak:
//! the simulator's run ([`simulate::held_buffers`]) replayed with each buffer classified by the
//! value it holds.

use crate::plan::simulate::{self, HeldBuffers, HeldChange, SimOptions, Simulation};
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, NodeId, ValueId};
use onnx_ac_passes::recompute::{is_recompute_work, is_view};
use std::collections::BTreeMap;

/// What a byte of the step is, for the stacked charts. The first three are held for the whole
/// step; the others are the run's buffers, classified by the value each holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    Weights,
    Prepacked,
    Inputs,
    Kept,
    Recomputed,
    Gradients,
    Other,
}

pub const CATEGORIES: [Category; 7] = [
    Category::Weights,
    Category::Prepacked,
    Category::Inputs,
    Category::Kept,
    Category::Recomputed,
    Category::Gradients,
    Category::Other,
];

impl Category {
    pub fn index(self) -> usize {
        self as usize
    }

    /// The legend's label (`optimizer`: the step has an optimizer update, whose outputs are
    /// updated parameters and state rather than gradients).
    pub fn label(self, optimizer: bool) -> &'static str {
        match self {
            // Initializers: with an optimizer the parameters and state are inputs with
            // defaults, which ONNX Runtime holds as it holds weights.
            Category::Weights if optimizer => "parameters, optimizer state, constants",
            Category::Weights => "weights (parameters, constants)",
            Category::Prepacked => "weights ONNX Runtime prepacks",
            Category::Inputs => "graph inputs (batch, labels)",
            Category::Kept => "activations kept for the backward",
            Category::Recomputed => "recomputed activations",
            Category::Gradients if optimizer => "updated parameters and state (outputs)",
            Category::Gradients => "gradients (outputs)",
            Category::Other => "other values, idle buffers, kernel scratch",
        }
    }

    /// Short name for tables.
    pub fn short(self) -> &'static str {
        match self {
            Category::Weights => "weights",
            Category::Prepacked => "prepacked",
            Category::Inputs => "inputs",
            Category::Kept => "kept",
            Category::Recomputed => "recomputed",
            Category::Gradients => "output",
            Category::Other => "other",
        }
    }

    /// Fill colour (colour-blind-safe palette, Okabe–Ito).
    pub fn color(self) -> &'static str {
        match self {
            Category::Weights => "#999999",
            Category::Prepacked => "#c4c4c4",
            Category::Inputs => "#e3d7a8",
            Category::Kept => "#0072b2",
            Category::Recomputed => "#e69f00",
            Category::Gradients => "#009e73",
            Category::Other => "#cc79a7",
        }
    }

    /// Held for the whole step.
    pub fn persistent(self) -> bool {
        matches!(
            self,
            Category::Weights | Category::Prepacked | Category::Inputs
        )
    }
}

/// Bytes per category (indexed by [`Category::index`]).
pub type Bytes = [u64; CATEGORIES.len()];

pub fn total(b: &Bytes) -> u64 {
    b.iter().sum()
}

/// A buffer live at the peak.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveTensor {
    /// The value it holds (`None`: kernel scratch, or a value ONNX Runtime's optimizer made).
    pub name: String,
    pub bytes: u64,
    pub category: Category,
    /// Producer node name and op type.
    pub producer: String,
    pub producer_op: String,
    /// Step of the producer in the order (`None`: not a node of the graph).
    pub producer_step: Option<usize>,
    /// The last node reading the value, its op and its step; `None` when nothing reads it
    /// (a graph output, alive to the end).
    pub last_reader: Option<(String, String, usize)>,
    /// The value is dead at the peak (its last reader ran before): the buffer is held
    /// because ONNX Runtime's planner reuses it later.
    pub idle: bool,
}

/// One graph's step: its live memory at every kernel ONNX Runtime runs, and its peak. Steps
/// are kernels in ONNX Runtime's execution order (nodes it folds, fuses away or never runs have
/// none).
#[derive(Clone, Debug)]
pub struct Trace {
    /// Per step: bytes by category at the step's highest point (its outputs and scratch
    /// allocated, nothing released yet).
    pub columns: Vec<Bytes>,
    /// The step of the peak (the first highest), and its bytes by category.
    pub peak_step: usize,
    pub peak: Bytes,
    /// First step of a backward node (`None`: none runs).
    pub backward_start: Option<usize>,
    /// The node at the peak: name and op type.
    pub peak_node: (String, String),
    /// Buffers live at the peak, largest first.
    pub at_peak: Vec<LiveTensor>,
    /// Per step, its position in the execution order of every node
    /// ([`simulate::ort_default_order`], whose positions [`Simulation::timeline`] counts).
    pub positions: Vec<usize>,
    /// The simulator's own figures, for cross-checks.
    pub sim: Simulation,
}

/// Classifies values of one graph.
struct Classes<'g> {
    g: &'g Graph,
    kept: Vec<bool>,
    output: Vec<bool>,
}

impl<'g> Classes<'g> {
    fn new(g: &'g Graph, info: &'g TrainingInfo) -> Self {
        let mut kept = vec![false; g.values.len()];
        for v in crate::report::kept_buffers(g) {
            kept[v.index()] = true;
        }
        let mut output = vec![false; g.values.len()];
        for &v in info.step_results() {
            output[v.index()] = true;
        }
        Classes { g, kept, output }
    }

    fn of(&self, v: Option<ValueId>) -> Category {
        let Some(v) = v.filter(|v| v.index() < self.g.values.len()) else {
            return Category::Other;
        };
        if self.output[v.index()] {
            return Category::Gradients;
        }
        if self.kept[v.index()] {
            return Category::Kept;
        }
        match self.g.value(v).producer {
            Some(p) if is_recompute_work(self.g, self.g.node(p)) => Category::Recomputed,
            _ => Category::Other,
        }
    }

    /// A value written in place into a buffer held as `before`: a view keeps the buffer's
    /// category (a kept activation read through a reshape is still kept).
    fn rewritten(&self, before: Category, v: Option<ValueId>) -> Category {
        let view = v
            .filter(|v| v.index() < self.g.values.len())
            .and_then(|v| self.g.value(v).producer)
            .is_some_and(|p| is_view(self.g.node(p)));
        if view {
            before
        } else {
            self.of(v)
        }
    }
}

/// The live memory of `g` (a training graph or its rewrite, `info` its training info) over
/// ONNX Runtime's default execution order.
pub fn trace(g: &Graph, info: &TrainingInfo) -> Trace {
    let order = simulate::ort_default_order(g);
    let (sim, held) = simulate::held_buffers(g, &order, Some(info), &SimOptions::default());
    let classes = Classes::new(g, info);
    let mut persistent: Bytes = [0; CATEGORIES.len()];
    persistent[Category::Weights.index()] = sim.breakdown.parameters;
    persistent[Category::Prepacked.index()] = sim.breakdown.prepacked;
    persistent[Category::Inputs.index()] = sim.breakdown.graph_inputs;
    let replay = replay(&held, &classes, persistent);
    let positions: Vec<usize> = held.steps.iter().map(|s| s.0).collect();
    let node_of = |s: usize| positions.get(s).and_then(|&p| order.get(p)).copied();
    let backward_start =
        (0..positions.len()).find(|&s| node_of(s).is_some_and(|n| g.in_backward(n)));
    let peak_node = node_of(replay.peak_step)
        .map(|n| (g.node(n).name.clone(), g.node(n).op_type.clone()))
        .unwrap_or_default();
    // The step of each node: its kernel's, or for a node fused into another, the kernel of
    // the node before it in the order (fused nodes follow the node that absorbed them);
    // `usize::MAX` for nodes that never run (folded constants come first).
    let mut step_of_position = vec![usize::MAX; order.len()];
    for (s, &p) in positions.iter().enumerate() {
        if p < order.len() && step_of_position[p] == usize::MAX {
            step_of_position[p] = s;
        }
    }
    let mut last = usize::MAX;
    for st in step_of_position.iter_mut() {
        if *st == usize::MAX {
            *st = last;
        } else {
            last = *st;
        }
    }
    let mut step = vec![usize::MAX; g.nodes.len()];
    for (k, n) in order.iter().enumerate() {
        step[n.index()] = step_of_position[k];
    }
    let at_peak = live_tensors(g, &step, &replay, &peak_node);
    Trace {
        columns: replay.columns,
        peak_step: replay.peak_step,
        peak: replay.peak,
        backward_start,
        peak_node,
        at_peak,
        positions,
        sim,
    }
}

struct Replay {
    columns: Vec<Bytes>,
    peak_step: usize,
    peak: Bytes,
    /// Buffers held at the peak moment: buffer → (bytes, holder, category).
    held_at_peak: Buffers,
    scratch_at_peak: u64,
}

/// The run's buffers: buffer → (bytes, holder, category).
type Buffers = BTreeMap<usize, (u64, Option<ValueId>, Category)>;

/// Applies step `s`'s allocations and new holders from `log[*li..]`.
fn allocate(
    log: &[HeldChange],
    li: &mut usize,
    s: usize,
    classes: &Classes,
    buffers: &mut Buffers,
    sums: &mut Bytes,
) {
    while *li < log.len() && log[*li].step == s && log[*li].bytes >= 0 {
        let c = &log[*li];
        match buffers.get_mut(&c.buffer) {
            Some(slot) if c.bytes == 0 => {
                let cat = classes.rewritten(slot.2, c.value);
                sums[slot.2.index()] -= slot.0;
                sums[cat.index()] += slot.0;
                slot.1 = c.value;
                slot.2 = cat;
            }
            Some(_) => {}
            None if c.bytes > 0 => {
                let cat = classes.of(c.value);
                sums[cat.index()] += c.bytes as u64;
                buffers.insert(c.buffer, (c.bytes as u64, c.value, cat));
            }
            None => {}
        }
        *li += 1;
    }
}

/// Applies step `s`'s releases from `log[*li..]`.
fn release(log: &[HeldChange], li: &mut usize, s: usize, buffers: &mut Buffers, sums: &mut Bytes) {
    while *li < log.len() && log[*li].step == s {
        let c = &log[*li];
        if c.bytes < 0 {
            if let Some(slot) = buffers.remove(&c.buffer) {
                sums[slot.2.index()] -= slot.0;
            }
        }
        *li += 1;
    }
}

/// Replays the run: per step, its allocations and new holders, its scratch (the step's
/// highest point), then its releases, as the simulator counts them. A second replay stops at
/// the peak for what is held there (copying the buffers at every new high would be quadratic
/// on a rising forward).
fn replay(held: &HeldBuffers, classes: &Classes, persistent: Bytes) -> Replay {
    let log = &held.log;
    let mut buffers = Buffers::new();
    let mut sums = persistent;
    let mut columns = Vec::with_capacity(held.steps.len());
    let mut best: Option<(u64, usize)> = None; // (total, step)
    let mut li = 0;
    for (s, &(_, scratch)) in held.steps.iter().enumerate() {
        allocate(log, &mut li, s, classes, &mut buffers, &mut sums);
        let mut moment = sums;
        moment[Category::Other.index()] += scratch;
        let t = total(&moment);
        columns.push(moment);
        if best.is_none_or(|b| t > b.0) {
            best = Some((t, s));
        }
        release(log, &mut li, s, &mut buffers, &mut sums);
    }
    let peak_step = best.map_or(0, |b| b.1);
    let (mut buffers, mut sums, mut li) = (Buffers::new(), persistent, 0);
    for s in 0..held.steps.len().min(peak_step + 1) {
        allocate(log, &mut li, s, classes, &mut buffers, &mut sums);
        if s < peak_step {
            release(log, &mut li, s, &mut buffers, &mut sums);
        }
    }
    Replay {
        peak: columns.get(peak_step).copied().unwrap_or(persistent),
        columns,
        peak_step,
        held_at_peak: buffers,
        scratch_at_peak: held.steps.get(peak_step).map_or(0, |s| s.1),
    }
}

/// The value whose buffer `v` shares through a chain of views (`v` itself if it is no view
/// of a computed value).
fn view_base(g: &Graph, mut v: ValueId) -> ValueId {
    for _ in 0..g.nodes.len() {
        let Some(p) = g.value(v).producer else { break };
        let node = g.node(p);
        let Some(base) = node.input(0).filter(|_| is_view(node)) else {
            break;
        };
        let bv = g.value(base);
        if bv.producer.is_none() || bv.constant.is_some() {
            break;
        }
        v = base;
    }
    v
}

/// The readers of `v` and of every view of it (transitively).
fn readers_through_views(g: &Graph, consumers: &[Vec<NodeId>], v: ValueId) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut stack = vec![v];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(x) = stack.pop() {
        if !seen.insert(x) {
            continue;
        }
        for &c in &consumers[x.index()] {
            out.push(c);
            let node = g.node(c);
            if is_view(node) && node.input(0) == Some(x) {
                stack.extend(node.outputs.iter().flatten().copied());
            }
        }
    }
    out
}

/// The buffers held at the peak, largest first (then by name).
fn live_tensors(
    g: &Graph,
    pos: &[usize],
    r: &Replay,
    peak_node: &(String, String),
) -> Vec<LiveTensor> {
    let consumers = g.consumers();
    let node_at = |n: NodeId| {
        (
            g.node(n).name.clone(),
            g.node(n).op_type.clone(),
            pos[n.index()],
        )
    };
    let mut rows: Vec<LiveTensor> = r
        .held_at_peak
        .values()
        .map(|&(bytes, v, category)| {
            let Some(v) = v.filter(|v| v.index() < g.values.len()) else {
                return LiveTensor {
                    name: "(a value ONNX Runtime's optimizer made)".into(),
                    bytes,
                    category,
                    producer: String::new(),
                    producer_op: String::new(),
                    producer_step: None,
                    last_reader: None,
                    idle: false,
                };
            };
            // A view shares its base's buffer: name the value that wrote the bytes, and
            // read the last reader through every view of it (the rewrite's pins are views).
            let v = view_base(g, v);
            let val = g.value(v);
            let (producer, producer_op, producer_step) = match val.producer {
                Some(p) => {
                    let (a, b, c) = node_at(p);
                    (a, b, (c != usize::MAX).then_some(c))
                }
                None => (String::new(), String::new(), None),
            };
            let readers = readers_through_views(g, &consumers, v);
            let ran = |c: &&NodeId| pos[c.index()] != usize::MAX;
            let last_reader = readers
                .iter()
                .filter(ran)
                .filter(|c| !is_view(g.node(**c)))
                .max_by_key(|c| pos[c.index()])
                .or_else(|| readers.iter().filter(ran).max_by_key(|c| pos[c.index()]))
                .map(|&c| node_at(c));
            let idle =
                !g.outputs.contains(&v) && last_reader.as_ref().is_some_and(|l| l.2 < r.peak_step);
            LiveTensor {
                name: val.name.clone(),
                bytes,
                category,
                producer,
                producer_op,
                producer_step,
                last_reader,
                idle,
            }
        })
        .collect();
    if r.scratch_at_peak > 0 {
        rows.push(LiveTensor {
            name: format!("(kernel scratch of {})", peak_node.1),
            bytes: r.scratch_at_peak,
            category: Category::Other,
            producer: peak_node.0.clone(),
            producer_op: peak_node.1.clone(),
            producer_step: Some(r.peak_step),
            last_reader: None,
            idle: false,
        });
    }
    rows.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    rows
}

/// At most `max` columns: consecutive positions grouped, each group shown by its highest
/// position (so the peak survives). Returns (first position of the group, bytes).
pub fn downsample(columns: &[Bytes], max: usize) -> Vec<(usize, Bytes)> {
    let n = columns.len();
    if n <= max || max == 0 {
        return columns.iter().copied().enumerate().collect();
    }
    (0..max)
        .map(|j| {
            let (a, b) = (j * n / max, ((j + 1) * n / max).max(j * n / max + 1));
            let best = (a..b.min(n))
                .max_by(|&x, &y| total(&columns[x]).cmp(&total(&columns[y])).then(y.cmp(&x)))
                .unwrap_or(a);
            (a, columns[best])
        })
        .collect()
}
