//! Errors of the compiler core. Every variant names what is at fault: node, op, value.

use crate::ir::{Graph, NodeId};
use std::fmt;
use thiserror::Error;

/// How every error names a node. ONNX node names are optional, so a node without one is
/// named by its index in the node list, its op and its first output, which a reader can
/// find in the file: `node 'attn/reshape' (Reshape)`, or `node #12 (Reshape, output 'x')`.
///
/// Boxed, so that errors holding one stay small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef(Box<NodeInfo>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeInfo {
    /// Position in the graph's node list (0-based).
    index: usize,
    name: String,
    op: String,
    /// The node's first output, if it has one (used only when the name is empty).
    output: Option<String>,
}

impl NodeRef {
    pub fn new(index: usize, name: &str, op: &str, output: Option<&str>) -> NodeRef {
        NodeRef(Box::new(NodeInfo {
            index,
            name: name.to_string(),
            op: op.to_string(),
            output: output.map(str::to_string),
        }))
    }

    /// The node's name (empty for an unnamed node).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn op(&self) -> &str {
        &self.0.op
    }

    /// Node `id` of `g`.
    pub fn of(g: &Graph, id: NodeId) -> NodeRef {
        let n = g.node(id);
        let output = n
            .outputs
            .iter()
            .flatten()
            .next()
            .map(|&o| &*g.value(o).name);
        NodeRef::new(id.index(), &n.name, &n.op_type, output)
    }

    /// Without the op, for messages that name the op already: `node 'name'` or
    /// `node #12, output 'x'`.
    pub fn without_op(&self) -> impl fmt::Display + '_ {
        struct W<'a>(&'a NodeRef);
        impl fmt::Display for W<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let n = &self.0 .0;
                if !n.name.is_empty() {
                    return write!(f, "node '{}'", n.name);
                }
                write!(f, "node #{}", n.index)?;
                match &n.output {
                    Some(o) => write!(f, ", output '{o}'"),
                    None => Ok(()),
                }
            }
        }
        W(self)
    }
}

/// `node 'name' (Op)`, or for an unnamed node `node #12 (Op, output 'x')`.
impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.0;
        if !n.name.is_empty() {
            return write!(f, "node '{}' ({})", n.name, n.op);
        }
        write!(f, "node #{} ({}", n.index, n.op)?;
        if let Some(o) = &n.output {
            write!(f, ", output '{o}'")?;
        }
        f.write_str(")")
    }
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum IrError {
    #[error("{node} reads '{value}', which no node, input or initializer produces")]
    UndefinedInput { node: NodeRef, value: String },
    #[error("the graph has a cycle through {node}")]
    Cycle { node: NodeRef },
    #[error("value '{value}' is produced twice: by {first} and by {second}")]
    DuplicateProducer {
        value: String,
        first: NodeRef,
        second: NodeRef,
    },
    #[error("graph output '{value}' is not produced by any node, input or initializer")]
    UndefinedOutput { value: String },
    #[error("value '{value}' has an invalid dimension {dim} at axis {axis}")]
    BadDim {
        value: String,
        axis: usize,
        dim: i64,
    },
    #[error("op {domain}::{} ({}) has no shape rule in onnx-ac", .node.op(), .node.without_op())]
    NoShapeRule { node: NodeRef, domain: String },
    #[error("{node}: {reason}")]
    Shape { node: NodeRef, reason: String },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Node;

    fn graph() -> (Graph, NodeId, NodeId, NodeId) {
        let mut g = Graph::default();
        let x = g.new_value("x");
        let y = g.new_value("y");
        let z = g.new_value("z");
        let mut named = Node::new("Relu", vec![Some(x)], vec![Some(y)]);
        named.name = "relu".into();
        let a = g.add_node(named);
        // Unnamed; the first output slot is an omitted optional output.
        let b = g.add_node(Node::new("Dropout", vec![Some(y)], vec![None, Some(z)]));
        let c = g.add_node(Node::new("Print", vec![Some(z)], vec![]));
        (g, a, b, c)
    }

    #[test]
    fn unnamed_nodes_are_named_by_index_op_and_output() {
        let (g, a, b, c) = graph();
        assert_eq!(NodeRef::of(&g, a).to_string(), "node 'relu' (Relu)");
        assert_eq!(
            NodeRef::of(&g, b).to_string(),
            "node #1 (Dropout, output 'z')"
        );
        assert_eq!(NodeRef::of(&g, c).to_string(), "node #2 (Print)");
        assert_eq!(NodeRef::of(&g, a).without_op().to_string(), "node 'relu'");
        assert_eq!(
            NodeRef::of(&g, b).without_op().to_string(),
            "node #1, output 'z'"
        );
    }

    #[test]
    fn no_error_prints_an_empty_node_name() {
        let (g, _, b, _) = graph();
        let node = NodeRef::of(&g, b);
        let errors = [
            IrError::UndefinedInput {
                node: node.clone(),
                value: "ghost".into(),
            },
            IrError::Cycle { node: node.clone() },
            IrError::DuplicateProducer {
                value: "z".into(),
                first: node.clone(),
                second: node.clone(),
            },
            IrError::NoShapeRule {
                node: node.clone(),
                domain: "ai.onnx".into(),
            },
            IrError::Shape {
                node: node.clone(),
                reason: "bad".into(),
            },
        ];
        for e in &errors {
            let msg = e.to_string();
            assert!(!msg.contains("''"), "{msg}");
            assert!(msg.contains("node #1"), "{msg}");
        }
        assert_eq!(
            errors[3].to_string(),
            "op ai.onnx::Dropout (node #1, output 'z') has no shape rule in onnx-ac"
        );
        assert_eq!(errors[4].to_string(), "node #1 (Dropout, output 'z'): bad");
    }
}
