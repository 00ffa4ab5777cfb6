//! Normalizations applied before inference: rewrite constructs our rules do not model into
//! plain ops with the same meaning.
//!
//! `SplitToSequence(x, split)` whose sequence is only read by `SequenceAt` at constant
//! positions (how the dynamo exporter writes `torch.split`) becomes one `Split` with an
//! output per piece, and each `SequenceAt` becomes an `Identity` of its piece.

use crate::ir::{Attribute, Graph, Node, NodeId, Tensor, ValueId};

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
pub fn lower_split_to_sequence(g: &mut Graph, nid: NodeId) -> bool {
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
    let mut taken = std::collections::HashSet::new();
    let pieces: Vec<ValueId> = (0..sizes.len())
        .map(|i| {
            let name = g.fresh_name(&format!("{base}_{i}"), &mut taken);
            g.new_value(name)
        })
        .collect();
    let sizes_name = g.fresh_name(&format!("{base}_sizes"), &mut taken);
    let sizes_id = g.add_initializer(
        sizes_name,
        Tensor::from_i64(vec![sizes.len() as i64], &sizes),
    );
    {
        let node = g.node_mut(nid);
        node.op_type = "Split".into();
        node.attrs = vec![Attribute::int("axis", axis)];
        node.outputs = pieces.iter().map(|&p| Some(p)).collect();
        node.inputs = vec![Some(x), Some(sizes_id)];
    }
    for &p in &pieces {
        g.value_mut(p).producer = Some(nid);
    }
    g.value_mut(seq).producer = None;
    for (r, k) in uses {
        let out = g.node(r).outputs.clone();
        let name = g.node(r).name.clone();
        let mut id = Node::new("Identity", vec![Some(pieces[k])], out);
        id.name = name;
        *g.node_mut(r) = id;
    }
    true
}
