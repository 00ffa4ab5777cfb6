//! The memory simulator: for a graph and an execution order, the bytes alive at every step,
//! the peak, and what is alive at the peak — as ONNX Runtime (1.31, CPU execution provider)
//! allocates them. docs/memory-model.md gives the sources and the measurements behind every
//! rule; in short:
//!
//! - **The graph ONNX Runtime runs.** `Constant` nodes become weights; `CastLike` is inlined
//!   as a `Cast`. With optimizations on (the default): constant folding (every node whose
//!   inputs are all constant, and `Shape` of a statically shaped value), the transpose
//!   optimizer's push through a shrinking `Slice`, MatMul + Add into Gemm, contiguous
//!   Reshape/Squeeze/Unsqueeze chains into one Reshape (which drops the first one's shape
//!   input, and with it a recompute pin's late dependency), Gemm + activation, Transpose into
//!   MatMul (FusedMatMul), scalar Mul/Div into MatMul, and the NCHWc layout of convolutions,
//!   their batch norms, activations, additions and pools with `ReorderInput`/`ReorderOutput`
//!   copies. New nodes get new, higher indices, which matters for the order.
//! - **The order.** A reverse depth-first walk from the nodes nobody reads, producers taken
//!   largest index first ([`ort_default_order`]).
//! - **Weights.** Initializers of at most 127 bytes are copied into allocator buffers; larger
//!   ones stay in the loaded model. Kernels prepack constant weights once per session
//!   (MatMul, Gemm, ConvTranspose); those buffers are persistent.
//! - **Buffers** (the sequential allocation planner). A graph output gets its own buffer;
//!   `Reshape`-like kernels alias their input; activations and softmax write in place into an
//!   input whose last use this is and whose shape is the output's; otherwise the most recently
//!   freed buffer of exactly the same element size and shape is reused, else a new one is
//!   allocated. A buffer is released after the last node reading any value that shares it, so
//!   a reused buffer stays allocated (idle) between its first value's death and its next
//!   value's birth; a buffer nobody reads stays until the run ends.
//! - **Kernel scratch** (`Sum` of more than two inputs, `Where`, `Softmax` on an inner axis,
//!   im2col buffers of `Conv`, column buffers of `ConvTranspose`) counts at its step only.

use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::fxhash::FastHash;
use onnx_ac_passes::ir::{DType, Dim, Graph, Node, NodeId, ValueId};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::HashMap;

/// ONNX Runtime's graph optimization level the simulation models.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum OptLevel {
    /// `ORT_DISABLE_ALL`: the graph runs as written (only `Constant` nodes become weights).
    Disabled,
    /// `ORT_ENABLE_ALL`, ONNX Runtime's default and what users of the emitted graph get.
    #[default]
    All,
}

/// How the simulated session is configured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SimOptions {
    pub level: OptLevel,
    /// Intra-op threads of the session; `None` is ONNX Runtime's default, one per physical
    /// core of the modelled host ([`super::host`]). Convolution scratch buffers grow with it.
    pub intra_threads: Option<usize>,
    /// Channel block of the NCHWc layout (MLAS: 16 with AVX-512, 8 with AVX2, none
    /// otherwise); `None` is the modelled host's ([`super::host`]). `Some(1)` models no
    /// NCHWc transformer.
    pub nchwc_block: Option<usize>,
}

impl SimOptions {
    fn threads(&self) -> u64 {
        self.intra_threads
            .unwrap_or_else(|| super::host::current().cores)
            .max(1) as u64
    }
    fn block(&self) -> i64 {
        self.nchwc_block
            .unwrap_or_else(|| super::host::current().nchwc_block)
            .max(1) as i64
    }
}

/// Initializers up to this many bytes are copied into buffers from the session allocator;
/// larger ones are used in place from the loaded model (ONNX Runtime 1.31).
pub const SMALL_INITIALIZER_MAX_BYTES: u64 = 127;

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Breakdown {
    /// Every weight: initializers, `Constant` outputs and (with optimizations) folded values.
    pub parameters: u64,
    /// Graph inputs (the batch, labels; with `--optimizer` also the trained parameters and
    /// the optimizer state); owned by the caller, not counted by ONNX Runtime.
    pub graph_inputs: u64,
    /// The optimizer state inputs (momenta, AdamW's moments and step count), part of
    /// `graph_inputs`; 0 without `--optimizer`.
    pub optimizer_state: u64,
    /// Gradient outputs alive at the peak.
    pub gradients: u64,
    /// Forward values alive at the peak that the backward reads (and their NCHWc copies).
    pub saved_activations: u64,
    /// Everything else alive at the peak: other values, idle reused buffers, kernel scratch.
    pub transients: u64,
    /// Prepacked copies of constant weights (whole session).
    pub prepacked: u64,
    /// Kernel scratch buffers at the peak step (also inside `transients`).
    pub scratch: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Simulation {
    /// True total at the peak: every parameter, the graph inputs, the prepacked weights and
    /// the run's allocations (`activation_peak_bytes`).
    pub peak_bytes: u64,
    /// Peak of what the run allocates on top of the session's persistent buffers: live
    /// values, graph outputs, idle reused buffers and kernel scratch (what recomputation can
    /// change).
    pub activation_peak_bytes: u64,
    /// Index into the order of the step at the peak.
    pub peak_step: usize,
    /// Bytes the run holds during each step of the order (outputs allocated, scratch
    /// included, before the step's releases); at nodes ONNX Runtime does not run, what the
    /// previous step left.
    pub timeline: Vec<u64>,
    pub breakdown: Breakdown,
    /// The largest single value allocated (an incompressible transient).
    pub largest_value_bytes: u64,
    /// What ONNX Runtime's allocator holds at the peak, which a counting allocator measures:
    /// `baseline_bytes + activation_peak_bytes`. Large initializers and the graph inputs are
    /// not in it.
    pub counted_peak_bytes: u64,
    /// What the session holds through its allocator before a run: small initializers and
    /// prepacked weights.
    pub baseline_bytes: u64,
    /// Initializers of at most [`SMALL_INITIALIZER_MAX_BYTES`] bytes ONNX Runtime loads.
    pub small_initializer_bytes: u64,
    /// The optimization level simulated.
    pub level: OptLevel,
}

// ---------------------------------------------------------------------------------------------
// The graph as ONNX Runtime runs it.

/// A value of the session's graph: a value of `g`, or one the optimizer made (an NCHWc copy).
#[derive(Clone, Debug)]
struct VVal<'g> {
    /// The value of `g` this is, or whose NCHWc layout it holds.
    orig: Option<ValueId>,
    elem: Option<u64>,
    string: bool,
    /// The value's dims (borrowed from `g` unless the optimizer made the value).
    dims: Option<Cow<'g, [Dim]>>,
    /// Weights, constants, folded values: no buffer of the run.
    is_static: bool,
    /// A constant initializer (foldable, prepackable).
    constant: bool,
    is_input: bool,
    is_output: bool,
    /// ONNX Runtime cannot infer all dims (`Value::hide_shape`): its buffer is never paired.
    hidden: bool,
}

impl VVal<'_> {
    fn bytes(&self) -> Option<u64> {
        let n = onnx_ac_passes::ir::static_numel(self.dims.as_deref()?)?;
        Some(n * self.elem?)
    }
    fn known_dims(&self) -> Option<Vec<i64>> {
        onnx_ac_passes::ir::static_dims(self.dims.as_deref()?)
    }
    fn rank(&self) -> Option<usize> {
        self.dims.as_deref().map(<[Dim]>::len)
    }
}

/// A node of the session's graph.
#[derive(Clone, Debug)]
struct VNode<'g> {
    /// The node of `g` whose place in the order this node takes.
    anchor: NodeId,
    /// Index in ONNX Runtime's graph (orders the depth-first walk; new nodes come last).
    index: usize,
    op: &'g str,
    domain: &'g str,
    /// What the optimizer passes first look for (from `op` and `domain`).
    kind: OpKind,
    inputs: Slots,
    outputs: Slots,
    /// Bytes of weights this kernel prepacks.
    prepack: u64,
    /// Buffers the kernel allocates while it runs (all held together).
    scratch: Vec<u64>,
    /// An NCHWc convolution with a fused activation.
    activation: bool,
    /// A layout copy: when the caller's order is not ONNX Runtime's, it runs right before its
    /// first reader instead of at its anchor.
    follow_consumers: bool,
}

/// The ops the optimizer passes start from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
    Other,
    MatMul,
    /// `com.microsoft` FusedMatMul.
    FusedMatMul,
    Gemm,
    Transpose,
    /// Reshape, Squeeze, Unsqueeze.
    ReshapeLike,
}

fn op_kind(op: &str, domain: &str) -> OpKind {
    if domain.is_empty() || domain == "ai.onnx" {
        match op {
            "MatMul" => OpKind::MatMul,
            "Gemm" => OpKind::Gemm,
            "Transpose" => OpKind::Transpose,
            "Reshape" | "Squeeze" | "Unsqueeze" => OpKind::ReshapeLike,
            _ => OpKind::Other,
        }
    } else if domain == "com.microsoft" && op == "FusedMatMul" {
        OpKind::FusedMatMul
    } else {
        OpKind::Other
    }
}

/// A node's input or output slots (values of the view), stored inline up to four.
#[derive(Clone, Debug)]
enum Slots {
    Inline(u8, [Option<usize>; 4]),
    Heap(Vec<Option<usize>>),
}

impl Slots {
    fn of(s: &[Option<usize>]) -> Slots {
        let mut out = Slots::default();
        for &v in s {
            out.push(v);
        }
        out
    }

    fn push(&mut self, v: Option<usize>) {
        match self {
            Slots::Inline(n, a) if (*n as usize) < a.len() => {
                a[*n as usize] = v;
                *n += 1;
            }
            Slots::Inline(n, a) => {
                let mut h = a[..*n as usize].to_vec();
                h.push(v);
                *self = Slots::Heap(h);
            }
            Slots::Heap(h) => h.push(v),
        }
    }

    fn truncate(&mut self, len: usize) {
        match self {
            Slots::Inline(n, _) => *n = (*n).min(len as u8),
            Slots::Heap(h) => h.truncate(len),
        }
    }

    fn resize(&mut self, len: usize, v: Option<usize>) {
        self.truncate(len);
        while self.len() < len {
            self.push(v);
        }
    }
}

impl Default for Slots {
    fn default() -> Slots {
        Slots::Inline(0, [None; 4])
    }
}

impl std::ops::Deref for Slots {
    type Target = [Option<usize>];
    fn deref(&self) -> &[Option<usize>] {
        match self {
            Slots::Inline(n, a) => &a[..*n as usize],
            Slots::Heap(h) => h,
        }
    }
}

