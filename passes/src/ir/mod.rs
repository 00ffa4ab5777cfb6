//! The intermediate representation: an arena of nodes and values with newtype ids.

mod graph;
mod names;
mod order;
mod parser;
mod patch;
mod printer;
mod tensor;
mod types;

pub use graph::{AttrValue, Attribute, Graph, Model, Node, NodeId, Origin, Region, Value, ValueId};
pub use names::Names;
pub use order::{sort_nodes, topo_order, verify};
pub use parser::{parse_graph, parse_model, ParseError, FLOAT_LIST_ATTRS};
pub use patch::Patch;
pub use printer::{
    print_graph, print_graph_with_data, print_model, print_model_with_data, tensor_data_text,
    MAX_PRINTED_ELEMENTS,
};
pub use tensor::{f16_to_f32, f32_to_f16, ExternalRef, Tensor, TensorData};
pub use types::{known_shape, shape_string, static_dims, static_numel, DType, Dim, Shape};
