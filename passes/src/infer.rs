//! Shape and type inference over the whole graph, with constant folding of shape
//! sub-graphs, after binding symbolic input dims (`--dim batch=8`).

use crate::error::{IrError, NodeRef};
use crate::ir::{Dim, Graph, NodeId, ValueId};
use crate::ops::{self, OpCtx};
use std::collections::BTreeMap;

/// Replaces named symbolic dims of the graph inputs (and every declared shape) by values.
/// A name that no input carries is an error, so a typo does not pass silently.
pub fn bind_dims(g: &mut Graph, dims: &BTreeMap<String, i64>) -> Result<(), IrError> {
    for name in dims.keys() {
        let used = g.inputs.iter().any(|&i| {
            g.value(i)
                .shape
                .as_ref()
                .is_some_and(|s| s.iter().any(|d| *d == Dim::Sym(name.clone())))
        });
        if !used {
            return Err(IrError::UnusedDim { dim: name.clone() });
        }
    }
    for v in &mut g.values {
        if let Some(s) = &mut v.shape {
            for d in s.iter_mut() {
                if let Dim::Sym(name) = d {
                    if let Some(&x) = dims.get(name) {
                        *d = Dim::Known(x);
                    }
                }
            }
        }
    }
    Ok(())
}

/// The first symbolic or unknown dim of a graph input, if any: stages that need static
/// shapes report it by input and dim name.
pub fn unbound_input_dim(g: &Graph) -> Option<IrError> {
    for &i in &g.inputs {
        let v = g.value(i);
        if v.initializer.is_some() {
            continue;
        }
        match &v.shape {
            None => {
                return Some(IrError::UnboundDim {
                    input: v.name.clone(),
                    dim: "<rank>".into(),
                })
            }
            Some(s) => {
                for (k, d) in s.iter().enumerate() {
                    match d {
                        Dim::Known(_) => {}
                        Dim::Sym(n) => {
                            return Some(IrError::UnboundDim {
                                input: v.name.clone(),
                                dim: n.clone(),
                            })
                        }
                        Dim::Unknown => {
                            return Some(IrError::UnboundDim {
                                input: v.name.clone(),
                                dim: format!("#{k}"),
                            })
                        }
                    }
                }
            }
        }
    }
    None
}

#[derive(Debug, Default, Clone)]
pub struct InferStats {
    /// Nodes with no rule whose outputs were typed by the file's value_info.
    pub typed_by_file: Vec<NodeId>,
    /// Values folded to constants.
    pub folded: usize,
}

/// Infers dtype and shape of every node output in order. Inferred facts replace the
/// file's; a node with no rule is accepted only if the file already typed all its outputs.
/// The passes `lower` then `infer-shapes`.
pub fn infer_shapes(g: &mut Graph, opset: i64) -> Result<InferStats, IrError> {
    let mut unit = crate::pass::Unit::new(crate::ir::Model {
        graph: std::mem::take(g),
        ..Default::default()
    });
    unit.opset = opset;
    let ran = crate::pass::Manager::new().run(&mut unit, "lower", "infer-shapes");
    *g = std::mem::take(&mut unit.model.graph);
    ran.map_err(|e| match e.into_ir() {
        Ok(e) => e,
        Err(other) => IrError::Invariant(other.to_string()),
    })?;
    Ok(unit.stats.infer)
}

/// The `lower` pass: rewrites the constructs the shape rules do not model
/// (`SplitToSequence`, `DepthToSpace`/`SpaceToDepth`, LSTM/GRU) into plain ops.
pub struct Lower;

impl crate::pass::Pass for Lower {
    fn name(&self) -> &'static str {
        "lower"
    }
    fn summary(&self) -> &'static str {
        "SplitToSequence, DepthToSpace/SpaceToDepth and LSTM/GRU become plain ops"
    }
    fn run(&self, unit: &mut crate::pass::Unit<'_>) -> Result<(), crate::pass::PassError> {
        let mut stats = InferStats::default();
        unit.stats.lowered += walk(&mut unit.model.graph, unit.opset, true, &mut stats)?;
        Ok(())
    }
}

/// The `infer-shapes` pass: [`infer_shapes`] without the lowerings.
pub struct InferShapes;

impl crate::pass::Pass for InferShapes {
    fn name(&self) -> &'static str {
        "infer-shapes"
    }
    fn summary(&self) -> &'static str {
        "infers every value's dtype and shape, folding small constants"
    }
    fn run(&self, unit: &mut crate::pass::Unit<'_>) -> Result<(), crate::pass::PassError> {
        let mut stats = InferStats::default();
        walk(&mut unit.model.graph, unit.opset, false, &mut stats)?;
        unit.stats.infer = stats;
        Ok(())
    }
}

/// Whether `lower` rewrites nodes of this op (when their attributes and shapes allow).
fn lowerable(op: &str) -> bool {
    ops::lookup(op).is_some_and(|d| d.lowering.is_some())
}

