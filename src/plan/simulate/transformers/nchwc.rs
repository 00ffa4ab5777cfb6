//! The NCHWc layout transformer (level 3, onnxruntime/core/optimizer/nchwc_transformer.cc):
//! convolutions, pools and what follows them in the blocked channel layout, with
//! `ReorderInput`/`ReorderOutput` copies at the edges.

use super::super::ids::{Id, IdVec, VNodeId, VValId};
use super::super::kernels::align;
use super::super::order::view_order;
use super::super::view::{producers, Absorbed, OpKind, Slots, VNode, View};
use super::super::SMALL_INITIALIZER_MAX_BYTES;
use onnx_ac_passes::ir::{Dim, Graph, Node, NodeId};
use std::collections::HashMap;

/// An NCHWc output standing in for a value of the original layout.
struct NchwcArg {
    /// The value of the original layout it stands for.
    orig: VValId,
    /// The node computing it.
    node: VNodeId,
    /// The blocked value.
    val: VValId,
    starting_uses: usize,
    remaining_uses: usize,
    channels: i64,
}

pub(super) struct Nchwc<'a, 'g> {
    g: &'g Graph,
    view: &'a mut View<'g>,
    block: i64,
    /// Per value: the NCHWc argument standing in for it (an index into `args`).
    arg_of: HashMap<VValId, usize>,
    args: Vec<NchwcArg>,
    /// Per value: the output of its shared ReorderInput.
    reorder_inputs: HashMap<VValId, VValId>,
    /// Per original node: its output edges were removed.
    edges_removed: IdVec<VNodeId, bool>,
    removed: IdVec<VNodeId, bool>,
    /// Per original node: consumer slots reading its outputs (ONNX Runtime's output edges).
    out_edges: IdVec<VNodeId, usize>,
    /// Per value: the original node producing it.
    producer: IdVec<VValId, Option<VNodeId>>,
    next_index: usize,
}

impl<'a, 'g> Nchwc<'a, 'g> {
    pub(super) fn new(g: &'g Graph, view: &'a mut View<'g>, block: i64) -> Self {
        let n = view.nodes.len();
        let producer = producers(&view.nodes, view.vals.len());
        let mut out_edges = IdVec::from_elem(0, n);
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
            edges_removed: IdVec::from_elem(false, n),
            removed: IdVec::from_elem(false, n),
            out_edges,
            producer,
        }
    }

    pub(super) fn run(mut self) {
        let original = self.view.nodes.len();
        for k in view_order(&self.view.nodes, self.view.vals.len()) {
            if k.index() < original {
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
        let removed = removed.as_slice();
        self.view.nodes.retain(|_| {
            let keep = k >= removed.len() || !removed[k];
            k += 1;
            keep
        });
    }

    fn add_node(&mut self, op: &'g str, anchor: NodeId, inputs: Slots, outputs: Slots) -> VNodeId {
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
        })
    }

    /// A new blocked value standing for `orig` (channels padded to the block).
    fn blocked_value(&mut self, orig: VValId) -> VValId {
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
        self.view.vals.push(v)
    }

    fn input_edge_count(&self, k: VNodeId) -> usize {
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
    fn remove_output_edges(&mut self, k: VNodeId) -> usize {
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
    fn create_arg(&mut self, k: VNodeId, nchwc_node: VNodeId, channels: i64) {
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
    fn fuse_arg(&mut self, k: VNodeId, a: usize) {
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
        self.view.absorbed.push(Absorbed {
            node: self.view.nodes[k].anchor,
            into,
        });
    }

    /// The blocked input of a converted node: an existing argument, or a shared ReorderInput.
    fn blocked_input(&mut self, x: VValId, anchor: NodeId) -> VValId {
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

    fn is_float_constant(&self, v: Option<VValId>, rank: usize) -> Option<Vec<i64>> {
        let v = v?;
        let val = &self.view.vals[v];
        if !val.constant || val.elem != Some(4) || val.string {
            return None;
        }
        let d = val.known_dims()?;
        (d.len() == rank).then_some(d)
    }

    fn transform(&mut self, k: VNodeId) {
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

    fn conv(&mut self, k: VNodeId, node: &VNode<'g>, gnode: &Node) {
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

    fn pool(&mut self, k: VNodeId, node: &VNode<'g>) {
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

    fn binary(&mut self, k: VNodeId, node: &VNode<'g>, add: bool) {
        let ins: Vec<VValId> = node.inputs.iter().flatten().copied().collect();
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

    fn concat(&mut self, k: VNodeId, node: &VNode<'g>, gnode: &Node) {
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

    fn activation(&mut self, k: VNodeId, node: &VNode<'g>) {
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

    fn batch_norm(&mut self, k: VNodeId, node: &VNode<'g>, gnode: &Node) {
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
