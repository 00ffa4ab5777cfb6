//! The graph as ONNX Runtime runs it: the session's values and nodes (a value or node of the
//! graph given, or one an ONNX Runtime transformer made), who reads and makes each value, and
//! [`build_view`], which loads the graph as ONNX Runtime does and runs the transformers.

use super::ids::{Csr, Id, IdVec, VNodeId, VValId};
use super::kernels::{prepack_bytes, scratch_bytes};
use super::transformers;
use super::{OptLevel, SimOptions};
use onnx_ac_passes::ir::{DType, Dim, Graph, Node, NodeId, ValueId};
use std::borrow::Cow;

/// A value of the session's graph: a value of `g`, or one the optimizer made (an NCHWc copy).
#[derive(Clone, Debug)]
pub(super) struct VVal<'g> {
    /// The value of `g` this is, or whose NCHWc layout it holds.
    pub(super) orig: Option<ValueId>,
    pub(super) elem: Option<u64>,
    pub(super) string: bool,
    /// The value's dims (borrowed from `g` unless the optimizer made the value).
    pub(super) dims: Option<Cow<'g, [Dim]>>,
    /// Weights, constants, folded values: no buffer of the run.
    pub(super) is_static: bool,
    /// A constant initializer (foldable, prepackable).
    pub(super) constant: bool,
    pub(super) is_input: bool,
    pub(super) is_output: bool,
    /// ONNX Runtime cannot infer all dims (`Value::hide_shape`): its buffer is never paired.
    pub(super) hidden: bool,
}

impl VVal<'_> {
    pub(super) fn bytes(&self) -> Option<u64> {
        let n = onnx_ac_passes::ir::static_numel(self.dims.as_deref()?)?;
        Some(n * self.elem?)
    }
    pub(super) fn known_dims(&self) -> Option<Vec<i64>> {
        onnx_ac_passes::ir::static_dims(self.dims.as_deref()?)
    }
    pub(super) fn rank(&self) -> Option<usize> {
        self.dims.as_deref().map(<[Dim]>::len)
    }
}

/// A node of the session's graph.
#[derive(Clone, Debug)]
pub(super) struct VNode<'g> {
    /// The node of `g` whose place in the order this node takes.
    pub(super) anchor: NodeId,
    /// Index in ONNX Runtime's graph (orders the depth-first walk; new nodes come last).
    pub(super) index: usize,
    pub(super) op: &'g str,
    pub(super) domain: &'g str,
    /// What the optimizer passes first look for (from `op` and `domain`).
    pub(super) kind: OpKind,
    pub(super) inputs: Slots,
    pub(super) outputs: Slots,
    /// Bytes of weights this kernel prepacks.
    pub(super) prepack: u64,
    /// Buffers the kernel allocates while it runs (all held together).
    pub(super) scratch: Vec<u64>,
    /// An NCHWc convolution with a fused activation.
    pub(super) activation: bool,
    /// A layout copy: when the caller's order is not ONNX Runtime's, it runs right before its
    /// first reader instead of at its anchor.
    pub(super) follow_consumers: bool,
}

/// The ops the optimizer passes start from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OpKind {
    Other,
    MatMul,
    /// `com.microsoft` FusedMatMul.
    FusedMatMul,
    Gemm,
    Transpose,
    /// Reshape, Squeeze, Unsqueeze.
    ReshapeLike,
}

pub(super) fn op_kind(op: &str, domain: &str) -> OpKind {
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
pub(super) enum Slots {
    Inline(u8, [Option<VValId>; 4]),
    Heap(Vec<Option<VValId>>),
}

impl Slots {
    pub(super) fn of(s: &[Option<VValId>]) -> Slots {
        let mut out = Slots::default();
        for &v in s {
            out.push(v);
        }
        out
    }

    pub(super) fn push(&mut self, v: Option<VValId>) {
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

    pub(super) fn truncate(&mut self, len: usize) {
        match self {
            Slots::Inline(n, _) => *n = (*n).min(len as u8),
            Slots::Heap(h) => h.truncate(len),
        }
    }

    pub(super) fn resize(&mut self, len: usize, v: Option<VValId>) {
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
    type Target = [Option<VValId>];
    fn deref(&self) -> &[Option<VValId>] {
        match self {
            Slots::Inline(n, a) => &a[..*n as usize],
            Slots::Heap(h) => h,
        }
    }
}

impl std::ops::DerefMut for Slots {
    fn deref_mut(&mut self) -> &mut [Option<VValId>] {
        match self {
            Slots::Inline(n, a) => &mut a[..*n as usize],
            Slots::Heap(h) => h,
        }
    }
}

impl FromIterator<Option<VValId>> for Slots {
    fn from_iter<I: IntoIterator<Item = Option<VValId>>>(it: I) -> Slots {
        let mut out = Slots::default();
        for v in it {
            out.push(v);
        }
        out
    }
}

impl VNode<'_> {
    pub(super) fn std(&self) -> bool {
        self.domain.is_empty() || self.domain == "ai.onnx"
    }
}

/// The values of a view, by id.
pub(super) type Vals<'g> = IdVec<VValId, VVal<'g>>;
/// The nodes of a view, by id.
pub(super) type Nodes<'g> = IdVec<VNodeId, VNode<'g>>;

/// A node of `g` the optimizer fused into another.
#[derive(Clone, Copy, Debug)]
pub(super) struct Absorbed {
    pub(super) node: NodeId,
    /// The anchor of the node that took it in.
    pub(super) into: NodeId,
}

pub(super) struct View<'g> {
    pub(super) vals: Vals<'g>,
    pub(super) nodes: Nodes<'g>,
    /// Nodes of `g` fused into another.
    pub(super) absorbed: Vec<Absorbed>,
    /// The index the next node the optimizer makes gets.
    pub(super) next_index: usize,
    /// Bytes of small initializers the optimizer made (NCHWc batch-norm scales and biases).
    pub(super) new_small_initializers: u64,
    /// `view_order` of the nodes, when already computed.
    pub(super) order: Option<Vec<VNodeId>>,
}

/// Who reads and who makes each value of a view, and (once asked for) the view's order; valid
/// until the view changes.
pub(super) struct Adj {
    /// Per value, the nodes reading it (a node once per input slot).
    pub(super) readers: Csr<VValId, VNodeId>,
    pub(super) producer: IdVec<VValId, Option<VNodeId>>,
    /// Per node, the producers of its inputs (input order, repeats kept).
    pub(super) preds: Csr<VNodeId, VNodeId>,
    /// Per node, its `kind` (dense: passes scan it instead of the nodes).
    pub(super) kinds: IdVec<VNodeId, OpKind>,
    pub(super) order: Option<Vec<VNodeId>>,
}

/// [`Adj`]'s tables as a transformer reads them, and the order it may leave for the next.
pub(super) type AdjParts<'a> = (
    &'a Csr<VValId, VNodeId>,
    &'a IdVec<VValId, Option<VNodeId>>,
    &'a Csr<VNodeId, VNodeId>,
    &'a IdVec<VNodeId, OpKind>,
    &'a mut Option<Vec<VNodeId>>,
);

