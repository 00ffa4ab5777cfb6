//! Lowering of ONNX `LSTM` and `GRU` into an unrolled graph of standard ops (Gemm, Split,
//! Squeeze, Unsqueeze, Concat, Transpose, Reshape, Add, Sub, Mul, Sigmoid, Tanh) with the
//! op's exact semantics, so the ordinary gradient rules differentiate it.
//!
//! Called by shape inference when it reaches the node (its inputs' shapes are known).
//! Lowered only at opset 13 or later, when the sequence length and batch are static
//! (at most [`MAX_UNROLL_STEPS`] steps), and when the node uses the
//! default form: no peepholes (`P`), no `clip`, `input_forget` = 0, the default
//! activations (Sigmoid, Tanh[, Tanh]), and `sequence_lens` absent or a constant equal to
//! the sequence length everywhere. Otherwise the node stays (and has no gradient rule).
//!
//! Per direction, `X·Wᵀ + bias` is one Gemm over all steps ([seq·batch, input] x
//! [gates·hidden, input]ᵀ), split per step; each step adds `H_{t-1}·Rᵀ` and applies the
//! gates. An absent initial state is zero: the terms it would feed are left out.

use crate::ir::{Attribute, Graph, Names, Node, NodeId, Patch, Tensor, ValueId};
use std::collections::HashMap;

/// The longest sequence unrolled (steps per direction).
pub const MAX_UNROLL_STEPS: i64 = 4096;

fn const_of(g: &Graph, v: ValueId) -> Option<Tensor> {
    let val = g.value(v);
    if let Some(t) = &val.initializer {
        return Some(t.clone());
    }
    if let Some(t) = &val.constant {
        return Some(t.clone());
    }
    let p = g.node(val.producer?);
    if p.op_type == "Constant" && p.is_standard_domain() {
        return p.attr_tensor("value").cloned();
    }
    None
}

/// Builds the replacement nodes (not yet in the graph) with fresh value names.
struct Builder<'a> {
    g: &'a mut Graph,
    base: String,
    nodes: Vec<Node>,
    names: &'a mut Names<'static>,
    ints: HashMap<Vec<i64>, ValueId>,
}

impl Builder<'_> {
    fn value(&mut self, tag: &str) -> ValueId {
        let name = self.names.fresh_value(&format!("{}/{tag}", self.base));
        self.g.new_value(name)
    }

    fn push(
        &mut self,
        op: &str,
        inputs: Vec<Option<ValueId>>,
        attrs: Vec<Attribute>,
        outs: Vec<ValueId>,
    ) {
        let mut n = Node::new(op, inputs, outs.into_iter().map(Some).collect());
        n.name = self
            .names
            .fresh_node(&format!("{}/{op}_{}", self.base, self.nodes.len()));
        n.attrs = attrs;
        self.nodes.push(n);
    }

    fn op(&mut self, op: &str, inputs: &[ValueId], attrs: Vec<Attribute>) -> ValueId {
        let out = self.value(op);
        self.op_to(op, inputs, attrs, out);
        out
    }

    /// `op` writing into an existing value (one of the lowered node's outputs).
    fn op_to(&mut self, op: &str, inputs: &[ValueId], attrs: Vec<Attribute>, out: ValueId) {
        self.push(
            op,
            inputs.iter().map(|&v| Some(v)).collect(),
            attrs,
            vec![out],
        );
    }

    /// An int64 initializer (shared between uses).
    fn ints(&mut self, vals: &[i64]) -> ValueId {
        if let Some(&v) = self.ints.get(vals) {
            return v;
        }
        let name = self.names.fresh_value(&format!("{}/const", self.base));
        let v = self
            .g
            .add_initializer(name, Tensor::from_i64(vec![vals.len() as i64], vals));
        self.ints.insert(vals.to_vec(), v);
        v
    }

    fn split(&mut self, x: ValueId, axis: i64, sizes: &[i64]) -> Vec<ValueId> {
        let outs: Vec<ValueId> = (0..sizes.len()).map(|_| self.value("Split")).collect();
        let s = self.ints(sizes);
        self.push(
            "Split",
            vec![Some(x), Some(s)],
            vec![Attribute::int("axis", axis)],
            outs.clone(),
        );
        outs
    }

    /// Squeeze or Unsqueeze (axes as an input: opset 13 on).
    fn axes_op(&mut self, op: &str, x: ValueId, axes: &[i64], out: Option<ValueId>) -> ValueId {
        let out = out.unwrap_or_else(|| self.value(op));
        let a = self.ints(axes);
        self.op_to(op, &[x, a], vec![], out);
        out
    }

    fn squeeze(&mut self, x: ValueId, axes: &[i64]) -> ValueId {
        self.axes_op("Squeeze", x, axes, None)
    }

    fn unsqueeze(&mut self, x: ValueId, axes: &[i64], out: Option<ValueId>) -> ValueId {
        self.axes_op("Unsqueeze", x, axes, out)
    }

    fn transpose(&mut self, x: ValueId, perm: &[i64], out: Option<ValueId>) -> ValueId {
        let out = out.unwrap_or_else(|| self.value("Transpose"));
        self.op_to(
            "Transpose",
            &[x],
            vec![Attribute::ints("perm", perm.to_vec())],
            out,
        );
        out
    }

    /// Per-direction pieces of a `[dirs, ...]` tensor, the leading axis removed.
    fn per_direction(&mut self, x: ValueId, dirs: usize) -> Vec<ValueId> {
        if dirs == 1 {
            vec![self.squeeze(x, &[0])]
        } else {
            let parts = self.split(x, 0, &vec![1; dirs]);
            parts.into_iter().map(|p| self.squeeze(p, &[0])).collect()
        }
    }

    /// `a·bᵀ (+ c)`.
    fn gemm_bt(&mut self, a: ValueId, b: ValueId, c: Option<ValueId>) -> ValueId {
        let mut ins = vec![a, b];
        ins.extend(c);
        self.op("Gemm", &ins, vec![Attribute::int("transB", 1)])
    }

    /// Concatenates along `axis` into `out` (or a fresh value).
    fn concat(&mut self, parts: &[ValueId], axis: i64, out: Option<ValueId>) -> ValueId {
        let out = out.unwrap_or_else(|| self.value("Concat"));
        self.op_to("Concat", parts, vec![Attribute::int("axis", axis)], out);
        out
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Lstm,
    Gru { linear_before_reset: bool },
}

