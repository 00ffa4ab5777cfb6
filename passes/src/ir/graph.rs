//! The graph arena: nodes and values addressed by newtype ids. Tensor names appear only at
//! import and export; inside, edges are ids.

use super::tensor::Tensor;
use super::types::{DType, Shape};
use std::collections::HashMap;

macro_rules! id_type {
    ($name:ident, $prefix:literal) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
        impl $name {
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}
id_type!(NodeId, "n");
id_type!(ValueId, "v");

#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Float(f32),
    Int(i64),
    String(Vec<u8>),
    Tensor(Tensor),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<Vec<u8>>),
    Tensors(Vec<Tensor>),
    /// Graphs, sparse tensors, type protos: the whole serialized `AttributeProto`, carried
    /// through untouched. Nodes holding one are opaque to the analyses.
    Opaque(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: AttrValue,
    pub doc_string: String,
    pub ref_attr_name: Option<String>,
}

impl Attribute {
    pub fn int(name: &str, v: i64) -> Attribute {
        Attribute::new(name, AttrValue::Int(v))
    }
    pub fn float(name: &str, v: f32) -> Attribute {
        Attribute::new(name, AttrValue::Float(v))
    }
    pub fn ints(name: &str, v: Vec<i64>) -> Attribute {
        Attribute::new(name, AttrValue::Ints(v))
    }
    pub fn string(name: &str, v: &str) -> Attribute {
        Attribute::new(name, AttrValue::String(v.as_bytes().to_vec()))
    }
    pub fn tensor(name: &str, t: Tensor) -> Attribute {
        Attribute::new(name, AttrValue::Tensor(t))
    }
    pub fn new(name: &str, value: AttrValue) -> Attribute {
        Attribute {
            name: name.to_string(),
            value,
            doc_string: String::new(),
            ref_attr_name: None,
        }
    }
}

/// Where a node comes from. Kept in memory only (never written to ONNX, so it changes no
/// output byte): later stages tell the rewrite's copies and defences from the model's own
/// nodes, and the backward from the forward, by it, not by names or index ranges. A graph
/// loaded from a file has only `Model` nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Origin {
    /// The model file, or a lowering of one of its nodes.
    #[default]
    Model,
    /// The loss the training graph appends.
    Loss,
    /// The backward the training graph builds (gradient rules, sums, the optimizer step).
    Backward,
    /// A copy, made by the `recompute` pass, of the forward node with this id (forward node
    /// ids do not change in the rewrite, so it names the original in the rewritten graph).
    /// Copies run in the backward.
    RecomputeOf(NodeId),
    /// Added by the named pass to steer ONNX Runtime (pins, shape-hiding aliases), in the
    /// region of the nodes it steers.
    Defence { pass: &'static str, region: Region },
}

/// The part of the training step a node runs in. The node list holds them in this order
/// (forward, loss, backward; `ir::verify` checks it), so the backward is a suffix of the
/// list: [`Graph::backward_start`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Region {
    Forward,
    Loss,
    Backward,
}

impl Origin {
    pub fn region(self) -> Region {
        match self {
            Origin::Model => Region::Forward,
            Origin::Loss => Region::Loss,
            Origin::Backward | Origin::RecomputeOf(_) => Region::Backward,
            Origin::Defence { region, .. } => region,
        }
    }

    /// Whether the node was added by the pass named `pass` as a defence.
    pub fn is_defence_of(self, pass: &str) -> bool {
        matches!(self, Origin::Defence { pass: p, .. } if p == pass)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub op_type: String,
    /// `""` is the default `ai.onnx` domain.
    pub domain: String,
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<Option<ValueId>>,
    pub attrs: Vec<Attribute>,
    pub doc_string: String,
    pub overload: String,
    pub metadata: Vec<(String, String)>,
    /// Serialized `NodeDeviceConfigurationProto`s, carried as is.
    pub opaque_device_configurations: Vec<Vec<u8>>,
    /// Provenance (not serialized).
    pub origin: Origin,
}

impl Node {
    /// A standard-domain node with no name, attributes or documentation yet.
    pub fn new(op_type: &str, inputs: Vec<Option<ValueId>>, outputs: Vec<Option<ValueId>>) -> Node {
        Node {
            name: String::new(),
            op_type: op_type.to_string(),
            domain: String::new(),
            inputs,
            outputs,
            attrs: Vec::new(),
            doc_string: String::new(),
            overload: String::new(),
            metadata: Vec::new(),
            opaque_device_configurations: Vec::new(),
            origin: Origin::Model,
        }
    }

