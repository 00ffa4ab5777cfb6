//! Cost rules: the floating-point operations and the bytes moved of one node, from static
//! shapes only (pure; the roofline that turns them into seconds is `onnx_ac::cost`).
//!
//! FLOPs count a multiply-add as two. Bytes are the compulsory traffic: every input and
//! output once, except where a kernel touches less (Gather reads only the gathered rows,
//! Slice only the slice) or nothing (Reshape-like ops alias their input). Each op's rule is
//! a field of its registry row (`OpDef::cost`); an op without a row costs one operation per
//! output element and moves its inputs and outputs.

use crate::ir::{static_dims, Graph, Node, NodeId, ValueId};

/// FLOPs of a node.
#[derive(Clone, Copy)]
pub enum Flops {
    /// Data movement and shape computations: bytes only.
    Zero,
    /// So many operations per element of output 0.
    PerOut(f64),
    /// So many operations per element of input 0.
    PerIn(f64),
    /// A formula of its own (MatMul, Conv, pools, …).
    Custom(fn(&Graph, &Node) -> f64),
}

/// Bytes a node reads and writes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Bytes {
    /// Every input and every output.
    All,
    /// Nothing: the output aliases the input, or only metadata is read.
    None,
    /// Twice the outputs plus input 1 (the indices): gathered rows are read and written.
    Gathered,
    /// Twice the outputs: only the slice is read.
    Sliced,
    /// The outputs plus input 0 (Expand, Tile read their input once).
    Expanded,
    /// Only the outputs (generators).
    Written,
}

/// An op's cost rule.
#[derive(Clone, Copy)]
pub struct CostRule {
    pub flops: Flops,
    pub bytes: Bytes,
    /// MatMul-class: the compute-heavy ops recomputation is measured by (PyTorch's
    /// partitioner bans them from recomputation below its budget 1; its trade-off is reported
    /// in their FLOPs).
    pub matmul_class: bool,
}

impl CostRule {
    /// One operation per output element, every input and output moved: the rule of an op
    /// with no row, and the default of a row.
    pub const DEFAULT: CostRule = CostRule {
        flops: Flops::PerOut(1.0),
        bytes: Bytes::All,
        matmul_class: false,
    };
}

/// `k` operations per output element.
pub const fn per_out(k: f64) -> CostRule {
    CostRule {
        flops: Flops::PerOut(k),
        ..CostRule::DEFAULT
    }
}

/// `k` operations per input element.
pub const fn per_in(k: f64) -> CostRule {
    CostRule {
        flops: Flops::PerIn(k),
        ..CostRule::DEFAULT
    }
}

/// No arithmetic; `bytes` moved.
pub const fn moves(bytes: Bytes) -> CostRule {
    CostRule {
        flops: Flops::Zero,
        bytes,
        matmul_class: false,
    }
}

/// A formula of its own.
pub const fn custom(f: fn(&Graph, &Node) -> f64) -> CostRule {
    CostRule {
        flops: Flops::Custom(f),
        ..CostRule::DEFAULT
    }
}

/// A MatMul-class op with its formula.
pub const fn matmul_class(f: fn(&Graph, &Node) -> f64) -> CostRule {
    CostRule {
        flops: Flops::Custom(f),
        bytes: Bytes::All,
        matmul_class: true,
    }
}

fn rule(node: &Node) -> CostRule {
    super::lookup(&node.op_type).map_or(CostRule::DEFAULT, |d| d.cost)
}

/// Static dims of a value.
pub fn dims(g: &Graph, v: Option<ValueId>) -> Option<Vec<i64>> {
    static_dims(g.value(v?).shape.as_ref()?)
}

/// Elements of a value (0 when unknown).
pub fn numel(g: &Graph, v: Option<ValueId>) -> f64 {
    dims(g, v).map_or(0.0, |d| product(&d))
}

fn bytes(g: &Graph, v: Option<ValueId>) -> f64 {
    v.and_then(|v| g.value_bytes(v)).unwrap_or(0) as f64
}

/// Product of dims (negative dims count 0).
pub fn product(d: &[i64]) -> f64 {
    d.iter().map(|&x| x.max(0) as f64).product()
}

/// Bytes a node reads and writes.
pub fn node_bytes(g: &Graph, n: NodeId) -> f64 {
    let node = g.node(n);
    let kind = rule(node).bytes;
    if kind == Bytes::None {
        return 0.0;
    }
    let out: f64 = node.outputs.iter().map(|&o| bytes(g, o)).sum();
    match kind {
        Bytes::Gathered => 2.0 * out + bytes(g, node.input(1)),
        Bytes::Sliced => 2.0 * out,
        Bytes::Expanded => out + bytes(g, node.input(0)),
        Bytes::Written => out,
        Bytes::All | Bytes::None => node.inputs.iter().map(|&i| bytes(g, i)).sum::<f64>() + out,
    }
}

/// MatMul-class ops (`CostRule::matmul_class`).
pub fn is_matmul_class(op: &str) -> bool {
    super::lookup(op).is_some_and(|d| d.cost.matmul_class)
}

/// FLOPs of the MatMul-class nodes of `g` among `nodes`.
pub fn matmul_flops(g: &Graph, nodes: impl Iterator<Item = NodeId>) -> f64 {
    nodes
        .filter(|&n| is_matmul_class(&g.node(n).op_type))
        .map(|n| node_flops(g, n))
        .sum::<f64>()
        + 0.0
}

/// Floating-point operations of a node (a multiply-add counts two).
pub fn node_flops(g: &Graph, n: NodeId) -> f64 {
    let node = g.node(n);
    match rule(node).flops {
        Flops::Zero => 0.0,
        Flops::PerOut(k) => k * numel(g, node.output(0)),
        Flops::PerIn(k) => k * numel(g, node.input(0)),
        Flops::Custom(f) => f(g, node),
    }
}