impl std::ops::DerefMut for Slots {
    fn deref_mut(&mut self) -> &mut [Option<usize>] {
        match self {
            Slots::Inline(n, a) => &mut a[..*n as usize],
            Slots::Heap(h) => h,
        }
    }
}

impl FromIterator<Option<usize>> for Slots {
    fn from_iter<I: IntoIterator<Item = Option<usize>>>(it: I) -> Slots {
        let mut out = Slots::default();
        for v in it {
            out.push(v);
        }
        out
    }
}

impl VNode<'_> {
    fn std(&self) -> bool {
        self.domain.is_empty() || self.domain == "ai.onnx"
    }
}

struct View<'g> {
    vals: Vec<VVal<'g>>,
    nodes: Vec<VNode<'g>>,
    /// Nodes of `g` fused into another (the anchor of the node that took them in).
    absorbed: Vec<(NodeId, NodeId)>,
    /// The index the next node the optimizer makes gets.
    next_index: usize,
    /// Bytes of small initializers the optimizer made (NCHWc batch-norm scales and biases).
    new_small_initializers: u64,
    /// `view_order` of the nodes, when already computed.
    order: Option<Vec<usize>>,
}

/// Who reads and who makes each value of a view, and (once asked for) the view's order; valid
/// until the view changes.
struct Adj {
    readers: Csr,
    producer: Vec<Option<usize>>,
    /// Per node, the producers of its inputs (input order, repeats kept).
    preds: Csr,
    /// Per node, its `kind` (dense: passes scan it instead of the nodes).
    kinds: Vec<OpKind>,
    order: Option<Vec<usize>>,
}

impl Adj {
    fn of(view: &View) -> Adj {
        let (readers, producer, preds) = adjacency(&view.nodes, view.vals.len());
        Adj {
            readers,
            producer,
            preds,
            kinds: view.nodes.iter().map(|n| n.kind).collect(),
            order: None,
        }
    }
}

fn is_const_node(n: &Node) -> bool {
    n.op_type == "Constant" && n.is_standard_domain()
}

fn dims(g: &Graph, v: ValueId) -> Option<Vec<i64>> {
    onnx_ac_passes::ir::static_dims(g.value(v).shape.as_ref()?)
}

/// The graph ONNX Runtime runs. `order_only`: the caller needs only the nodes and their order
/// (prepacked and scratch bytes are left at zero).
fn build_view<'g>(g: &'g Graph, opts: &SimOptions, order_only: bool) -> View<'g> {
    let nv = g.values.len();
    let mut vals: Vec<VVal<'g>> = g
        .values
        .iter()
        .enumerate()
        .map(|(i, v)| VVal {
            orig: Some(ValueId(i as u32)),
            elem: v.dtype.and_then(DType::size_bytes),
            string: v.dtype == Some(DType::String),
            dims: v.shape.as_deref().map(Cow::Borrowed),
            is_static: v.initializer.is_some(),
            constant: false,
            is_input: false,
            is_output: false,
            hidden: v.hide_shape,
        })
        .collect();
    for &i in &g.initializers {
        vals[i.index()].is_static = true;
    }
    for n in &g.nodes {
        if is_const_node(n) {
            for o in n.outputs.iter().flatten() {
                vals[o.index()].is_static = true;
            }
        }
    }
    for &i in &g.inputs {
        if !vals[i.index()].is_static {
            vals[i.index()].is_input = true;
        }
    }
    for &o in &g.outputs {
        vals[o.index()].is_output = true;
    }
    // Initializers that are also graph inputs can be overridden by the caller: not constant
    // for ONNX Runtime (no folding, no prepacking).
    let graph_input: Vec<bool> = {
        let mut m = vec![false; nv];
        for &i in &g.inputs {
            m[i.index()] = true;
        }
        m
    };
    for (i, v) in vals.iter_mut().enumerate() {
        v.constant = v.is_static && !graph_input[i];
    }
    let mut runs: Vec<bool> = g.nodes.iter().map(|n| !is_const_node(n)).collect();
    if opts.level == OptLevel::All {
        // Constant folding, repeated until nothing changes (one pass for sorted graphs). A
        // node waiting for a value to become constant is looked at again only once it is.
        const CHECK: usize = usize::MAX;
        const NEVER: usize = usize::MAX - 1;
        let mut waits = vec![CHECK; g.nodes.len()];
        loop {
            let mut changed = false;
            for (i, n) in g.nodes.iter().enumerate() {
                if !runs[i] {
                    continue;
                }
                match waits[i] {
                    NEVER => continue,
                    CHECK => {}
                    v if !vals[v].constant => continue,
                    _ => {}
                }
                match fold_check(g, n, &vals) {
                    Fold::Now => {}
                    Fold::Never => {
                        waits[i] = NEVER;
                        continue;
                    }
                    Fold::After(v) => {
                        waits[i] = v;
                        continue;
                    }
                }
                runs[i] = false;
                changed = true;
                for o in n.outputs.iter().flatten() {
                    vals[o.index()].constant = true;
                    vals[o.index()].is_static = true;
                }
            }
            if !changed {
                break;
            }
        }
    }
    let mut nodes = Vec::with_capacity(g.nodes.len() + g.nodes.len() / 8);
    let threads = opts.threads();
    for (i, n) in g.nodes.iter().enumerate() {
        if !runs[i] {
            continue;
        }
        let map = |v: &Option<ValueId>| v.map(|v| v.index());
        let (prepack, scratch) = if order_only {
            (0, Vec::new())
        } else {
            (prepack_bytes(g, n, &vals), scratch_bytes(g, n, threads))
        };
        nodes.push(VNode {
            anchor: NodeId(i as u32),
            index: i,
            op: &n.op_type,
            domain: &n.domain,
            kind: op_kind(&n.op_type, &n.domain),
            inputs: n.inputs.iter().map(map).collect(),
            outputs: n.outputs.iter().map(map).collect(),
            prepack,
            scratch,
            activation: false,
            follow_consumers: false,
        });
    }
    let mut view = View {
        vals,
        nodes,
        absorbed: Vec::new(),
        next_index: g.nodes.len(),
        new_small_initializers: 0,
        order: None,
    };
    // The transformers that change which intermediates exist, in ONNX Runtime's order (new
    // nodes get indices in that order): level 1, then function inlining, level 2, level 3.
    // Each pass says whether it changed the view (which makes `adj` stale).
    let all = opts.level == OptLevel::All;
    let mut adj: Option<Adj> = None;
    if all {
        let a = adj.get_or_insert_with(|| Adj::of(&view));
        if push_transpose_through_slice(g, &mut view, a) {
            adj = None;
        }
        let a = adj.get_or_insert_with(|| Adj::of(&view));
        if matmul_add_fusion(&mut view, a) {
            adj = None;
        }
        let a = adj.get_or_insert_with(|| Adj::of(&view));
        if fuse_contiguous_reshapes(&mut view, a) {
            adj = None;
        }
    }
    // CastLike has no CPU kernel: ONNX Runtime inlines its function body, a Cast node with a
    // new index, after level 1 (so the Cast is not folded).
    for n in view.nodes.iter_mut() {
        if n.std() && n.op == "CastLike" {
            n.op = "Cast";
            n.kind = op_kind(n.op, n.domain);
            n.inputs.truncate(1);
            n.index = view.next_index;
            view.next_index += 1;
            adj = None;
        }
    }
    if all {
        let a = adj.get_or_insert_with(|| Adj::of(&view));
        if gemm_activation_fusion(&mut view, a) {
            adj = None;
        }
        let a = adj.get_or_insert_with(|| Adj::of(&view));
        if matmul_transpose_fusion(g, &mut view, a) {
            adj = None;
        }
        let a = adj.get_or_insert_with(|| Adj::of(&view));
        if matmul_scale_fusion(&mut view, a) {
            adj = None;
        }
        // The transformer converts nothing unless a convolution or pool starts a chain.
        let seeds = view.nodes.iter().any(|n| {
            n.std()
                && matches!(
                    n.op,
                    "Conv" | "MaxPool" | "AveragePool" | "GlobalMaxPool" | "GlobalAveragePool"
                )
        });
        if seeds && opts.block() > 1 {
            Nchwc::new(g, &mut view, opts.block()).run();
            adj = None;
        }
    }
    view.order = adj.and_then(|a| a.order);
    view
}

/// The transpose optimizer (level 1) moves a Transpose read only by a constant Slice below
/// it when that lowers the estimated cost (the number of dimensions other than 1): the Slice
/// takes the Transpose's input (keeping its own index) and a new Transpose transposes the
/// result.
fn push_transpose_through_slice(g: &Graph, view: &mut View, adj: &mut Adj) -> bool {
    let Adj {
        readers,
        preds,
        kinds,
        order,
        ..
    } = adj;
    let (readers, preds, kinds) = (&*readers, &*preds, &*kinds);
    let candidate = view.nodes.iter().zip(kinds).any(|(tn, &kind)| {
        kind == OpKind::Transpose
            && sole_reader(view, readers, tn).is_some_and(|sl| {
                let sn = &view.nodes[sl];
                sn.std() && sn.op == "Slice" && sn.inputs.first() == tn.outputs.first()
            })
    });
    if !candidate {
        return false;
    }
    let vorder = order
        .take()
        .unwrap_or_else(|| order_by_preds(&view.nodes, preds));
    let mut removed = vec![false; view.nodes.len()];
    let mut added = Vec::new();
    for &t in &vorder {
        if kinds[t] != OpKind::Transpose {
            continue;
        }
        let tn = &view.nodes[t];
        if removed[t] || !tn.std() || tn.op != "Transpose" {
            continue;
        }
        let (Some(Some(x)), Some(Some(tout))) = (tn.inputs.first(), tn.outputs.first()) else {
            continue;
        };
        let (x, tout) = (*x, *tout);
        if view.vals[tout].is_output || readers[tout].len() != 1 {
            continue;
        }
        let sl = readers[tout][0];
        let sn = &view.nodes[sl];
        let constant_params = sn.inputs[1..]
            .iter()
            .flatten()
            .all(|v| view.vals[*v].constant);
        if removed[sl] || !sn.std() || sn.op != "Slice" || sn.inputs[0] != Some(tout) {
            continue;
        }
        let Some(Some(sout)) = sn.outputs.first().copied() else {
            continue;
        };
        let Some(od) = view.vals[sout].known_dims() else {
            continue;
        };
        let perm: Vec<usize> = match g.node(tn.anchor).attr_ints("perm") {
            Some(p) => p.iter().map(|&i| i.max(0) as usize).collect(),
            None => (0..od.len()).rev().collect(),
        };
        if !constant_params || perm.len() != od.len() || perm.iter().any(|&i| i >= od.len()) {
            continue;
        }
        // The cost check: pushing must lower the "rank" (dimensions other than 1) transposed.
        let rank = |d: &[i64]| d.iter().filter(|&&x| x != 1).count();
        match view.vals[tout].known_dims() {
            Some(td) if rank(&od) < rank(&td) => {}
            _ => continue,
        }
        // The Slice's new output: its output in the Transpose's input layout.
        let mut nd = vec![0i64; od.len()];
        for (i, &p) in perm.iter().enumerate() {
            nd[p] = od[i];
        }
        let mut v = view.vals[sout].clone();
        v.dims = Some(nd.into_iter().map(Dim::Known).collect::<Vec<_>>().into());
        v.is_output = false;
        view.vals.push(v);
        let mid = view.vals.len() - 1;
        let anchor = view.nodes[sl].anchor;
        view.nodes[sl].inputs[0] = Some(x);
        view.nodes[sl].outputs[0] = Some(mid);
        let mut nt = new_node(view, anchor, "Transpose", "");
        nt.inputs = Slots::of(&[Some(mid)]);
        nt.outputs = Slots::of(&[Some(sout)]);
        added.push(nt);
        removed[t] = true;
        view.absorbed.push((view.nodes[t].anchor, anchor));
    }
    let changed = !added.is_empty();
    commit(view, &removed, added);
    *order = Some(vorder);
    changed
}