impl Adj {
    /// Readers, producers, predecessors and kinds to read; the order to take and put back.
    pub(super) fn split(&mut self) -> AdjParts<'_> {
        (
            &self.readers,
            &self.producer,
            &self.preds,
            &self.kinds,
            &mut self.order,
        )
    }

    pub(super) fn of(view: &View) -> Adj {
        let nodes = &view.nodes;
        let producer = producers(nodes, view.vals.len());
        let readers = readers_of(nodes, view.vals.len());
        let mut pstart = Vec::with_capacity(nodes.len() + 1);
        let mut pitems = Vec::with_capacity(readers.items.len());
        for n in nodes.iter() {
            pstart.push(pitems.len());
            for v in n.inputs.iter().flatten() {
                if let Some(p) = producer[*v] {
                    pitems.push(p);
                }
            }
        }
        pstart.push(pitems.len());
        Adj {
            readers,
            producer,
            preds: Csr::new(pstart, pitems),
            kinds: nodes.iter().map(|n| n.kind).collect(),
            order: None,
        }
    }
}

pub(super) fn is_const_node(n: &Node) -> bool {
    n.op_type == "Constant" && n.is_standard_domain()
}

pub(super) fn dims(g: &Graph, v: ValueId) -> Option<Vec<i64>> {
    onnx_ac_passes::ir::static_dims(g.value(v).shape.as_ref()?)
}

/// The graph ONNX Runtime runs. `order_only`: the caller needs only the nodes and their order
/// (prepacked and scratch bytes are left at zero).
pub(super) fn build_view<'g>(g: &'g Graph, opts: &SimOptions, order_only: bool) -> View<'g> {
    let nv = g.values.len();
    let mut vals: Vals<'g> = g
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
        vals[VValId::from(i)].is_static = true;
    }
    for n in &g.nodes {
        if is_const_node(n) {
            for &o in n.outputs.iter().flatten() {
                vals[VValId::from(o)].is_static = true;
            }
        }
    }
    for &i in &g.inputs {
        if !vals[VValId::from(i)].is_static {
            vals[VValId::from(i)].is_input = true;
        }
    }
    for &o in &g.outputs {
        vals[VValId::from(o)].is_output = true;
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
        transformers::constant_folding::fold_constants(g, &mut vals, &mut runs);
    }
    let mut nodes = Nodes::from_vec(Vec::with_capacity(g.nodes.len() + g.nodes.len() / 8));
    let threads = opts.threads();
    for (i, n) in g.nodes.iter().enumerate() {
        if !runs[i] {
            continue;
        }
        let map = |v: &Option<ValueId>| v.map(VValId::from);
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
    transformers::optimize(g, &mut view, opts);
    view
}

/// Per value of `nvals`, its producer among `nodes`.
pub(super) fn producers(nodes: &Nodes, nvals: usize) -> IdVec<VValId, Option<VNodeId>> {
    let mut producer = IdVec::from_elem(None, nvals);
    for (k, n) in nodes.iter_enumerated() {
        for o in n.outputs.iter().flatten() {
            producer[*o] = Some(k);
        }
    }
    producer
}

/// Per value of `nvals`, the nodes reading it (a node once per input slot, in node order).
pub(super) fn readers_of(nodes: &Nodes, nvals: usize) -> Csr<VValId, VNodeId> {
    // Counts at `v + 2`, summed, then filled through `v + 1`: `start[v]` ends up where `v`'s
    // list starts.
    let mut start = vec![0usize; nvals + 2];
    let mut total = 0;
    for n in nodes.iter() {
        for v in n.inputs.iter().flatten() {
            start[v.index() + 2] += 1;
            total += 1;
        }
    }
    for i in 2..nvals + 2 {
        start[i] += start[i - 1];
    }
    let mut items = vec![VNodeId::new(0); total];
    for (k, n) in nodes.iter_enumerated() {
        for v in n.inputs.iter().flatten() {
            items[start[v.index() + 1]] = k;
            start[v.index() + 1] += 1;
        }
    }
    start.truncate(nvals + 1);
    Csr::new(start, items)
}
