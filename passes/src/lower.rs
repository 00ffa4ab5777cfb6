//! Normalizations applied before inference: rewrite constructs our rules do not model into
//! plain ops with the same meaning.
//!
//! `SplitToSequence(x, split)` whose sequence is only read by `SequenceAt` at constant
//! positions (how the dynamo exporter writes `torch.split`) becomes one `Split` with an
//! output per piece, and each `SequenceAt` becomes an `Identity` of its piece.
//!
//! `DepthToSpace` (modes DCR and CRD) and `SpaceToDepth` on an input whose C, H and W are
//! known become Reshape → Transpose → Reshape with the permutations of the ONNX spec.

use crate::ir::{Attribute, Graph, Names, Node, NodeId, Patch, Tensor, ValueId};

fn const_of(g: &Graph, v: ValueId) -> Option<Tensor> {
    let val = g.value(v);
    if let Some(t) = &val.initializer {
        return Some(t.clone());
    }
    let p = g.node(val.producer?);
    if p.op_type == "Constant" && p.is_standard_domain() {
        return p.attr_tensor("value").cloned().or_else(|| {
            p.attr_ints("value_ints")
                .map(|v| Tensor::from_i64(vec![v.len() as i64], v))
                .or_else(|| {
                    p.attr_int("value_int")
                        .map(|i| Tensor::from_i64(vec![], &[i]))
                })
        });
    }
    None
}

/// Lowers one `SplitToSequence` node if its pattern allows; called by shape inference when
/// it reaches the node, so the input's shape is known (a scalar chunk size needs it).
/// Returns whether the node was rewritten (it is then a `Split`).
pub fn lower_split_to_sequence(
    g: &mut Graph,
    nid: NodeId,
    names: &mut Option<Names<'static>>,
) -> bool {
    let n = g.node(nid);
    if n.op_type != "SplitToSequence" || !n.is_standard_domain() {
        return false;
    }
    let (Some(x), Some(split), Some(seq)) = (n.input(0), n.input(1), n.output(0)) else {
        return false;
    };
    // At most MAX_FOLD_ELEMENTS pieces: a small chunk of a huge dim is not lowered (the
    // node then has no shape rule) rather than allocating a piece per element.
    use crate::ops::fold::{small, MAX_FOLD_ELEMENTS};
    let Some(split_t) = const_of(g, split).filter(small) else {
        return false;
    };
    let Some(split_v) = split_t.as_i64() else {
        return false;
    };
    let axis = n.attr_int("axis").unwrap_or(0);
    let sizes: Vec<i64> = if split_t.dims.is_empty() {
        let chunk = split_v[0];
        let dim = g.value(x).shape.as_ref().and_then(|s| {
            let r = s.len() as i64;
            let a = if axis < 0 { axis + r } else { axis };
            s.get(usize::try_from(a).ok()?)?.known()
        });
        let Some(dim) = dim else { return false };
        if chunk <= 0 {
            return false;
        }
        let k = if dim <= 0 { 0 } else { (dim - 1) / chunk + 1 };
        if k as u64 > MAX_FOLD_ELEMENTS {
            return false;
        }
        (0..k).map(|i| chunk.min(dim - i * chunk)).collect()
    } else {
        split_v
    };
    if g.outputs.contains(&seq) {
        return false;
    }
    let readers: Vec<NodeId> = g
        .node_ids()
        .filter(|&r| g.node(r).inputs.contains(&Some(seq)))
        .collect();
    let mut uses = Vec::new();
    for &r in &readers {
        let rn = g.node(r);
        if rn.op_type != "SequenceAt" || rn.input(0) != Some(seq) {
            return false;
        }
        let pos = rn
            .input(1)
            .and_then(|p| const_of(g, p))
            .filter(small)
            .and_then(|t| t.as_i64())
            .and_then(|v| v.first().copied());
        let Some(p) = pos else { return false };
        let k = if p < 0 { p + sizes.len() as i64 } else { p };
        if k < 0 || k as usize >= sizes.len() {
            return false;
        }
        uses.push((r, k as usize));
    }
    let base = g.value(seq).name.clone();
    let names = names.get_or_insert_with(|| Names::of_graph(g));
    let pieces: Vec<ValueId> = (0..sizes.len())
        .map(|i| g.new_value(names.fresh_value(&format!("{base}_{i}"))))
        .collect();
    let sizes_name = names.fresh_value(&format!("{base}_sizes"));
    let sizes_id = g.add_initializer(
        sizes_name,
        Tensor::from_i64(vec![sizes.len() as i64], &sizes),
    );
    // The Split takes the node's place (`seq` then has no producer), each reader of the
    // sequence an Identity of its piece.
    let mut split = g.node(nid).clone();
    split.op_type = "Split".into();
    split.attrs = vec![Attribute::int("axis", axis)];
    split.outputs = pieces.iter().map(|&p| Some(p)).collect();
    split.inputs = vec![Some(x), Some(sizes_id)];
    let mut patch = Patch::new(g);
    patch.replace(nid, vec![split]);
    for (r, k) in uses {
        let mut id = Node::new("Identity", vec![Some(pieces[k])], g.node(r).outputs.clone());
        id.name = g.node(r).name.clone();
        patch.replace(r, vec![id]);
    }
    patch.apply(g);
    true
}