/// Whether the node's attributes and inputs are the form the lowering reproduces.
fn supported_form(n: &Node, kind: Kind, dirs: usize) -> bool {
    for a in &n.attrs {
        match a.name.as_str() {
            "hidden_size" | "direction" | "layout" | "linear_before_reset" => {}
            // Sigmoid and Tanh take no alpha/beta.
            "activation_alpha" | "activation_beta" => {}
            "input_forget" => {
                if n.attr_int("input_forget").unwrap_or(0) != 0 {
                    return false;
                }
            }
            "activations" => {
                let per_dir: &[&str] = match kind {
                    Kind::Lstm => &["Sigmoid", "Tanh", "Tanh"],
                    Kind::Gru { .. } => &["Sigmoid", "Tanh"],
                };
                let Some(crate::ir::AttrValue::Strings(list)) = n.attr("activations") else {
                    return false;
                };
                if list.len() != per_dir.len() * dirs {
                    return false;
                }
                let ok = list.iter().enumerate().all(|(i, s)| {
                    std::str::from_utf8(s)
                        .is_ok_and(|s| s.eq_ignore_ascii_case(per_dir[i % per_dir.len()]))
                });
                if !ok {
                    return false;
                }
            }
            // clip and anything unknown.
            _ => return false,
        }
    }
    true
}