    /// The forward node this node is a recompute copy of, if it is one.
    pub fn recompute_of(&self) -> Option<NodeId> {
        match self.origin {
            Origin::RecomputeOf(n) => Some(n),
            _ => None,
        }
    }
}

impl Node {
    pub fn attr(&self, name: &str) -> Option<&AttrValue> {
        self.attrs.iter().find(|a| a.name == name).map(|a| &a.value)
    }
    pub fn attr_int(&self, name: &str) -> Option<i64> {
        match self.attr(name) {
            Some(AttrValue::Int(v)) => Some(*v),
            _ => None,
        }
    }
    pub fn attr_float(&self, name: &str) -> Option<f32> {
        match self.attr(name) {
            Some(AttrValue::Float(v)) => Some(*v),
            _ => None,
        }
    }
    pub fn attr_ints(&self, name: &str) -> Option<&[i64]> {
        match self.attr(name) {
            Some(AttrValue::Ints(v)) => Some(v),
            _ => None,
        }
    }
    pub fn attr_string(&self, name: &str) -> Option<String> {
        match self.attr(name) {
            Some(AttrValue::String(v)) => Some(String::from_utf8_lossy(v).into_owned()),
            _ => None,
        }
    }
    pub fn attr_tensor(&self, name: &str) -> Option<&Tensor> {
        match self.attr(name) {
            Some(AttrValue::Tensor(t)) => Some(t),
            _ => None,
        }
    }
    pub fn input(&self, i: usize) -> Option<ValueId> {
        self.inputs.get(i).copied().flatten()
    }
    pub fn output(&self, i: usize) -> Option<ValueId> {
        self.outputs.get(i).copied().flatten()
    }
    pub fn is_standard_domain(&self) -> bool {
        self.domain.is_empty() || self.domain == "ai.onnx"
    }
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Value {
    pub name: String,
    pub dtype: Option<DType>,
    pub shape: Option<Shape>,
    /// A non-tensor type (sequence, map, optional), serialized `TypeProto`, kept as is.
    pub opaque_type: Option<Vec<u8>>,
    pub producer: Option<NodeId>,
    pub initializer: Option<Tensor>,
    /// A value known at compile time (a folded shape computation or a `Constant`).
    pub constant: Option<Tensor>,
    pub doc_string: String,
    pub metadata: Vec<(String, String)>,
    /// The file carried a `value_info` entry for it (kept on save).
    pub has_value_info: bool,
    /// ONNX Runtime must not learn this value's dims: no `value_info` is written for it, so
    /// ONNX Runtime's allocation planner cannot pair its buffer with another value's
    /// (`runtime_shapes.rs`). `shape` still holds the true dims.
    pub hide_shape: bool,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Graph {
    pub name: String,
    pub doc_string: String,
    pub nodes: Vec<Node>,
    pub values: Vec<Value>,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
    /// Initializers in file order (each value holds its tensor).
    pub initializers: Vec<ValueId>,
    /// Serialized `sparse_initializer` and `quantization_annotation` entries, carried as is.
    pub opaque_sparse_initializers: Vec<Vec<u8>>,
    pub opaque_quantization_annotations: Vec<Vec<u8>>,
    pub metadata: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Model {
    pub ir_version: i64,
    /// (domain, version); `""` is `ai.onnx`.
    pub opset_imports: Vec<(String, i64)>,
    pub producer_name: String,
    pub producer_version: String,
    pub domain: String,
    pub model_version: i64,
    pub doc_string: String,
    pub metadata: Vec<(String, String)>,
    pub graph: Graph,
    /// Serialized `FunctionProto`s and `TrainingInfoProto`s, carried as is.
    pub opaque_functions: Vec<Vec<u8>>,
    pub opaque_training_info: Vec<Vec<u8>>,
    pub opaque_configuration: Vec<Vec<u8>>,
    /// The folder external data locations are relative to (the model file's folder).
    pub base_dir: Option<std::path::PathBuf>,
    /// Fields of `ModelProto` this build does not know, kept so newer files round-trip.
    pub unknown_fields: Vec<u8>,
}

impl Model {
    /// The `ai.onnx` opset version.
    pub fn opset(&self) -> Option<i64> {
        self.opset_imports
            .iter()
            .find(|(d, _)| d.is_empty() || d == "ai.onnx")
            .map(|(_, v)| *v)
    }
}

impl Graph {
    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.index()]
    }
    pub fn value_mut(&mut self, id: ValueId) -> &mut Value {
        &mut self.values[id.index()]
    }
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id.index()]
    }
    /// Whether node `id` runs in the backward (by its provenance).
    pub fn in_backward(&self, id: NodeId) -> bool {
        self.node(id).origin.region() == Region::Backward
    }