/// The only reader of `n`'s first output, when it has one reader and is no graph output.
fn sole_reader(view: &View, readers: &Csr, n: &VNode) -> Option<usize> {
    let out = n.outputs.first().copied().flatten()?;
    (!view.vals[out].is_output && readers[out].len() == 1).then(|| readers[out][0])
}

/// Whether `n` is a standard-domain node of one of `ops`.
fn std_op(n: &VNode, ops: &[&str]) -> bool {
    n.std() && ops.contains(&n.op)
}

/// Per value, the nodes reading it (a node once per input slot) and its producer; per node,
/// the producers of its inputs (input order, repeats kept).
fn adjacency(nodes: &[VNode], nvals: usize) -> (Csr, Vec<Option<usize>>, Csr) {
    let mut producer = vec![None; nvals];
    for (k, n) in nodes.iter().enumerate() {
        for o in n.outputs.iter().flatten() {
            producer[*o] = Some(k);
        }
    }
    let readers = readers_of(nodes, nvals);
    let mut pstart = Vec::with_capacity(nodes.len() + 1);
    let mut pitems = Vec::with_capacity(readers.items.len());
    for n in nodes {
        pstart.push(pitems.len());
        for v in n.inputs.iter().flatten() {
            if let Some(p) = producer[*v] {
                pitems.push(p);
            }
        }
    }
    pstart.push(pitems.len());
    let preds = Csr {
        start: pstart,
        items: pitems,
    };
    (readers, producer, preds)
}

/// A new node of the optimizer, taking the place of `anchor` in the caller's order.
fn new_node<'g>(view: &mut View<'g>, anchor: NodeId, op: &'g str, domain: &'g str) -> VNode<'g> {
    let index = view.next_index;
    view.next_index += 1;
    VNode {
        anchor,
        index,
        op,
        domain,
        kind: op_kind(op, domain),
        inputs: Slots::default(),
        outputs: Slots::default(),
        prepack: 0,
        scratch: Vec::new(),
        activation: false,
        follow_consumers: false,
    }
}

/// Drops the nodes marked `removed` and appends `added`.
fn commit<'g>(view: &mut View<'g>, removed: &[bool], added: Vec<VNode<'g>>) {
    let mut k = 0;
    view.nodes.retain(|_| {
        let keep = !removed.get(k).copied().unwrap_or(false);
        k += 1;
        keep
    });
    view.nodes.extend(added);
}

/// Prepacked bytes of a MatMul-like kernel with B = `b` (transposed when `trans_b`).
fn pack_b(view: &View, b: Option<usize>, trans_b: bool) -> u64 {
    let Some(b) = b else { return 0 };
    let v = &view.vals[b];
    if !v.constant || v.elem != Some(4) || v.string {
        return 0;
    }
    match v.known_dims().as_deref() {
        Some(&[r, c]) if r > 0 && c > 0 => {
            let (k, n) = if trans_b { (c, r) } else { (r, c) };
            sgemm_pack_b_size(n as u64, k as u64)
        }
        _ => 0,
    }
}

fn is_float(view: &View, v: Option<usize>) -> bool {
    v.is_some_and(|v| view.vals[v].elem == Some(4) && !view.vals[v].string)
}

/// MatMulAddFusion (level 1): a MatMul read only by an Add of a bias becomes a Gemm (inputs
/// of rank above 2 are flattened by two new Reshapes); the MatMul's output disappears.
fn matmul_add_fusion(view: &mut View, adj: &mut Adj) -> bool {
    let Adj {
        readers,
        producer,
        preds,
        kinds,
        order,
    } = adj;
    let (readers, producer, preds, kinds) = (&*readers, &*producer, &*preds, &*kinds);
    let candidate = view.nodes.iter().zip(kinds).any(|(mm, &kind)| {
        kind == OpKind::MatMul
            && sole_reader(view, readers, mm).is_some_and(|a| std_op(&view.nodes[a], &["Add"]))
    });
    if !candidate {
        return false;
    }
    let vorder = order
        .take()
        .unwrap_or_else(|| order_by_preds(&view.nodes, preds));
    let mut removed = vec![false; view.nodes.len()];
    let mut added = Vec::new();
    for &k in &vorder {
        if kinds[k] != OpKind::MatMul {
            continue;
        }
        let mm = &view.nodes[k];
        if removed[k] || !mm.std() || mm.op != "MatMul" || mm.inputs.len() < 2 {
            continue;
        }
        let Some(Some(out)) = mm.outputs.first().copied() else {
            continue;
        };
        if view.vals[out].is_output || readers[out].len() != 1 {
            continue;
        }
        let add_k = readers[out][0];
        let add = &view.nodes[add_k];
        if removed[add_k] || !add.std() || add.op != "Add" || add.inputs.len() != 2 {
            continue;
        }
        if !is_float(view, mm.inputs[0]) || !is_float(view, add.inputs[0]) {
            continue;
        }
        let (Some(a), Some(b)) = (mm.inputs[0], mm.inputs[1]) else {
            continue;
        };
        // ONNX Runtime needs concrete dims to fuse.
        if view.vals[a].hidden
            || add
                .inputs
                .iter()
                .flatten()
                .any(|&i| view.vals[i].hidden && i != out)
        {
            continue;
        }
        let (Some(ad), Some(bd)) = (view.vals[a].known_dims(), view.vals[b].known_dims()) else {
            continue;
        };
        if bd.len() != 2 || ad.is_empty() {
            continue;
        }
        let need_reshape = ad.len() != 2;
        if need_reshape && attention_projection_input(view, producer, a) {
            continue;
        }
        let bias_slot = if add.inputs[0] == Some(out) { 1 } else { 0 };
        let Some(bias) = add.inputs[bias_slot] else {
            continue;
        };
        let Some(cd) = view.vals[bias].known_dims() else {
            continue;
        };
        let n = bd[1];
        let valid = (cd.len() == 1 && cd[0] == n)
            || (!need_reshape && cd.len() == 2 && cd[0] == 1 && cd[1] == n)
            || (!need_reshape && cd.len() == 2 && cd[0] == ad[0] && (cd[1] == 1 || cd[1] == n));
        let Some(y) = add.outputs.first().copied().flatten() else {
            continue;
        };
        if !valid {
            continue;
        }
        let (anchor, add_anchor) = (mm.anchor, add.anchor);
        let prepack = pack_b(view, Some(b), false);
        let (mut gemm_in, mut gemm_out) = (a, y);
        if need_reshape {
            let m: i64 = ad[..ad.len() - 1].iter().product();
            let flat = |view: &mut View, like: usize, cols: i64| {
                let mut v = view.vals[like].clone();
                v.dims = Some(vec![Dim::Known(m), Dim::Known(cols)].into());
                v.is_output = false;
                view.vals.push(v);
                view.vals.len() - 1
            };
            gemm_in = flat(view, a, bd[0]);
            gemm_out = flat(view, y, n);
            let mut r_in = new_node(view, anchor, "Reshape", "");
            r_in.inputs = Slots::of(&[Some(a)]);
            r_in.outputs = Slots::of(&[Some(gemm_in)]);
            let mut r_out = new_node(view, add_anchor, "Reshape", "");
            r_out.inputs = Slots::of(&[Some(gemm_out)]);
            r_out.outputs = Slots::of(&[Some(y)]);
            added.push(r_in);
            added.push(r_out);
        }
        let mut gemm = new_node(view, add_anchor, "Gemm", "");
        gemm.inputs = Slots::of(&[Some(gemm_in), Some(b), Some(bias)]);
        gemm.outputs = Slots::of(&[Some(gemm_out)]);
        gemm.prepack = prepack;
        added.push(gemm);
        removed[k] = true;
        removed[add_k] = true;
        view.absorbed.push((anchor, add_anchor));
    }
    let changed = !added.is_empty();
    commit(view, &removed, added);
    *order = Some(vorder);
    changed
}

/// MatMulAddFusion leaves attention's output projection alone: Softmax -> MatMul ->
/// Transpose -> Reshape -> MatMul.
fn attention_projection_input(view: &View, producer: &[Option<usize>], a: usize) -> bool {
    let step = |v: Option<usize>, op: &str| -> Option<usize> {
        let p = producer.get(v?).copied().flatten()?;
        let n = &view.nodes[p];
        (n.std() && n.op == op).then_some(p)
    };
    let Some(reshape) = step(Some(a), "Reshape") else {
        return false;
    };
    let Some(transpose) = step(view.nodes[reshape].inputs[0], "Transpose") else {
        return false;
    };
    let Some(av) = step(view.nodes[transpose].inputs[0], "MatMul") else {
        return false;
    };
    step(view.nodes[av].inputs[0], "Softmax").is_some()
}