/// Infers node by node. With `lowering`, lowers the nodes [`lowerable`] as it reaches
/// them and stops after the last one: a lowering needs the shapes of its inputs (a scalar
/// chunk size, C/H/W, the sequence length), so the prefix before it is inferred here and
/// again by `infer-shapes` (inference is idempotent: the rules read inputs only, and a
/// second run merges the same facts into the first run's). Returns how many nodes were
/// lowered.
fn walk(
    g: &mut Graph,
    opset: i64,
    lowering: bool,
    stats: &mut InferStats,
) -> Result<usize, IrError> {
    let mut remaining = if lowering {
        g.nodes.iter().filter(|n| lowerable(&n.op_type)).count()
    } else {
        0
    };
    let mut lowered = 0;
    let mut next = 0;
    // One name service for every lowering, made by the first that rewrites: each name is
    // read once, and not at all when nothing is lowered.
    let mut names = None;
    while next < g.nodes.len() {
        if lowering && remaining == 0 {
            break;
        }
        let nid = NodeId(next as u32);
        next += 1;
        // Lowerings (`OpDef::lowering`: SplitToSequence → Split, DepthToSpace/SpaceToDepth →
        // Reshape → Transpose → Reshape, LSTM/GRU unrolled) replace the node in its place:
        // inference goes on from there.
        if lowering {
            if let Some(lower) = ops::lookup(&g.node(nid).op_type).and_then(|d| d.lowering) {
                remaining -= 1;
                if lower(g, nid, opset, &mut names) {
                    lowered += 1;
                    next -= 1;
                    continue;
                }
            }
        }
        let node = g.node(nid);
        let rule = if node.is_standard_domain() {
            ops::shape_rule(&node.op_type)
        } else {
            None
        };
        let Some(rule) = rule else {
            let typed = node.outputs.iter().flatten().all(|&o| {
                let v = g.value(o);
                v.dtype.is_some() && v.shape.is_some()
            });
            if typed {
                stats.typed_by_file.push(nid);
                continue;
            }
            return Err(IrError::NoShapeRule {
                node: NodeRef::of(g, nid),
                domain: if node.domain.is_empty() {
                    "ai.onnx".into()
                } else {
                    node.domain.clone()
                },
            });
        };
        let ctx = OpCtx {
            graph: g,
            node,
            opset,
        };
        let outs = rule(&ctx).map_err(|e| IrError::Shape {
            node: NodeRef::of(g, nid),
            reason: e.0,
        })?;
        // Whatever a rule computed, a shape must be allocatable: non-negative dims whose
        // element count and byte size fit in i64.
        for info in &outs {
            if let Some(shape) = &info.shape {
                let bad_dim = shape.iter().any(|d| d.known().is_some_and(|x| x < 0));
                let numel = shape.iter().try_fold(1u64, |a, d| match d.known() {
                    Some(x) => a.checked_mul(u64::try_from(x).ok()?),
                    None => Some(a),
                });
                let bytes = numel.and_then(|n| n.checked_mul(info.dtype.size_bytes().unwrap_or(1)));
                if bad_dim || bytes.is_none_or(|b| b > i64::MAX as u64) {
                    return Err(IrError::Shape {
                        node: NodeRef::of(g, nid),
                        reason: format!(
                            "computes an output of shape {}, which is negative or too large",
                            crate::ir::shape_string(Some(shape))
                        ),
                    });
                }
            }
        }
        let targets: Vec<Option<ValueId>> = node.outputs.clone();
        for (o, info) in targets.into_iter().zip(outs) {
            let Some(o) = o else { continue };
            let v = g.value_mut(o);
            v.dtype = Some(info.dtype);
            v.shape = match (info.shape, v.shape.take()) {
                (Some(new), Some(old)) if new.len() == old.len() => Some(
                    new.into_iter()
                        .zip(old)
                        .map(|(n, o)| if n == Dim::Unknown { o } else { n })
                        .collect(),
                ),
                (Some(new), _) => Some(new),
                (None, old) => old,
            };
            if info.constant.is_some() {
                stats.folded += 1;
            }
            v.constant = info.constant;
        }
    }
    Ok(lowered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{known_shape, Attribute, DType, Node, Tensor};
    use crate::ops::fold::MAX_FOLD_ELEMENTS;

    /// A graph input of `dtype` and `shape` (its contents unknown).
    fn input(g: &mut Graph, name: &str, dtype: DType, shape: &[i64]) -> ValueId {
        let v = g.new_value(name);
        g.value_mut(v).dtype = Some(dtype);
        g.value_mut(v).shape = Some(known_shape(shape));
        g.inputs.push(v);
        v
    }

    fn node(g: &mut Graph, name: &str, op: &str, inputs: &[ValueId], out: &str) -> ValueId {
        let o = g.new_value(out);
        let mut n = Node::new(op, inputs.iter().map(|&i| Some(i)).collect(), vec![Some(o)]);
        n.name = name.into();
        g.add_node(n);
        o
    }

    fn err(g: &mut Graph) -> String {
        infer_shapes(g, 18).unwrap_err().to_string()
    }

    /// The fuzz case: a target of shape [2^40] whose values are unknown gives Expand a rank
    /// of 2^40. It once allocated 2^40 dims (24 TiB) and aborted.
    #[test]
    fn a_rank_from_the_data_is_checked_before_allocating() {
        for op in ["Expand", "Reshape", "ConstantOfShape"] {
            let mut g = Graph::default();
            let x = input(&mut g, "x", DType::Float, &[2]);
            let t = input(&mut g, "t", DType::Int64, &[1 << 40]);
            let inputs = if op == "ConstantOfShape" {
                vec![t]
            } else {
                vec![x, t]
            };
            node(&mut g, "n", op, &inputs, "y");
            let e = err(&mut g);
            assert!(
                e.starts_with(&format!(
                    "node 'n' ({op}): the length of shape input 't' is 1099511627776"
                )),
                "{e}"
            );
        }
    }

    /// Two small constants can broadcast to a huge one: not folded, only shaped.
    #[test]
    fn folding_never_allocates_more_than_the_cap() {
        let n = MAX_FOLD_ELEMENTS as i64;
        let mut g = Graph::default();
        let a = g.add_initializer("a", Tensor::from_i64(vec![n, 1], &vec![1; n as usize]));
        let b = g.add_initializer("b", Tensor::from_i64(vec![1, n], &vec![2; n as usize]));
        let sum = node(&mut g, "add", "Add", &[a, b], "sum");
        let cond = g.add_initializer(
            "c",
            Tensor::raw(DType::Bool, vec![n, 1], vec![1; n as usize]),
        );
        let w = node(&mut g, "where", "Where", &[cond, a, b], "w");
        // Range of 2^40 elements, and ConstantOfShape of [2^20, 2^20].
        let zero = g.add_initializer("zero", Tensor::from_i64(vec![], &[0]));
        let big = g.add_initializer("big", Tensor::from_i64(vec![], &[1 << 40]));
        let one = g.add_initializer("one", Tensor::from_i64(vec![], &[1]));
        let r = node(&mut g, "range", "Range", &[zero, big, one], "r");
        let shape = g.add_initializer("shape", Tensor::from_i64(vec![2], &[1 << 20, 1 << 20]));
        let cos = node(&mut g, "cos", "ConstantOfShape", &[shape], "cos");
        // Concat of parts whose total is above the cap.
        let half = g.add_initializer(
            "half",
            Tensor::from_i64(vec![n / 2 + 1], &vec![3; n as usize / 2 + 1]),
        );
        let cat = node(&mut g, "cat", "Concat", &[half, half], "cat");
        g.nodes
            .last_mut()
            .unwrap()
            .attrs
            .push(Attribute::int("axis", 0));
        let stats = infer_shapes(&mut g, 18).unwrap();
        assert_eq!(stats.folded, 0);
        let shape_of = |v: ValueId| crate::ir::shape_string(g.value(v).shape.as_ref());
        assert_eq!(shape_of(sum), "[65536,65536]");
        assert_eq!(shape_of(w), "[65536,65536]");
        assert_eq!(shape_of(r), "[1099511627776]");
        assert_eq!(shape_of(cos), "[1048576,1048576]");
        assert_eq!(shape_of(cat), "[65538]");
        for v in [sum, w, r, cos, cat] {
            assert!(g.value(v).constant.is_none());
        }
    }

    /// Small constants still fold (Concat of shape vectors, Range, ConstantOfShape).
    #[test]
    fn small_constants_still_fold() {
        let mut g = Graph::default();
        let a = g.add_initializer("a", Tensor::from_i64(vec![2], &[2, 3]));
        let b = g.add_initializer("b", Tensor::from_i64(vec![1], &[4]));
        let cat = node(&mut g, "cat", "Concat", &[a, b], "cat");
        g.nodes
            .last_mut()
            .unwrap()
            .attrs
            .push(Attribute::int("axis", 0));
        let cos = node(&mut g, "cos", "ConstantOfShape", &[cat], "cos");
        let stats = infer_shapes(&mut g, 18).unwrap();
        assert_eq!(stats.folded, 2);
        assert_eq!(
            g.value(cat).constant.as_ref().unwrap().as_i64().unwrap(),
            [2, 3, 4]
        );
        assert_eq!(g.value(cos).constant.as_ref().unwrap().dims, [2, 3, 4]);
    }

    /// A shape rule's error names an unnamed node by index, op and output.
    #[test]
    fn errors_name_unnamed_nodes() {
        let mut g = Graph::default();
        let x = input(&mut g, "x", DType::Float, &[2, 3]);
        node(&mut g, "relu", "Relu", &[x], "h");
        let h = g.nodes[0].outputs[0].unwrap();
        let t = node(&mut g, "", "Transpose", &[h], "y");
        g.nodes
            .last_mut()
            .unwrap()
            .attrs
            .push(Attribute::ints("perm", vec![1, 0, 2]));
        let _ = t;
        assert_eq!(
            err(&mut g),
            "node #1 (Transpose, output 'y'): perm [1, 0, 2] does not match rank 2"
        );
        let mut g = Graph::default();
        let x = input(&mut g, "x", DType::Float, &[2, 3]);
        node(&mut g, "", "Det", &[x], "d");
        assert_eq!(
            err(&mut g),
            "op ai.onnx::Det (node #0, output 'd') has no shape rule in onnx-ac"
        );
    }
}