/// Lowers one `LSTM` or `GRU` node if its form allows (see the module doc). On success the
/// node's slot in the arena holds the first replacement node, the rest follow it (ids of
/// later nodes shift), and every output that is read is produced under its own value.
pub fn lower_rnn(
    g: &mut Graph,
    nid: NodeId,
    opset: i64,
    names: &mut Option<Names<'static>>,
) -> bool {
    let n = g.node(nid).clone();
    // Split, Squeeze and Unsqueeze take their sizes and axes as inputs from opset 13.
    if !n.is_standard_domain() || opset < 13 {
        return false;
    }
    let kind = match n.op_type.as_str() {
        "LSTM" => Kind::Lstm,
        "GRU" => Kind::Gru {
            linear_before_reset: n.attr_int("linear_before_reset").unwrap_or(0) != 0,
        },
        _ => return false,
    };
    let gates: i64 = if kind == Kind::Lstm { 4 } else { 3 };
    let dirs = match n.attr_string("direction").as_deref() {
        None | Some("forward") => 1,
        Some("reverse") => 1,
        Some("bidirectional") => 2,
        Some(_) => return false,
    };
    let reverse_only = n.attr_string("direction").as_deref() == Some("reverse");
    if !supported_form(&n, kind, dirs) {
        return false;
    }
    let layout = n.attr_int("layout").unwrap_or(0);
    if layout != 0 && layout != 1 {
        return false;
    }
    let (Some(x), Some(w), Some(r)) = (n.input(0), n.input(1), n.input(2)) else {
        return false;
    };
    let b = n.input(3);
    let seq_lens = n.input(4);
    let init_h = n.input(5);
    let init_c = if kind == Kind::Lstm { n.input(6) } else { None };
    let max_inputs = if kind == Kind::Lstm { 8 } else { 6 };
    // Peepholes (LSTM input 7) or anything beyond the op's inputs.
    if kind == Kind::Lstm && n.input(7).is_some() || n.inputs.len() > max_inputs {
        return false;
    }
    let xv = g.value(x);
    if !xv.dtype.is_some_and(|d| d.is_float()) {
        return false;
    }
    let Some(xs) = xv.shape.as_ref().filter(|s| s.len() == 3) else {
        return false;
    };
    let (seq_d, batch_d) = if layout == 0 {
        (&xs[0], &xs[1])
    } else {
        (&xs[1], &xs[0])
    };
    let (Some(seq), Some(batch)) = (seq_d.known(), batch_d.known()) else {
        return false;
    };
    if seq <= 0 || batch <= 0 || seq > MAX_UNROLL_STEPS {
        return false;
    }
    let hidden = match n.attr_int("hidden_size") {
        Some(h) => h,
        None => match g
            .value(r)
            .shape
            .as_ref()
            .and_then(|s| s.get(2))
            .and_then(|d| d.known())
        {
            Some(h) => h,
            None => return false,
        },
    };
    if hidden <= 0 {
        return false;
    }
    if let Some(sl) = seq_lens {
        let Some(v) = const_of(g, sl).and_then(|t| t.as_i64()) else {
            return false;
        };
        if v.len() as i64 != batch || v.iter().any(|&l| l != seq) {
            return false;
        }
    }
    // Every declared output is produced (even one nobody reads yet: the caller may still
    // be building the graph around the node).
    let read: Vec<Option<ValueId>> = (0..if kind == Kind::Lstm { 3 } else { 2 })
        .map(|i| n.output(i))
        .collect();
    if n.outputs.len() > read.len() {
        return false;
    }

    let base = if n.name.is_empty() {
        n.op_type.clone()
    } else {
        n.name.clone()
    };
    let names = names.get_or_insert_with(|| Names::of_graph(g));
    let mut bd = Builder {
        g,
        base,
        nodes: Vec::new(),
        names,
        ints: HashMap::new(),
    };
    let h = hidden;
    let gh = gates * h;

    // Time-major X, flattened to [seq·batch, input].
    let x_tm = if layout == 0 {
        x
    } else {
        bd.transpose(x, &[1, 0, 2], None)
    };
    let shape = bd.ints(&[seq * batch, -1]);
    let x2 = bd.op("Reshape", &[x_tm, shape], vec![]);

    let ws = bd.per_direction(w, dirs);
    let rs = bd.per_direction(r, dirs);
    let bs: Vec<Option<(ValueId, ValueId)>> = match b {
        Some(b) => bd
            .per_direction(b, dirs)
            .into_iter()
            .map(|bd_| {
                let p = bd.split(bd_, 0, &[gh, gh]);
                Some((p[0], p[1]))
            })
            .collect(),
        None => vec![None; dirs],
    };
    let state = |bd: &mut Builder, v: Option<ValueId>| -> Vec<Option<ValueId>> {
        match v {
            Some(v) => {
                let v = if layout == 0 {
                    v
                } else {
                    bd.transpose(v, &[1, 0, 2], None)
                };
                bd.per_direction(v, dirs).into_iter().map(Some).collect()
            }
            None => vec![None; dirs],
        }
    };
    let h0s = state(&mut bd, init_h);
    let c0s = state(&mut bd, init_c);

    let mut ys: Vec<Vec<ValueId>> = Vec::new();
    let mut last_h = Vec::new();
    let mut last_c = Vec::new();
    for d in 0..dirs {
        let reverse = reverse_only || d == 1;
        let (wd, rd) = (ws[d], rs[d]);
        // Bias added to X·Wᵀ, and the recurrent bias kept apart (GRU, linear_before_reset).
        let (xbias, rbias) = match (kind, bs[d]) {
            (_, None) => (None, None),
            (
                Kind::Gru {
                    linear_before_reset: true,
                },
                Some((wb, rb)),
            ) => (Some(wb), Some(rb)),
            (_, Some((wb, rb))) => (Some(bd.op("Add", &[wb, rb], vec![])), None),
        };
        let xw = bd.gemm_bt(x2, wd, xbias);
        let xws = if seq == 1 {
            vec![xw]
        } else {
            bd.split(xw, 0, &vec![batch; seq as usize])
        };
        // GRU without linear_before_reset: R split into [Rz; Rr] and Rh.
        let r_parts = match kind {
            Kind::Gru {
                linear_before_reset: false,
            } => {
                let p = bd.split(rd, 0, &[2 * h, h]);
                Some((p[0], p[1]))
            }
            _ => None,
        };
        let mut hp = h0s[d];
        let mut cp = c0s[d];
        let mut outs = vec![None; seq as usize];
        let order: Vec<usize> = if reverse {
            (0..seq as usize).rev().collect()
        } else {
            (0..seq as usize).collect()
        };
        for t in order {
            let xt = xws[t];
            let hn = match kind {
                Kind::Lstm => {
                    let pre = match hp {
                        Some(hp) => {
                            let hr = bd.gemm_bt(hp, rd, None);
                            bd.op("Add", &[xt, hr], vec![])
                        }
                        None => xt,
                    };
                    let p = bd.split(pre, 1, &[h, h, h, h]);
                    let i = bd.op("Sigmoid", &[p[0]], vec![]);
                    let o = bd.op("Sigmoid", &[p[1]], vec![]);
                    let c = bd.op("Tanh", &[p[3]], vec![]);
                    let ic = bd.op("Mul", &[i, c], vec![]);
                    let cn = match cp {
                        Some(cp) => {
                            let f = bd.op("Sigmoid", &[p[2]], vec![]);
                            let fc = bd.op("Mul", &[f, cp], vec![]);
                            bd.op("Add", &[fc, ic], vec![])
                        }
                        None => ic,
                    };
                    cp = Some(cn);
                    let tc = bd.op("Tanh", &[cn], vec![]);
                    bd.op("Mul", &[o, tc], vec![])
                }
                Kind::Gru {
                    linear_before_reset,
                } => {
                    let xp = bd.split(xt, 1, &[h, h, h]);
                    // The recurrent terms of z, r and h (None: zero).
                    let (hz, hr, hh): (Option<ValueId>, Option<ValueId>, Option<ValueId>);
                    if linear_before_reset {
                        let rec = match (hp, rbias) {
                            (Some(hp), rb) => Some(bd.gemm_bt(hp, rd, rb)),
                            (None, Some(rb)) => Some(rb),
                            (None, None) => None,
                        };
                        match rec {
                            Some(rec) => {
                                let axis = if hp.is_some() { 1 } else { 0 };
                                let p = bd.split(rec, axis, &[h, h, h]);
                                (hz, hr, hh) = (Some(p[0]), Some(p[1]), Some(p[2]));
                            }
                            None => (hz, hr, hh) = (None, None, None),
                        }
                    } else {
                        match hp {
                            Some(hp) => {
                                let (rzr, _) = r_parts.expect("split above");
                                let rec = bd.gemm_bt(hp, rzr, None);
                                let p = bd.split(rec, 1, &[h, h]);
                                (hz, hr) = (Some(p[0]), Some(p[1]));
                            }
                            None => (hz, hr) = (None, None),
                        }
                        hh = None;
                    }
                    let add = |bd: &mut Builder, a: ValueId, b: Option<ValueId>| match b {
                        Some(b) => bd.op("Add", &[a, b], vec![]),
                        None => a,
                    };
                    let zp = add(&mut bd, xp[0], hz);
                    let z = bd.op("Sigmoid", &[zp], vec![]);
                    let rec_h = if linear_before_reset {
                        match hh {
                            Some(hh) => {
                                let rp = add(&mut bd, xp[1], hr);
                                let rg = bd.op("Sigmoid", &[rp], vec![]);
                                Some(bd.op("Mul", &[rg, hh], vec![]))
                            }
                            None => None,
                        }
                    } else {
                        match hp {
                            Some(hp) => {
                                let rp = add(&mut bd, xp[1], hr);
                                let rg = bd.op("Sigmoid", &[rp], vec![]);
                                let rh = bd.op("Mul", &[rg, hp], vec![]);
                                let (_, rhw) = r_parts.expect("split above");
                                Some(bd.gemm_bt(rh, rhw, None))
                            }
                            None => None,
                        }
                    };
                    let np = add(&mut bd, xp[2], rec_h);
                    let nn = bd.op("Tanh", &[np], vec![]);
                    // H = (1 − z)·n + z·H₋₁ = n + z·(H₋₁ − n).
                    match hp {
                        Some(hp) => {
                            let diff = bd.op("Sub", &[hp, nn], vec![]);
                            let zd = bd.op("Mul", &[z, diff], vec![]);
                            bd.op("Add", &[nn, zd], vec![])
                        }
                        None => {
                            let zn = bd.op("Mul", &[z, nn], vec![]);
                            bd.op("Sub", &[nn, zn], vec![])
                        }
                    }
                }
            };
            outs[t] = Some(hn);
            hp = Some(hn);
        }
        ys.push(outs.into_iter().map(|o| o.expect("every step")).collect());
        last_h.push(hp.expect("seq > 0"));
        last_c.push(cp);
    }

    // Y: [seq, dirs, batch, hidden] (layout 1: [batch, seq, dirs, hidden]).
    if let Some(y) = read[0] {
        let per_dir: Vec<ValueId> = ys
            .iter()
            .map(|steps| {
                let parts: Vec<ValueId> = steps
                    .iter()
                    .map(|&s| bd.unsqueeze(s, &[0, 1], None))
                    .collect();
                if parts.len() == 1 {
                    parts[0]
                } else {
                    bd.concat(&parts, 0, None)
                }
            })
            .collect();
        let out = if layout == 0 { Some(y) } else { None };
        let all = if per_dir.len() == 1 && out.is_none() {
            per_dir[0]
        } else {
            bd.concat(&per_dir, 1, out)
        };
        if layout == 1 {
            bd.transpose(all, &[2, 0, 1, 3], Some(y));
        }
    }
    // Y_h, Y_c: [dirs, batch, hidden] (layout 1: [batch, dirs, hidden]).
    let finals = [
        (read[1], last_h.into_iter().map(Some).collect::<Vec<_>>()),
        (read.get(2).copied().flatten(), last_c),
    ];
    for (out, states) in finals {
        let Some(out) = out else { continue };
        let states: Vec<ValueId> = match states.into_iter().collect::<Option<Vec<_>>>() {
            Some(s) => s,
            // Y_c of an LSTM step always exists; unreachable for the other outputs.
            None => return false,
        };
        if layout == 0 && states.len() == 1 {
            bd.unsqueeze(states[0], &[0], Some(out));
            continue;
        }
        let parts: Vec<ValueId> = states
            .iter()
            .map(|&s| bd.unsqueeze(s, &[0], None))
            .collect();
        if layout == 0 {
            bd.concat(&parts, 0, Some(out));
        } else {
            let all = if parts.len() == 1 {
                parts[0]
            } else {
                bd.concat(&parts, 0, None)
            };
            bd.transpose(all, &[1, 0, 2], Some(out));
        }
    }
    let nodes = std::mem::take(&mut bd.nodes);
    let mut patch = Patch::new(g);
    patch.replace(nid, nodes);
    patch.apply(g);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lowered nodes are named `<node>/<op>_<position>` as before the name service,
    /// though values of the lowering are named `GRU/Split_4` and so on too (values and
    /// nodes are named each in its own namespace).
    #[test]
    fn lowered_node_names_keep_their_scheme() {
        let text = include_str!("../tests/lower/gru.ir");
        let input = &text[..text.find("; expect:").expect("a file test")];
        let mut m = crate::ir::parse_model(input).expect("parses");
        let mut names = None;
        assert!(lower_rnn(&mut m.graph, NodeId(0), 17, &mut names));
        for (k, n) in m.graph.nodes.iter().enumerate() {
            assert_eq!(n.name, format!("GRU/{}_{k}", n.op_type));
        }
        // A value carries one of those names as well (the case that would rename a node
        // in one shared namespace).
        assert!(m.graph.values.iter().any(|v| v.name == "GRU/Split_4"));
    }
}
