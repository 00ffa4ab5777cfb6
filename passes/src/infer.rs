//! Shape and type inference over the whole graph, with constant folding of shape
//! sub-graphs, after binding symbolic input dims (`--dim batch=8`).

use crate::error::IrError;
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
pub fn infer_shapes(g: &mut Graph, opset: i64) -> Result<InferStats, IrError> {
    let mut stats = InferStats::default();
    for nid in g.node_ids().collect::<Vec<_>>() {
        if g.node(nid).op_type == "SplitToSequence" {
            crate::lower::lower_split_to_sequence(g, nid);
        }
        let node = g.node(nid);
        let rule = if node.is_standard_domain() {
            ops::lookup(&node.op_type)
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
                node: node.name.clone(),
                op: node.op_type.clone(),
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
        let outs = (rule.infer)(&ctx).map_err(|e| IrError::Shape {
            node: node.name.clone(),
            op: node.op_type.clone(),
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
                        node: node.name.clone(),
                        op: node.op_type.clone(),
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
    Ok(stats)
}