/// Lowers one `DepthToSpace` or `SpaceToDepth` node into Reshape → Transpose → Reshape
/// (the formulas of the ONNX spec; SpaceToDepth as ONNX Runtime computes it), when the
/// input is 4-D with known C, H and W that the block size divides. Called by shape
/// inference when it reaches the node; on success the node's slot holds the first Reshape
/// (later node ids shift). Returns whether the node was rewritten.
pub fn lower_depth_space(g: &mut Graph, nid: NodeId, names: &mut Option<Names<'static>>) -> bool {
    let n = g.node(nid).clone();
    let to_space = match n.op_type.as_str() {
        "DepthToSpace" => true,
        "SpaceToDepth" => false,
        _ => return false,
    };
    if !n.is_standard_domain() || n.inputs.len() != 1 || n.outputs.len() != 1 {
        return false;
    }
    let (Some(x), Some(y)) = (n.input(0), n.output(0)) else {
        return false;
    };
    let Some(s) = g.value(x).shape.as_ref().filter(|s| s.len() == 4) else {
        return false;
    };
    let (Some(c), Some(h), Some(w)) = (s[1].known(), s[2].known(), s[3].known()) else {
        return false;
    };
    // A symbolic batch is `0` in the Reshapes: "copy the input's dim 0" (dim 0 stays first
    // through every permutation below), so the batch keeps its name; `-1` lost it.
    let batch = s[0].known().unwrap_or(0);
    let Some(b) = n.attr_int("blocksize").filter(|&b| b >= 1) else {
        return false;
    };
    let Some(bb) = b.checked_mul(b) else {
        return false;
    };
    let (first, perm, last): ([i64; 6], [i64; 6], [i64; 4]) = if to_space {
        if c % bb != 0 {
            return false;
        }
        let (Some(hb), Some(wb)) = (h.checked_mul(b), w.checked_mul(b)) else {
            return false;
        };
        let last = [batch, c / bb, hb, wb];
        match n.attr_string("mode").as_deref() {
            None | Some("DCR") => ([batch, b, b, c / bb, h, w], [0, 3, 4, 1, 5, 2], last),
            Some("CRD") => ([batch, c / bb, b, b, h, w], [0, 1, 4, 2, 5, 3], last),
            Some(_) => return false,
        }
    } else {
        if h % b != 0 || w % b != 0 {
            return false;
        }
        let Some(cbb) = c.checked_mul(bb) else {
            return false;
        };
        (
            [batch, c, h / b, b, w / b, b],
            [0, 3, 5, 1, 2, 4],
            [batch, cbb, h / b, w / b],
        )
    };
    let base = if n.name.is_empty() {
        g.value(y).name.clone()
    } else {
        n.name.clone()
    };
    let names = names.get_or_insert_with(|| Names::of_graph(g));
    let r1 = g.new_value(names.fresh_value(&format!("{base}/Reshape")));
    let t = g.new_value(names.fresh_value(&format!("{base}/Transpose")));
    let n1 = names.fresh_value(&format!("{base}/shape6"));
    let s1 = g.add_initializer(n1, Tensor::from_i64(vec![6], &first));
    let n2 = names.fresh_value(&format!("{base}/shape4"));
    let s2 = g.add_initializer(n2, Tensor::from_i64(vec![4], &last));
    let mut nodes = Vec::new();
    let mut push = |op: &str, ins: Vec<ValueId>, attrs: Vec<Attribute>, out: ValueId| {
        let mut m = Node::new(op, ins.into_iter().map(Some).collect(), vec![Some(out)]);
        m.name = names.fresh_node(&format!("{base}/{op}_{}", nodes.len()));
        m.attrs = attrs;
        nodes.push(m);
    };
    push("Reshape", vec![x, s1], vec![], r1);
    push(
        "Transpose",
        vec![r1],
        vec![Attribute::ints("perm", perm.to_vec())],
        t,
    );
    push("Reshape", vec![t, s2], vec![], y);
    let mut patch = Patch::new(g);
    patch.replace(nid, nodes);
    patch.apply(g);
    true
}
