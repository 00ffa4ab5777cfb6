//! Errors of the compiler core. Every variant names what is at fault: node, op, value.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum IrError {
    #[error("node '{node}' ({op}) reads '{value}', which no node, input or initializer produces")]
    UndefinedInput {
        node: String,
        op: String,
        value: String,
    },
    #[error("the graph has a cycle through node '{node}' ({op})")]
    Cycle { node: String, op: String },
    #[error("value '{value}' is produced twice: by node '{first}' and by '{second}'")]
    DuplicateProducer {
        value: String,
        first: String,
        second: String,
    },
    #[error("graph output '{value}' is not produced by any node, input or initializer")]
    UndefinedOutput { value: String },
    #[error("value '{value}' has an invalid dimension {dim} at axis {axis}")]
    BadDim {
        value: String,
        axis: usize,
        dim: i64,
    },
    #[error("op {domain}::{op} (node '{node}') has no shape rule in onnx-ac")]
    NoShapeRule {
        node: String,
        op: String,
        domain: String,
    },
    #[error("node '{node}' ({op}): {reason}")]
    Shape {
        node: String,
        op: String,
        reason: String,
    },
    #[error("input '{input}' has symbolic dimension '{dim}' with no value: pass --dim {dim}=N")]
    UnboundDim { input: String, dim: String },
    #[error("--dim {dim}: no graph input has a dimension named '{dim}'")]
    UnusedDim { dim: String },
    #[error("internal IR invariant broken: {0}")]
    Invariant(String),
}

/// A shape rule's failure, turned into [`IrError::Shape`] with the node named by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleError(pub String);

impl<T: Into<String>> From<T> for RuleError {
    fn from(s: T) -> Self {
        RuleError(s.into())
    }
}
