//! Constant folding (level 1), as onnxruntime/core/optimizer/constant_folding.cc does it:
//! nodes whose inputs are all constant, and `Shape` of a statically shaped value, are computed
//! when the session is created; their outputs become initializers.

use super::super::ids::VValId;
use super::super::view::{dims, Vals};
use onnx_ac_passes::ir::{Graph, Node};

/// Marks every node ONNX Runtime folds as not running (`runs`) and its outputs constant,
/// repeated until nothing changes (one pass for sorted graphs).
pub(in crate::plan::simulate) fn fold_constants(g: &Graph, vals: &mut Vals<'_>, runs: &mut [bool]) {
    // A node waiting for a value to become constant is looked at again only once it is.
    let mut waits = vec![Wait::Check; g.nodes.len()];
    loop {
        let mut changed = false;
        for (i, n) in g.nodes.iter().enumerate() {
            if !runs[i] {
                continue;
            }
            match waits[i] {
                Wait::Never => continue,
                Wait::Check => {}
                Wait::For(v) if !vals[v].constant => continue,
                Wait::For(_) => {}
            }
            match fold_check(g, n, vals) {
                Fold::Now => {}
                Fold::Never => {
                    waits[i] = Wait::Never;
                    continue;
                }
                Fold::After(v) => {
                    waits[i] = Wait::For(v);
                    continue;
                }
            }
            runs[i] = false;
            changed = true;
            for &o in n.outputs.iter().flatten() {
                vals[VValId::from(o)].constant = true;
                vals[VValId::from(o)].is_static = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// Whether ONNX Runtime folds a node: now, never, or not before the value given is constant.
enum Fold {
    Now,
    Never,
    After(VValId),
}

/// What a node not folded yet waits for before it is checked again.
#[derive(Clone, Copy)]
enum Wait {
    /// Nothing: check it.
    Check,
    /// It is never folded.
    Never,
    /// This value to become constant.
    For(VValId),
}

/// ONNX Runtime's constant folding: every input constant and a deterministic op ONNX Runtime
/// folds; `Shape` of a value whose shape is fully known. When not now, what it waits for.
fn fold_check(g: &Graph, n: &Node, vals: &Vals<'_>) -> Fold {
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
            Some(x) if vals[VValId::from(x)].constant || dims(g, x).is_some() => Fold::Now,
            Some(x) => Fold::After(VValId::from(x)),
        };
    }
    match n
        .inputs
        .iter()
        .flatten()
        .find(|&&v| !vals[VValId::from(v)].constant)
    {
        Some(&v) => Fold::After(VValId::from(v)),
        None => Fold::Now,
    }
}