    /// Index of the first backward node (the node count when there is none, as in a graph
    /// that is not a training graph): the nodes before it are the forward and the loss.
    /// O(log n): regions never go back in the node list (`ir::verify`).
    pub fn backward_start(&self) -> usize {
        self.nodes
            .partition_point(|n| n.origin.region() != Region::Backward)
    }

    /// The forward and the loss: the nodes before [`Graph::backward_start`].
    pub fn forward_nodes(&self) -> &[Node] {
        &self.nodes[..self.backward_start()]
    }

    /// The backward: the nodes from [`Graph::backward_start`] on.
    pub fn backward_nodes(&self) -> &[Node] {
        &self.nodes[self.backward_start()..]
    }

    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len() as u32).map(NodeId)
    }
    pub fn value_ids(&self) -> impl Iterator<Item = ValueId> + '_ {
        (0..self.values.len() as u32).map(ValueId)
    }

    pub fn add_value(&mut self, v: Value) -> ValueId {
        let id = ValueId(self.values.len() as u32);
        self.values.push(v);
        id
    }

    /// A fresh value named `name` (made unique by the caller, e.g. with [`super::Names`]).
    pub fn new_value(&mut self, name: impl Into<String>) -> ValueId {
        self.add_value(Value {
            name: name.into(),
            ..Value::default()
        })
    }

    /// Appends a node and records it as the producer of its outputs.
    pub fn add_node(&mut self, node: Node) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        for o in node.outputs.iter().flatten() {
            self.values[o.index()].producer = Some(id);
        }
        self.nodes.push(node);
        id
    }

    /// Adds an initializer value holding `t`.
    pub fn add_initializer(&mut self, name: impl Into<String>, t: Tensor) -> ValueId {
        let id = self.add_value(Value {
            name: name.into(),
            dtype: Some(t.dtype),
            shape: Some(super::types::known_shape(&t.dims)),
            constant: None,
            initializer: Some(t),
            ..Value::default()
        });
        self.initializers.push(id);
        id
    }

    /// For every value, the nodes reading it (each node once per value, in node order).
    pub fn consumers(&self) -> Vec<Vec<NodeId>> {
        let mut out = vec![Vec::new(); self.values.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for v in n.inputs.iter().flatten() {
                let list: &mut Vec<NodeId> = &mut out[v.index()];
                if list.last() != Some(&NodeId(i as u32)) {
                    list.push(NodeId(i as u32));
                }
            }
        }
        out
    }

    pub fn value_by_name(&self) -> HashMap<&str, ValueId> {
        self.value_ids()
            .map(|id| (self.value(id).name.as_str(), id))
            .collect()
    }

    /// Bytes of a value with a fully known static shape.
    pub fn value_bytes(&self, id: ValueId) -> Option<u64> {
        let v = self.value(id);
        let n = super::types::static_numel(v.shape.as_ref()?)?;
        n.checked_mul(v.dtype?.size_bytes()?)
    }
}