/// GemmActivationFusion (level 2): a Gemm read only by an activation becomes a FusedGemm.
fn gemm_activation_fusion(view: &mut View, adj: &mut Adj) -> bool {
    let Adj {
        readers,
        preds,
        kinds,
        order,
        ..
    } = adj;
    let (readers, preds, kinds) = (&*readers, &*preds, &*kinds);
    let candidate = view.nodes.iter().zip(kinds).any(|(gemm, &kind)| {
        kind == OpKind::Gemm
            && sole_reader(view, readers, gemm).is_some_and(|a| {
                std_op(
                    &view.nodes[a],
                    &["Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "Elu"],
                )
            })
    });
    if !candidate {
        return false;
    }
    let vorder = order
        .take()
        .unwrap_or_else(|| order_by_preds(&view.nodes, preds));
    let mut removed = vec![false; view.nodes.len()];
    let mut added = Vec::new();
    for &k in &vorder {
        if kinds[k] != OpKind::Gemm {
            continue;
        }
        let gemm = &view.nodes[k];
        if removed[k] || !gemm.std() || gemm.op != "Gemm" || !is_float(view, gemm.inputs[0]) {
            continue;
        }
        let Some(Some(out)) = gemm.outputs.first().copied() else {
            continue;
        };
        if view.vals[out].is_output || readers[out].len() != 1 {
            continue;
        }
        let act_k = readers[out][0];
        let act = &view.nodes[act_k];
        if removed[act_k]
            || !act.std()
            || !matches!(
                act.op,
                "Relu" | "Sigmoid" | "Tanh" | "LeakyRelu" | "HardSigmoid" | "Elu"
            )
        {
            continue;
        }
        let (act_anchor, gemm_anchor) = (act.anchor, gemm.anchor);
        let (inputs, prepack, outputs) = (gemm.inputs.clone(), gemm.prepack, act.outputs.clone());
        let mut fused = new_node(view, gemm_anchor, "FusedGemm", "com.microsoft");
        fused.inputs = inputs;
        fused.outputs = outputs;
        fused.prepack = prepack;
        added.push(fused);
        removed[k] = true;
        removed[act_k] = true;
        view.absorbed.push((act_anchor, gemm_anchor));
    }
    let changed = !added.is_empty();
    commit(view, &removed, added);
    *order = Some(vorder);
    changed
}

fn is_matmul(n: &VNode) -> bool {
    (n.std() && n.op == "MatMul") || (n.domain == "com.microsoft" && n.op == "FusedMatMul")
}

/// MatmulTransposeFusion (level 2): a Transpose of the last two axes feeding a (Fused)MatMul
/// folds into a FusedMatMul (transA/transB); the Transpose goes once no reader is left.
fn matmul_transpose_fusion(g: &Graph, view: &mut View, adj: &mut Adj) -> bool {
    let Adj {
        readers,
        producer,
        preds,
        kinds,
        order,
    } = adj;
    let (readers, producer, preds, kinds) = (&*readers, &*producer, &*preds, &*kinds);
    let candidate = view.nodes.iter().zip(kinds).any(|(mm, &kind)| {
        matches!(kind, OpKind::MatMul | OpKind::FusedMatMul)
            && mm.inputs.len() >= 2
            && mm.inputs[..2]
                .iter()
                .flatten()
                .filter_map(|x| producer[*x])
                .any(|p| kinds[p] == OpKind::Transpose)
    });
    if !candidate {
        return false;
    }
    let vorder = order
        .take()
        .unwrap_or_else(|| order_by_preds(&view.nodes, preds));
    let mut reads_left: HashMap<usize, usize> = HashMap::new();
    let mut absorbed = Vec::new();
    let mut removed = vec![false; view.nodes.len()];
    let mut added = Vec::new();
    let swaps_last_two = |view: &View, k: usize| -> bool {
        let n = &view.nodes[k];
        if !n.std() || n.op != "Transpose" {
            return false;
        }
        if n.outputs.iter().flatten().any(|o| view.vals[*o].is_output) {
            return false;
        }
        let rank = n
            .inputs
            .first()
            .copied()
            .flatten()
            .and_then(|x| view.vals[x].rank())
            .unwrap_or(0);
        let perm: Vec<i64> = match g.node(n.anchor).attr_ints("perm") {
            Some(p) => p.to_vec(),
            None => (0..rank as i64).rev().collect(),
        };
        let r = perm.len();
        r >= 2
            && perm[..r - 2]
                .iter()
                .enumerate()
                .all(|(i, &p)| p == i as i64)
            && perm[r - 2] == r as i64 - 1
            && perm[r - 1] == r as i64 - 2
    };
    for &k in &vorder {
        if !matches!(kinds[k], OpKind::MatMul | OpKind::FusedMatMul) {
            continue;
        }
        let mm = &view.nodes[k];
        if removed[k] || !is_matmul(mm) || mm.inputs.len() < 2 {
            continue;
        }
        let mut inputs = mm.inputs.clone();
        let mut trans_b = false;
        let mut any = false;
        for (slot, input) in inputs.iter_mut().enumerate().take(2) {
            let Some(x) = *input else { continue };
            let Some(p) = producer[x] else { continue };
            if removed[p] || !swaps_last_two(view, p) {
                continue;
            }
            let left = reads_left.entry(x).or_insert(readers[x].len());
            *left -= 1;
            if *left == 0 {
                removed[p] = true;
                absorbed.push((view.nodes[p].anchor, mm.anchor));
            }
            *input = view.nodes[p].inputs[0];
            trans_b |= slot == 1;
            any = true;
        }
        if !any {
            continue;
        }
        let (anchor, outputs) = (mm.anchor, mm.outputs.clone());
        let mut fused = new_node(view, anchor, "FusedMatMul", "com.microsoft");
        fused.prepack = pack_b(view, inputs[1], trans_b);
        fused.inputs = inputs;
        fused.outputs = outputs;
        added.push(fused);
        removed[k] = true;
    }
    view.absorbed.extend(absorbed);
    let changed = !added.is_empty();
    commit(view, &removed, added);
    *order = Some(vorder);
    changed
}

/// A constant scalar (one element, rank at most `max_rank`).
fn scalar_constant(view: &View, v: Option<usize>, max_rank: usize) -> bool {
    v.is_some_and(|v| {
        let val = &view.vals[v];
        val.constant
            && val
                .known_dims()
                .is_some_and(|d| d.iter().product::<i64>() == 1 && d.len() <= max_rank)
    })
}

/// The input a Mul or Div by a constant scalar scales, if node `k` is one.
fn scaled_input(view: &View, k: usize) -> Option<usize> {
    let n = &view.nodes[k];
    if !n.std() || n.inputs.len() != 2 {
        return None;
    }
    let rank = |v: Option<usize>| v.and_then(|v| view.vals[v].rank()).unwrap_or(0);
    match n.op {
        "Div" if scalar_constant(view, n.inputs[1], rank(n.inputs[0])) => Some(0),
        "Mul" => (0..2)
            .find(|&i| scalar_constant(view, n.inputs[i], rank(n.inputs[1 - i])))
            .map(|i| 1 - i),
        _ => None,
    }
}

/// MatMulScaleFusion (level 2): a Mul/Div by a constant scalar on a (Fused)MatMul input, or
/// as its only reader, folds into FusedMatMul's alpha; the scaling node goes when unread.
fn matmul_scale_fusion(view: &mut View, adj: &mut Adj) -> bool {
    let Adj {
        readers,
        producer,
        preds,
        kinds,
        order,
    } = adj;
    let (readers, producer, preds, kinds) = (&*readers, &*producer, &*preds, &*kinds);
    let candidate = view.nodes.iter().zip(kinds).any(|(mm, &kind)| {
        matches!(kind, OpKind::MatMul | OpKind::FusedMatMul)
            && mm.inputs.len() >= 2
            && (mm.inputs[..2]
                .iter()
                .flatten()
                .filter_map(|x| producer[*x])
                .any(|p| std_op(&view.nodes[p], &["Mul", "Div"]))
                || sole_reader(view, readers, mm)
                    .is_some_and(|r| std_op(&view.nodes[r], &["Mul", "Div"])))
    });
    if !candidate {
        return false;
    }
    let vorder = order
        .take()
        .unwrap_or_else(|| order_by_preds(&view.nodes, preds));
    let mut removed = vec![false; view.nodes.len()];
    let mut reads_left: Vec<usize> = view
        .nodes
        .iter()
        .map(|n| n.outputs.iter().flatten().map(|o| readers[*o].len()).sum())
        .collect();
    let mut added = Vec::new();
    for &k in &vorder {
        if !matches!(kinds[k], OpKind::MatMul | OpKind::FusedMatMul) {
            continue;
        }
        let mm = &view.nodes[k];
        if removed[k] || !is_matmul(mm) || mm.inputs.len() < 2 || !is_float(view, mm.inputs[0]) {
            continue;
        }
        let mut inputs = mm.inputs.clone();
        let mut outputs = mm.outputs.clone();
        let mut merged_in = Vec::new();
        for input in inputs.iter_mut().take(2) {
            let Some(x) = *input else { continue };
            let Some(p) = producer[x] else { continue };
            if removed[p] {
                continue;
            }
            let Some(i) = scaled_input(view, p) else {
                continue;
            };
            let unscaled = view.nodes[p].inputs[i];
            let non_scalar = unscaled
                .and_then(|u| view.vals[u].dims.as_deref())
                .is_some_and(|d| !d.is_empty());
            if non_scalar {
                *input = unscaled;
                merged_in.push(p);
            }
        }
        let mut merged_out = None;
        if let Some(Some(out)) = mm.outputs.first().copied() {
            if !view.vals[out].is_output && readers[out].len() == 1 {
                let r = readers[out][0];
                if !removed[r] && scaled_input(view, r).is_some() {
                    outputs = view.nodes[r].outputs.clone();
                    merged_out = Some(r);
                }
            }
        }
        if merged_in.is_empty() && merged_out.is_none() {
            continue;
        }
        let (anchor, prepack) = (mm.anchor, mm.prepack);
        for p in merged_in {
            reads_left[p] = reads_left[p].saturating_sub(1);
            if reads_left[p] == 0 {
                removed[p] = true;
                view.absorbed.push((view.nodes[p].anchor, anchor));
            }
        }
        if let Some(r) = merged_out {
            removed[r] = true;
            view.absorbed.push((view.nodes[r].anchor, anchor));
        }
        let mut fused = new_node(view, anchor, "FusedMatMul", "com.microsoft");
        fused.inputs = inputs;
        fused.outputs = outputs;
        fused.prepack = prepack;
        added.push(fused);
        removed[k] = true;
    }
    let changed = !added.is_empty();
    commit(view, &removed, added);
    *order = Some(vorder);
    changed
}

fn is_reshape_like(n: &VNode) -> bool {
    n.std() && matches!(n.op, "Reshape" | "Squeeze" | "Unsqueeze")
}

/// ReshapeFusion's FuseContiguousReshapes: a chain of Reshape/Squeeze/Unsqueeze nodes, each
/// the only reader of the previous one's output, ending in a statically known shape, becomes
/// one new Reshape with a constant shape. The first node's shape input is dropped, and nodes
/// left without readers by that (a pin's late dependency) are removed.
fn fuse_contiguous_reshapes(view: &mut View, adj: &mut Adj) -> bool {
    let nv = view.vals.len();
    let Adj {
        readers,
        producer,
        preds,
        kinds,
        order,
    } = adj;
    let (readers, producer, preds, kinds) = (&*readers, &*producer, &*preds, &*kinds);
    let candidate = view.nodes.iter().zip(kinds).any(|(n, &kind)| {
        kind == OpKind::ReshapeLike
            && sole_reader(view, readers, n).is_some_and(|r| kinds[r] == OpKind::ReshapeLike)
    });
    if !candidate {
        return false;
    }
    let vorder = order
        .take()
        .unwrap_or_else(|| order_by_preds(&view.nodes, preds));
    let mut removed = vec![false; view.nodes.len()];
    let mut orphan_seeds: Vec<usize> = Vec::new();
    let mut new_nodes = Vec::new();
    for &k in &vorder {
        if kinds[k] != OpKind::ReshapeLike || removed[k] {
            continue;
        }
        if !is_reshape_like(&view.nodes[k]) {
            continue;
        }
        let mut chain = vec![k];
        loop {
            let last = &view.nodes[*chain.last().unwrap()];
            let Some(Some(out)) = last.outputs.first() else {
                break;
            };
            if view.vals[*out].is_output || readers[*out].len() != 1 {
                break;
            }
            let next = readers[*out][0];
            let nn = &view.nodes[next];
            let static_out = nn
                .outputs
                .first()
                .copied()
                .flatten()
                .is_some_and(|o| view.vals[o].known_dims().is_some());
            if removed[next]
                || !is_reshape_like(nn)
                || nn.inputs.first() != Some(&Some(*out))
                || !static_out
            {
                break;
            }
            chain.push(next);
        }
        if chain.len() < 2 {
            continue;
        }
        let first = &view.nodes[chain[0]];
        let last = &view.nodes[*chain.last().unwrap()];
        let fused = VNode {
            anchor: last.anchor,
            index: view.next_index,
            op: "Reshape",
            domain: "",
            kind: OpKind::ReshapeLike,
            inputs: Slots::of(&[first.inputs[0]]),
            outputs: Slots::of(&[last.outputs[0]]),
            prepack: 0,
            scratch: Vec::new(),
            activation: false,
            follow_consumers: false,
        };
        view.next_index += 1;
        for &c in &chain {
            removed[c] = true;
            orphan_seeds.extend(view.nodes[c].inputs.iter().skip(1).flatten());
            view.absorbed.push((view.nodes[c].anchor, fused.anchor));
        }
        new_nodes.push(fused);
    }
    // Remove what only fed the dropped shape inputs.
    let mut live_readers: Vec<usize> = (0..nv)
        .map(|v| readers[v].iter().filter(|&&k| !removed[k]).count())
        .collect();
    for n in &new_nodes {
        for v in n.inputs.iter().flatten() {
            live_readers[*v] += 1;
        }
    }
    while let Some(v) = orphan_seeds.pop() {
        let Some(p) = producer[v] else { continue };
        if removed[p] {
            continue;
        }
        let unread = view.nodes[p]
            .outputs
            .iter()
            .flatten()
            .all(|o| live_readers[*o] == 0 && !view.vals[*o].is_output);
        if unread {
            removed[p] = true;
            for i in view.nodes[p].inputs.iter().flatten() {
                live_readers[*i] -= 1;
                orphan_seeds.push(*i);
            }
        }
    }
    let changed = !new_nodes.is_empty();
    let mut k = 0;
    view.nodes.retain(|_| {
        let keep = !removed[k];
        k += 1;
        keep
    });
    view.nodes.extend(new_nodes);
    *order = Some(vorder);
    changed
}

/// Whether ONNX Runtime folds a node: now, never, or not before the value given is constant.
enum Fold {
    Now,
    Never,
    After(usize),
}

/// ONNX Runtime's constant folding: every input constant and a deterministic op ONNX Runtime
/// folds; `Shape` of a value whose shape is fully known. When not now, what it waits for.
fn fold_check(g: &Graph, n: &Node, vals: &[VVal<'_>]) -> Fold {
    if !n.is_standard_domain() {
        return Fold::Never;
    }
    if matches!(
        n.op_type.as_str(),
        "RandomUniform"
            | "RandomNormal"
            | "RandomUniformLike"
            | "RandomNormalLike"
            | "Multinomial"
            | "Dropout"
            | "QuantizeLinear"
            | "DequantizeLinear"
            | "If"
            | "Loop"
            | "Scan"
    ) {
        return Fold::Never;
    }
    if n.op_type == "Shape" {
        // A shape never becomes known: only the input becoming constant can change this.
        return match n.input(0) {
            None => Fold::Never,
            Some(x) if vals[x.index()].constant || dims(g, x).is_some() => Fold::Now,
            Some(x) => Fold::After(x.index()),
        };
    }
    match n
        .inputs
        .iter()
        .flatten()
        .find(|v| !vals[v.index()].constant)
    {
        Some(v) => Fold::After(v.index()),
        None => Fold::Now,
    }
}

fn align(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// ConstantSharing's key of a single-element constant: (type, rank, value bytes).
fn sharing_key(g: &Graph, v: ValueId) -> Option<(i32, usize, &[u8])> {
    let val = g.value(v);
    let t = val.initializer.as_ref().or(val.constant.as_ref())?;
    if t.numel() != 1
        || !matches!(
            t.dtype,
            DType::Float | DType::Double | DType::Int32 | DType::Int64 | DType::Float16
        )
    {
        return None;
    }
    match &t.data {
        onnx_ac_passes::ir::TensorData::Raw(b) => {
            Some((t.dtype.to_onnx(), t.dims.len(), b.as_slice()))
        }
        _ => None,
    }
}

/// MLAS's packed-B size for an N x K float matrix (N padded to 16 columns).
fn sgemm_pack_b_size(n: u64, k: u64) -> u64 {
    align(align(n, 16) * k * 4, 64)
}

/// Bytes the kernel of `n` prepacks from its constant weights when the session is created.
fn prepack_bytes(g: &Graph, n: &Node, vals: &[VVal<'_>]) -> u64 {
    let Some(b) = n.input(1) else { return 0 };
    if !vals[b.index()].constant || g.value(b).dtype != Some(DType::Float) {
        return 0;
    }
    let Some(d) = dims(g, b) else { return 0 };
    let std_or_ms = n.is_standard_domain() || n.domain == "com.microsoft";
    match n.op_type.as_str() {
        "MatMul" | "Gemm" | "FusedMatMul" | "FusedGemm" if std_or_ms && d.len() == 2 => {
            let tb = n.attr_int("transB").unwrap_or(0) != 0;
            let (k, nn) = if tb { (d[1], d[0]) } else { (d[0], d[1]) };
            if k <= 0 || nn <= 0 {
                return 0;
            }
            sgemm_pack_b_size(nn as u64, k as u64)
        }
        "ConvTranspose" if n.is_standard_domain() && d.len() >= 3 => {
            let group = n.attr_int("group").unwrap_or(1).max(1) as u64;
            let k = d[0].max(0) as u64 / group;
            let nn: u64 = d[1..].iter().map(|&x| x.max(0) as u64).product();
            if k <= 1 || nn <= 1 {
                return 0;
            }
            4 * nn * k * group
        }
        _ => 0,
    }
}

/// Buffers a kernel allocates while it runs.
fn scratch_bytes(g: &Graph, n: &Node, threads: u64) -> Vec<u64> {
    if !n.is_standard_domain() {
        return Vec::new();
    }
    let out = || n.output(0).and_then(|o| g.value_bytes(o)).unwrap_or(0);
    let v = match n.op_type.as_str() {
        // Sums pairwise through one temporary of the output's size.
        "Sum" if n.inputs.iter().flatten().count() > 2 => vec![out()],
        // Selects through two temporaries of the output's size.
        "Where" => vec![out(), out()],
        // Softmax over an inner axis transposes the input and the result (opset 13 and
        // later, which every graph onnx-ac writes uses).
        "Softmax" | "LogSoftmax" => {
            let rank = n
                .input(0)
                .and_then(|x| dims(g, x))
                .map_or(0, |d| d.len() as i64);
            let axis = n.attr_int("axis").unwrap_or(-1);
            let axis = if axis < 0 { axis + rank } else { axis };
            if rank > 0 && axis != rank - 1 {
                vec![out(), out()]
            } else {
                Vec::new()
            }
        }
        "Conv" => vec![conv_scratch(g, n, threads)],
        "ConvTranspose" => vec![conv_transpose_scratch(g, n)],
        _ => Vec::new(),
    };
    v.into_iter().filter(|&b| b > 0).collect()
}

/// Elements of MLAS's per-thread convolution working buffer (SGEMM strides N x K).
const MLAS_CONV_WORKING_BUFFER_PER_THREAD: u64 = 128 * 128;
const MLAS_SGEMM_THREAD_COMPLEXITY: f64 = 64.0 * 1024.0;
const MLAS_MAXIMUM_THREAD_COUNT: u64 = 16;

/// MLAS's convolution working buffer (MlasConvPrepare), in bytes.
fn conv_scratch(g: &Graph, n: &Node, threads: u64) -> u64 {
    let (Some(x), Some(w), Some(y)) = (
        n.input(0).and_then(|v| dims(g, v)),
        n.input(1).and_then(|v| dims(g, v)),
        n.output(0).and_then(|v| dims(g, v)),
    ) else {
        return 0;
    };
    if x.len() < 3 || w.len() != x.len() || y.len() != x.len() {
        return 0;
    }
    if g.value(n.input(0).unwrap()).dtype != Some(DType::Float) {
        return 0;
    }
    let u = |v: i64| v.max(0) as u64;
    let group = n.attr_int("group").unwrap_or(1).max(1) as u64;
    let ones = |name: &str| n.attr_ints(name).is_none_or(|v| v.iter().all(|&s| s == 1));
    let zero_pads = n
        .attr_ints("pads")
        .is_none_or(|v| v.iter().all(|&p| p == 0))
        && n.attr_string("auto_pad")
            .is_none_or(|a| a == "NOTSET" || a == "VALID");
    let kernel: u64 = w[2..].iter().map(|&d| u(d)).product();
    let batch = u(x[0]);
    let in_channels = u(x[1]) / group;
    let filter_count = u(w[0]) / group;
    let output_size: u64 = y[2..].iter().map(|&d| u(d)).product();
    let k = in_channels * kernel;
    if ones("strides") && zero_pads && kernel == 1 {
        return 0; // pointwise: a direct GEMM
    }
    let elems = if filter_count > output_size {
        output_size * k
    } else if batch * group > 1 {
        threads.min(batch * group) * MLAS_CONV_WORKING_BUFFER_PER_THREAD
    } else {
        let complexity = (filter_count * output_size * k) as f64;
        let mut target =
            if complexity < MLAS_SGEMM_THREAD_COMPLEXITY * MLAS_MAXIMUM_THREAD_COUNT as f64 {
                (complexity / MLAS_SGEMM_THREAD_COMPLEXITY) as u64 + 1
            } else {
                MLAS_MAXIMUM_THREAD_COUNT
            };
        target = target.min(threads).max(1);
        let mut stride_n = output_size.div_ceil(target);
        if target > 1 {
            stride_n = align(stride_n, 16);
            if stride_n >= output_size {
                target = 1;
            } else if stride_n * (target - 1) >= output_size {
                target -= 1;
            }
        }
        target * MLAS_CONV_WORKING_BUFFER_PER_THREAD
    };
    elems * 4
}

/// ConvTranspose's column buffer: (output channels per group x kernel) x input image.
fn conv_transpose_scratch(g: &Graph, n: &Node) -> u64 {
    let (Some(x), Some(w)) = (
        n.input(0).and_then(|v| dims(g, v)),
        n.input(1).and_then(|v| dims(g, v)),
    ) else {
        return 0;
    };
    if x.len() < 3 || w.len() != x.len() {
        return 0;
    }
    let u = |v: i64| v.max(0) as u64;
    let kernel_dim = u(w[1]) * w[2..].iter().map(|&d| u(d)).product::<u64>();
    let image: u64 = x[2..].iter().map(|&d| u(d)).product();
    let elem = g
        .value(n.input(0).unwrap())
        .dtype
        .and_then(DType::size_bytes)
        .unwrap_or(4);
    kernel_dim * image * elem
}

// ---------------------------------------------------------------------------------------------
// The NCHWc layout transformer (onnxruntime/core/optimizer/nchwc_transformer.cc).

/// An NCHWc output standing in for a value of the original layout.
struct NchwcArg {
    /// The value of the original layout it stands for.
    orig: usize,
    /// The node computing it.
    node: usize,
    /// The blocked value.
    val: usize,
    starting_uses: usize,
    remaining_uses: usize,
    channels: i64,
}

struct Nchwc<'a, 'g> {
    g: &'g Graph,
    view: &'a mut View<'g>,
    block: i64,
    /// Per value: the NCHWc argument standing in for it (an index into `args`).
    arg_of: HashMap<usize, usize>,
    args: Vec<NchwcArg>,
    reorder_inputs: HashMap<usize, usize>,
    /// Per original node: its output edges were removed.
    edges_removed: Vec<bool>,
    removed: Vec<bool>,
    /// Per original node: consumer slots reading its outputs (ONNX Runtime's output edges).
    out_edges: Vec<usize>,
    /// Per value: the original node producing it.
    producer: Vec<Option<usize>>,
    next_index: usize,
}

impl<'a, 'g> Nchwc<'a, 'g> {
    fn new(g: &'g Graph, view: &'a mut View<'g>, block: i64) -> Self {
        let n = view.nodes.len();
        let mut producer = vec![None; view.vals.len()];
        for (k, node) in view.nodes.iter().enumerate() {
            for o in node.outputs.iter().flatten() {
                producer[*o] = Some(k);
            }
        }
        let mut out_edges = vec![0; n];
        for node in &view.nodes {
            for i in node.inputs.iter().flatten() {
                if let Some(p) = producer[*i] {
                    out_edges[p] += 1;
                }
            }
        }
        Nchwc {
            g,
            next_index: view.next_index,
            view,
            block,
            arg_of: HashMap::new(),
            args: Vec::new(),
            reorder_inputs: HashMap::new(),
            edges_removed: vec![false; n],
            removed: vec![false; n],
            out_edges,
            producer,
        }
    }

    fn run(mut self) {
        let original = self.view.nodes.len();
        for k in view_order(&self.view.nodes, self.view.vals.len()) {
            if k < original {
                self.transform(k);
            }
        }
        // Finalize: reorder back every NCHWc value that keeps users of the original layout.
        for a in 0..self.args.len() {
            if self.args[a].remaining_uses == 0 {
                continue;
            }
            let orig = self.args[a].orig;
            let anchor = self.view.nodes[self.args[a].node].anchor;
            let val = self.args[a].val;
            let r = self.add_node(
                "ReorderOutput",
                anchor,
                Slots::of(&[Some(val)]),
                Slots::of(&[Some(orig)]),
            );
            self.view.nodes[r].follow_consumers = true;
        }
        self.view.next_index = self.next_index;
        let mut k = 0;
        let removed = std::mem::take(&mut self.removed);
        self.view.nodes.retain(|_| {
            let keep = k >= removed.len() || !removed[k];
            k += 1;
            keep
        });
    }

    fn add_node(&mut self, op: &'g str, anchor: NodeId, inputs: Slots, outputs: Slots) -> usize {
        let index = self.next_index;
        self.next_index += 1;
        self.view.nodes.push(VNode {
            anchor,
            index,
            op,
            domain: "com.microsoft.nchwc",
            kind: OpKind::Other,
            inputs,
            outputs,
            prepack: 0,
            scratch: Vec::new(),
            activation: false,
            follow_consumers: false,
        });
        self.view.nodes.len() - 1
    }

    /// A new blocked value standing for `orig` (channels padded to the block).
    fn blocked_value(&mut self, orig: usize) -> usize {
        let mut v = self.view.vals[orig].clone();
        if let Some(d) = v.dims.as_mut() {
            if let Some(Dim::Known(c)) = d.get(1).cloned() {
                d.to_mut()[1] = Dim::Known(align(c.max(0) as u64, self.block as u64) as i64);
            }
        }
        v.is_output = false;
        v.is_input = false;
        v.is_static = false;
        v.constant = false;
        self.view.vals.push(v);
        self.view.vals.len() - 1
    }

    fn input_edge_count(&self, k: usize) -> usize {
        self.view.nodes[k]
            .inputs
            .iter()
            .flatten()
            .filter(|v| {
                self.producer
                    .get(**v)
                    .copied()
                    .flatten()
                    .is_some_and(|p| !self.edges_removed[p])
            })
            .count()
    }

    /// ONNX Runtime's RemoveOutputEdges: the node's output edge count (+1 for a graph output).
    fn remove_output_edges(&mut self, k: usize) -> usize {
        let mut n = if self.edges_removed[k] {
            0
        } else {
            self.out_edges[k]
        };
        self.edges_removed[k] = true;
        if self.view.nodes[k]
            .outputs
            .iter()
            .flatten()
            .any(|o| self.view.vals[*o].is_output)
        {
            n += 1;
        }
        n
    }

    /// Makes output 0 of `nchwc_node` (a new node, or `k` itself) a blocked value standing for
    /// output 0 of original node `k`.
    fn create_arg(&mut self, k: usize, nchwc_node: usize, channels: i64) {
        let uses = self.remove_output_edges(k);
        let Some(orig) = self.view.nodes[k].outputs[0] else {
            return;
        };
        let val = self.blocked_value(orig);
        self.view.nodes[nchwc_node].outputs[0] = Some(val);
        self.args.push(NchwcArg {
            orig,
            node: nchwc_node,
            val,
            starting_uses: uses,
            remaining_uses: uses,
            channels,
        });
        self.arg_of.insert(orig, self.args.len() - 1);
    }

    /// Output 0 of original node `k` is the value of argument `a` (the node is fused away).
    fn fuse_arg(&mut self, k: usize, a: usize) {
        let uses = self.remove_output_edges(k);
        let Some(orig) = self.view.nodes[k].outputs[0] else {
            return;
        };
        let (node, val, channels) = (self.args[a].node, self.args[a].val, self.args[a].channels);
        self.args.push(NchwcArg {
            orig,
            node,
            val,
            starting_uses: uses,
            remaining_uses: uses,
            channels,
        });
        self.arg_of.insert(orig, self.args.len() - 1);
        self.removed[k] = true;
        let into = self.view.nodes[node].anchor;
        self.view.absorbed.push((self.view.nodes[k].anchor, into));
    }

    /// The blocked input of a converted node: an existing argument, or a shared ReorderInput.
    fn blocked_input(&mut self, x: usize, anchor: NodeId) -> usize {
        if let Some(&a) = self.arg_of.get(&x) {
            self.args[a].remaining_uses = self.args[a].remaining_uses.saturating_sub(1);
            return self.args[a].val;
        }
        if let Some(&r) = self.reorder_inputs.get(&x) {
            return r;
        }
        let r = self.blocked_value(x);
        let n = self.add_node(
            "ReorderInput",
            anchor,
            Slots::of(&[Some(x)]),
            Slots::of(&[Some(r)]),
        );
        self.view.nodes[n].follow_consumers = true;
        self.reorder_inputs.insert(x, r);
        r
    }

    fn is_float_constant(&self, v: Option<usize>, rank: usize) -> Option<Vec<i64>> {
        let v = v?;
        let val = &self.view.vals[v];
        if !val.constant || val.elem != Some(4) || val.string {
            return None;
        }
        let d = val.known_dims()?;
        (d.len() == rank).then_some(d)
    }

    fn transform(&mut self, k: usize) {
        let n = &self.view.nodes[k];
        if !n.std()
            || !matches!(
                n.op,
                "Conv"
                    | "MaxPool"
                    | "AveragePool"
                    | "Add"
                    | "Sum"
                    | "Mul"
                    | "Concat"
                    | "Relu"
                    | "Sigmoid"
                    | "Tanh"
                    | "BatchNormalization"
                    | "GlobalMaxPool"
                    | "GlobalAveragePool"
            )
        {
            return; // nothing the transformer converts
        }
        let node = self.view.nodes[k].clone();
        let gnode = self.g.node(node.anchor);
        let op = node.op;
        if node.std() && op == "Conv" {
            self.conv(k, &node, gnode);
        } else if node.std() && matches!(op, "MaxPool" | "AveragePool") {
            self.pool(k, &node);
        } else if self.input_edge_count(k) == 0 && !node.inputs.is_empty() && node.std() {
            match op {
                "Add" | "Sum" => self.binary(k, &node, true),
                "Mul" => self.binary(k, &node, false),
                "Concat" => self.concat(k, &node, gnode),
                "Relu" | "Sigmoid" | "Tanh" => self.activation(k, &node),
                "BatchNormalization" => self.batch_norm(k, &node, gnode),
                "GlobalMaxPool" | "GlobalAveragePool" => self.pool(k, &node),
                _ => {}
            }
        }
    }

    fn conv(&mut self, k: usize, node: &VNode<'g>, gnode: &Node) {
        let Some(w) = self.is_float_constant(node.inputs.get(1).copied().flatten(), 4) else {
            return;
        };
        let (out_ch, in_ch) = (w[0], w[1]);
        let group = gnode.attr_int("group").unwrap_or(1);
        let b = self.block;
        let mut reorder_input = true;
        if group > 1 {
            if out_ch % b != 0 {
                return;
            }
            let depthwise = in_ch == 1 && out_ch == group;
            if !depthwise && (in_ch % b != 0 || out_ch % group != 0 || (out_ch / group) % b != 0) {
                return;
            }
        } else if in_ch < b {
            reorder_input = false;
        } else if in_ch % b != 0 {
            return;
        }
        if let Some(Some(bias)) = node.inputs.get(2) {
            match self.is_float_constant(Some(*bias), 1) {
                Some(d) if d[0] == out_ch => {}
                _ => return,
            }
        }
        let mut inputs = node.inputs.clone();
        let nc = self.add_node("Conv", node.anchor, Slots::default(), node.outputs.clone());
        if reorder_input {
            if let Some(x) = inputs[0] {
                inputs[0] = Some(self.blocked_input(x, node.anchor));
            }
        }
        self.view.nodes[nc].inputs = inputs;
        self.create_arg(k, nc, out_ch);
        self.removed[k] = true;
    }

    fn pool(&mut self, k: usize, node: &VNode<'g>) {
        if node.outputs.iter().rposition(Option::is_some).unwrap_or(0) > 0 {
            return; // MaxPool's indices
        }
        let Some(x) = node.inputs.first().copied().flatten() else {
            return;
        };
        let xv = &self.view.vals[x];
        let Some(d) = xv.dims.as_deref() else { return };
        if xv.elem != Some(4) || d.len() != 4 {
            return;
        }
        let Dim::Known(channels) = d[1] else { return };
        if channels % self.block != 0 {
            return;
        }
        let nc = self.add_node(node.op, node.anchor, Slots::default(), node.outputs.clone());
        let bx = self.blocked_input(x, node.anchor);
        let mut inputs = node.inputs.clone();
        inputs[0] = Some(bx);
        self.view.nodes[nc].inputs = inputs;
        self.create_arg(k, nc, channels);
        self.removed[k] = true;
    }

    fn binary(&mut self, k: usize, node: &VNode<'g>, add: bool) {
        let ins: Vec<usize> = node.inputs.iter().flatten().copied().collect();
        if ins.len() != node.inputs.len() {
            return;
        }
        let Some(args): Option<Vec<usize>> =
            ins.iter().map(|v| self.arg_of.get(v).copied()).collect()
        else {
            return;
        };
        let channels = self.args[args[0]].channels;
        let d0 = self.view.vals[ins[0]].known_dims();
        for (n, &a) in args.iter().enumerate().skip(1) {
            if self.args[a].channels != channels {
                return;
            }
            let dn = self.view.vals[ins[n]].known_dims();
            let same = matches!((&d0, &dn), (Some(p), Some(q)) if p == q && p.len() == 4 && p.iter().all(|&x| x > 0));
            if !same {
                return; // the Reshape-based path for unprovable shapes is not modelled
            }
        }
        let mut new_inputs = Slots::default();
        for &a in &args {
            new_inputs.push(Some(self.args[a].val));
            self.args[a].remaining_uses = self.args[a].remaining_uses.saturating_sub(1);
        }
        if add && args.len() == 2 {
            for n in 0..2 {
                let a = args[n];
                let conv = self.args[a].node;
                let cn = &self.view.nodes[conv];
                if cn.op == "Conv"
                    && cn.domain == "com.microsoft.nchwc"
                    && cn.inputs.len() < 4
                    && self.args[a].starting_uses == 1
                    && !cn.activation
                {
                    let other = self.args[args[n ^ 1]].node;
                    let sum = self.view.nodes[other].outputs[0];
                    let cn = &mut self.view.nodes[conv];
                    cn.inputs.resize(4, None);
                    cn.inputs[3] = sum;
                    self.fuse_arg(k, a);
                    return;
                }
            }
        }
        self.view.nodes[k].inputs = new_inputs;
        self.create_arg(k, k, channels);
    }

    fn concat(&mut self, k: usize, node: &VNode<'g>, gnode: &Node) {
        if gnode.attr_int("axis") != Some(1) {
            return;
        }
        let mut args = Vec::new();
        let mut total = 0;
        for v in node.inputs.iter() {
            let Some(a) = v.and_then(|v| self.arg_of.get(&v).copied()) else {
                return;
            };
            if self.args[a].channels % self.block != 0 {
                return;
            }
            total += self.args[a].channels;
            args.push(a);
        }
        let mut new_inputs = Slots::default();
        for a in args {
            new_inputs.push(Some(self.args[a].val));
            self.args[a].remaining_uses = self.args[a].remaining_uses.saturating_sub(1);
        }
        self.view.nodes[k].inputs = new_inputs;
        self.create_arg(k, k, total);
    }

    fn activation(&mut self, k: usize, node: &VNode<'g>) {
        let Some(a) = node.inputs[0].and_then(|v| self.arg_of.get(&v).copied()) else {
            return;
        };
        self.view.nodes[k].inputs[0] = Some(self.args[a].val);
        self.args[a].remaining_uses = self.args[a].remaining_uses.saturating_sub(1);
        let conv = self.args[a].node;
        let cn = &self.view.nodes[conv];
        if cn.op == "Conv"
            && cn.domain == "com.microsoft.nchwc"
            && self.args[a].starting_uses == 1
            && !cn.activation
        {
            self.view.nodes[conv].activation = true;
            self.fuse_arg(k, a);
        } else {
            let channels = self.args[a].channels;
            self.create_arg(k, k, channels);
        }
    }

    fn batch_norm(&mut self, k: usize, node: &VNode<'g>, gnode: &Node) {
        if node.outputs.iter().rposition(Option::is_some).unwrap_or(0) > 0 {
            return;
        }
        let Some(a) = node.inputs[0].and_then(|v| self.arg_of.get(&v).copied()) else {
            return;
        };
        if gnode.attr_int("spatial").is_some_and(|s| s != 1)
            || gnode.attr_float("epsilon").is_none()
        {
            return;
        }
        let channels = self.args[a].channels;
        for i in 1..5 {
            match self.is_float_constant(node.inputs.get(i).copied().flatten(), 1) {
                Some(d) if d[0] == channels => {}
                _ => return,
            }
        }
        let input = self.args[a].val;
        // The scale and bias become new initializers padded to the block.
        let param = align(channels.max(0) as u64, self.block as u64) * 4;
        if param <= SMALL_INITIALIZER_MAX_BYTES {
            self.view.new_small_initializers += 2 * param;
        }
        let nc = self.add_node(
            "Conv",
            node.anchor,
            Slots::of(&[Some(input)]),
            node.outputs.clone(),
        );
        self.args[a].remaining_uses = self.args[a].remaining_uses.saturating_sub(1);
        self.create_arg(k, nc, channels);
        self.removed[k] = true;
    }
}

// ---------------------------------------------------------------------------------------------
// Kernel buffer sharing (the CPU kernels' `Alias` and `MayInplace` declarations).

/// The input whose buffer output `oi` must share (`Alias` in the kernel definition).
fn alias_input(n: &VNode, oi: usize) -> Option<usize> {
    (n.std()
        && oi == 0
        && matches!(
            n.op,
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Identity"
        ))
    .then_some(0)
}

/// The input output `oi` may be written into in place (`MayInplace`).
fn inplace_input(n: &VNode, oi: usize) -> Option<usize> {
    if oi != 0 {
        return None;
    }
    if n.domain == "com.microsoft.nchwc" {
        // NCHWc Conv accumulates into its Sum input.
        return (n.op == "Conv" && n.inputs.len() > 3).then_some(3);
    }
    (n.std()
        && matches!(
            n.op,
            "Relu"
                | "LeakyRelu"
                | "Elu"
                | "Selu"
                | "Sigmoid"
                | "HardSigmoid"
                | "Softplus"
                | "Softsign"
                | "Tanh"
                | "ThresholdedRelu"
                | "Softmax"
                | "LogSoftmax"
                | "ScatterElements"
                | "Cast"
        ))
    .then_some(0)
}

/// The planner's SameSize: same element size and the same shape, dimension by dimension.
fn same_shape(a: &VVal, b: &VVal) -> bool {
    if a.hidden || b.hidden || a.string || b.string || a.elem.is_none() || a.elem != b.elem {
        return false;
    }
    let (Some(sa), Some(sb)) = (a.dims.as_deref(), b.dims.as_deref()) else {
        return false;
    };
    sa.len() == sb.len()
        && sa.iter().zip(sb).all(|(x, y)| match (x, y) {
            (Dim::Known(p), Dim::Known(q)) => p == q,
            (Dim::Sym(p), Dim::Sym(q)) => p == q && !p.is_empty(),
            _ => false,
        })
}

// ---------------------------------------------------------------------------------------------
// Orders.

/// Lists of `usize` per index, flat.
struct Csr {
    /// Where each list starts in `items` (one more entry than lists).
    start: Vec<usize>,
    items: Vec<usize>,
}

impl std::ops::Index<usize> for Csr {
    type Output = [usize];
    fn index(&self, i: usize) -> &[usize] {
        &self.items[self.start[i]..self.start[i + 1]]
    }
}

/// Per value of `nvals`, the nodes reading it (a node once per input slot, in node order).
fn readers_of(nodes: &[VNode], nvals: usize) -> Csr {
    // Counts at `v + 2`, summed, then filled through `v + 1`: `start[v]` ends up where `v`'s
    // list starts.
    let mut start = vec![0usize; nvals + 2];
    let mut total = 0;
    for n in nodes {
        for v in n.inputs.iter().flatten() {
            start[*v + 2] += 1;
            total += 1;
        }
    }
    for i in 2..nvals + 2 {
        start[i] += start[i - 1];
    }
    let mut items = vec![0usize; total];
    for (k, n) in nodes.iter().enumerate() {
        for v in n.inputs.iter().flatten() {
            items[start[*v + 1]] = k;
            start[*v + 1] += 1;
        }
    }
    start.truncate(nvals + 1);
    Csr { start, items }
}

/// ONNX Runtime's order of `nodes` (positions in the slice).
fn view_order(nodes: &[VNode], nvals: usize) -> Vec<usize> {
    let mut producer_of: Vec<Option<usize>> = vec![None; nvals];
    for (k, v) in nodes.iter().enumerate() {
        for o in v.outputs.iter().flatten() {
            producer_of[*o] = Some(k);
        }
    }
    let mut start = Vec::with_capacity(nodes.len() + 1);
    let mut items = Vec::with_capacity(2 * nodes.len());
    for n in nodes {
        start.push(items.len());
        items.extend(n.inputs.iter().flatten().filter_map(|v| producer_of[*v]));
    }
    start.push(items.len());
    order_by_preds(nodes, &Csr { start, items })
}

/// [`view_order`], given the producers of each node's inputs: the reverse depth-first walk
/// of ONNX Runtime's `GraphViewer`. From the nodes no node reads (pushed in index order, so
/// the last is walked first), each node's producers sorted by index and pushed in that
/// order, so the producer with the largest index is walked first.
fn order_by_preds(nodes: &[VNode], preds: &Csr) -> Vec<usize> {
    let n = nodes.len();
    // Rank by ONNX Runtime index: position r in `by_index` is the node with the r-th index.
    let sorted = nodes.windows(2).all(|w| w[0].index <= w[1].index);
    let mut by_index: Vec<usize> = (0..n).collect();
    let mut rank = Vec::new();
    if !sorted {
        by_index.sort_by_key(|&k| nodes[k].index);
        rank = vec![0; n];
        for (r, &k) in by_index.iter().enumerate() {
            rank[k] = r;
        }
    }
    // Each node's producers (ranks, sorted, repeats kept), flat.
    let mut start: Vec<u32> = Vec::with_capacity(n + 1);
    let mut items: Vec<u32> = Vec::with_capacity(2 * n);
    for &k in &by_index {
        let s = items.len();
        start.push(s as u32);
        for &p in &preds[k] {
            items.push(if sorted { p } else { rank[p] } as u32);
        }
        let ps = &mut items[s..];
        match ps.len() {
            0 | 1 => {}
            2 => {
                if ps[0] > ps[1] {
                    ps.swap(0, 1);
                }
            }
            _ => ps.sort_unstable(),
        }
    }
    start.push(items.len() as u32);
    let mut has_consumer = vec![false; n];
    for &p in &items {
        has_consumer[p as usize] = true;
    }
    // Stack entries: rank << 1, plus 1 when leaving the node.
    let mut stack: Vec<u32> = Vec::with_capacity(n + items.len());
    stack.extend(
        (0..n as u32)
            .filter(|&i| !has_consumer[i as usize])
            .map(|i| i << 1),
    );
    let mut visited = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while let Some(e) = stack.pop() {
        let i = (e >> 1) as usize;
        if e & 1 == 1 {
            order.push(by_index[i]);
            continue;
        }
        if visited[i] {
            continue;
        }
        visited[i] = true;
        stack.push(e | 1);
        for &p in &items[start[i] as usize..start[i + 1] as usize] {
            if !visited[p as usize] {
                stack.push(p << 1);
            }
        }
    }
    order
}

/// ONNX Runtime's execution order under its default session options (all optimizations):
/// every node of `g`, in the order ONNX Runtime runs what it becomes. Nodes fused into another
/// come right after it; nodes ONNX Runtime does not run at all (`Constant`s, folded nodes)
/// come first, in file order.
pub fn ort_default_order(g: &Graph) -> Vec<NodeId> {
    ort_order(g, &SimOptions::default())
}

/// ONNX Runtime's execution order for the given session options; see [`ort_default_order`].
pub fn ort_order(g: &Graph, opts: &SimOptions) -> Vec<NodeId> {
    let mut view = build_view(g, opts, true);
    if view.order.is_none() {
        view.order = Some(view_order(&view.nodes, view.vals.len()));
    }
    order_of_view(g, &view)
}

/// [`ort_default_order`] and [`simulate`] of that order, modelling ONNX Runtime's graph once
/// (what `plan::evaluate` needs): the same results as the two calls.
pub fn simulate_ort_default(g: &Graph, info: Option<&TrainingInfo>) -> (Vec<NodeId>, Simulation) {
    let opts = SimOptions::default();
    let mut view = build_view(g, &opts, false);
    if view.order.is_none() {
        view.order = Some(view_order(&view.nodes, view.vals.len()));
    }
    let order = order_of_view(g, &view);
    let sim = run_view(g, view, &order, info, &opts, false).sim;
    (order, sim)
}

/// ONNX Runtime's execution order of `g` given its graph `view` (whose `order` is set).
fn order_of_view(g: &Graph, view: &View) -> Vec<NodeId> {
    let vorder = view.order.as_deref().expect("the view's order");
    let mut placed = vec![false; g.nodes.len()];
    let mut anchors = Vec::new();
    for &k in vorder {
        let a = view.nodes[k].anchor;
        if !placed[a.index()] {
            placed[a.index()] = true;
            anchors.push(a);
        }
    }
    // Fused nodes right after the node that absorbed them.
    let mut after: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for &(n, into) in &view.absorbed {
        if !placed[n.index()] && placed[into.index()] {
            placed[n.index()] = true;
            after.entry(into).or_default().push(n);
        }
    }
    let mut order: Vec<NodeId> = (0..g.nodes.len())
        .filter(|&i| !placed[i])
        .map(|i| NodeId(i as u32))
        .collect();
    for a in anchors {
        order.push(a);
        if let Some(ns) = after.get(&a) {
            order.extend(ns.iter().copied());
        }
    }
    order
}

/// The running nodes in execution order, and per node the position in `order` it is
/// reported at. When `order` runs the nodes in ONNX Runtime's order, that order is used as is;
/// otherwise nodes follow `order` by their anchors, and layout copies run right before their
/// first reader.
fn schedule(view: &View, order: &[NodeId], n_graph_nodes: usize) -> (Vec<usize>, Vec<usize>) {
    let nodes = &view.nodes;
    let pos: Vec<usize> = {
        let mut p = vec![usize::MAX; n_graph_nodes];
        for (k, n) in order.iter().enumerate() {
            p[n.index()] = k;
        }
        p
    };
    let vorder = match &view.order {
        Some(o) => o.clone(),
        None => view_order(nodes, view.vals.len()),
    };
    let mut ort_rank = vec![0; nodes.len()];
    for (i, &k) in vorder.iter().enumerate() {
        ort_rank[k] = i;
    }
    // Keys: the anchor's position; for layout copies, the smallest key of their readers
    // (computed readers first: reverse ONNX Runtime order is a reverse topological order).
    let mut key: Vec<usize> = nodes.iter().map(|n| pos[n.anchor.index()]).collect();
    let copies = nodes.iter().any(|n| n.follow_consumers);
    let readers = if copies {
        readers_of(nodes, view.vals.len())
    } else {
        Csr {
            start: Vec::new(),
            items: Vec::new(),
        }
    };
    for &k in vorder.iter().rev() {
        if copies && nodes[k].follow_consumers {
            let m = nodes[k]
                .outputs
                .iter()
                .flatten()
                .flat_map(|o| readers[*o].iter())
                .map(|&r| key[r])
                .min();
            if let Some(m) = m {
                key[k] = m;
            }
        }
    }
    let ort_anchor_seq: Vec<usize> = {
        let mut seen = vec![false; n_graph_nodes];
        vorder
            .iter()
            .map(|&k| nodes[k].anchor.index())
            .filter(|&a| !std::mem::replace(&mut seen[a], true))
            .collect()
    };
    let caller_seq: Vec<usize> = {
        let mut is_anchor = vec![false; n_graph_nodes];
        for n in nodes {
            is_anchor[n.anchor.index()] = true;
        }
        order
            .iter()
            .map(|n| n.index())
            .filter(|&i| is_anchor[i])
            .collect()
    };
    if ort_anchor_seq == caller_seq {
        return (vorder, key);
    }
    // List scheduling by (key, ONNX Runtime rank) over the dependencies.
    let mut producer_of: Vec<Option<usize>> = vec![None; view.vals.len()];
    for (k, n) in nodes.iter().enumerate() {
        for o in n.outputs.iter().flatten() {
            producer_of[*o] = Some(k);
        }
    }
    let mut waiting = vec![0usize; nodes.len()];
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (k, n) in nodes.iter().enumerate() {
        for v in n.inputs.iter().flatten() {
            if let Some(p) = producer_of[*v] {
                waiting[k] += 1;
                succ[p].push(k);
            }
        }
    }
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<(usize, usize, usize)>> = (0
        ..nodes.len())
        .filter(|&k| waiting[k] == 0)
        .map(|k| std::cmp::Reverse((key[k], ort_rank[k], k)))
        .collect();
    let mut steps = Vec::with_capacity(nodes.len());
    while let Some(std::cmp::Reverse((_, _, k))) = ready.pop() {
        steps.push(k);
        for &c in &succ[k] {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.push(std::cmp::Reverse((key[c], ort_rank[c], c)));
            }
        }
    }
    (steps, key)
}

// ---------------------------------------------------------------------------------------------
// The simulation.

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

struct Run {
    sim: Simulation,
    events: Vec<AllocEvent>,
    /// With events: the run's buffers step by step, for [`held_buffers`].
    held: Option<HeldBuffers>,
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
    vals: &'v [VVal<'v>],
    ids: HashMap<(u64, &'v [Dim]), u32, FastHash>,
    memo: Vec<Option<Option<u32>>>,
}

impl<'v> ShapeClasses<'v> {
    fn new(vals: &'v [VVal<'v>]) -> Self {
        ShapeClasses {
            vals,
            ids: HashMap::default(),
            memo: vec![None; vals.len()],
        }
    }

    fn get(&mut self, v: usize) -> Option<u32> {
        if let Some(c) = self.memo[v] {
            return c;
        }
        let c = shape_class(&self.vals[v], &mut self.ids);
        self.memo[v] = Some(c);
        c
    }
}

fn run(
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

fn run_view(
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

// ---------------------------------------------------------------------------------------------
// What each buffer holds, step by step (for reports: `html_report`).

/// A buffer of the simulated run allocated (+bytes), released (−bytes) or written with a new
/// value in place (0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldChange {
    /// Index into [`HeldBuffers::steps`].
    pub step: usize,
    /// The buffer (an index of the simulator's own).
    pub buffer: usize,
    pub bytes: i64,
    /// The value of `g` the buffer now holds (for a layout copy, the value it is a copy of);
    /// `None` for a value ONNX Runtime's optimizer made.
    pub value: Option<ValueId>,
}

/// The simulated run as the steps ONNX Runtime runs and the changes of its buffers: per step,
/// its allocations and new holders, then its kernel scratch (held during the step only), then
/// its releases. Replaying it gives [`Simulation::timeline`] and the peak, and at every step
/// which value holds each buffer.
#[derive(Clone, Debug, Default)]
pub struct HeldBuffers {
    /// Per step run: its position in the order given, and the bytes of its kernel scratch.
    pub steps: Vec<(usize, u64)>,
    /// In step order (within a step: allocations and new holders, then releases).
    pub log: Vec<HeldChange>,
}

/// [`simulate_with`] and the run's buffers step by step ([`HeldBuffers`]).
pub fn held_buffers(
    g: &Graph,
    order: &[NodeId],
    info: Option<&TrainingInfo>,
    opts: &SimOptions,
) -> (Simulation, HeldBuffers) {
    let r = run(g, order, info, opts, true);
    (r.sim, r.held.unwrap_or_default())
}
