//! Gradient rules, one file per op family; this file is the registry (one row per op) and
//! says which inputs of an op are differentiable.
//!
//! A rule receives the forward node and the gradients of its outputs (None where an output
//! has no gradient), emits backward nodes through the builder, and returns one gradient per
//! input (None where not needed). Rules read only the forward values they need; `docs/`
//! lists what each one saves.

pub mod conv;
pub mod elementwise;
pub mod linalg;
pub mod norm;
pub mod reduce;
pub mod resize;
pub mod shape;

use super::builder::{Builder, GradResult};
use crate::ir::{Node, NodeId, ValueId};

pub struct GradCtx<'a, 'g> {
    pub b: &'a mut Builder<'g>,
    pub node: &'a Node,
    pub node_id: NodeId,
    /// Which inputs need a gradient.
    pub needs: &'a [bool],
}

impl GradCtx<'_, '_> {
    pub fn x(&self, i: usize) -> GradResult<ValueId> {
        self.node
            .input(i)
            .ok_or_else(|| format!("input {i} is missing"))
    }
    pub fn y(&self, i: usize) -> GradResult<ValueId> {
        self.node
            .output(i)
            .ok_or_else(|| format!("output {i} is missing"))
    }
    pub fn need(&self, i: usize) -> bool {
        self.needs.get(i).copied().unwrap_or(false)
    }
    pub fn dims(&self, v: ValueId) -> GradResult<Vec<i64>> {
        self.b.dims(v)
    }
    pub fn const_ints(&self, i: usize) -> Option<Vec<i64>> {
        let v = self.node.input(i)?;
        let val = self.b.graph.value(v);
        val.constant.as_ref().or(val.initializer.as_ref())?.as_i64()
    }
}

pub type GradRule = fn(&mut GradCtx, &[Option<ValueId>]) -> GradResult<Vec<Option<ValueId>>>;

/// The gradient rule of a node's op, if onnx-ac has one.
pub fn lookup(node: &Node) -> Option<GradRule> {
    if !node.is_standard_domain() {
        return None;
    }
    use elementwise as ew;
    Some(match node.op_type.as_str() {
        "Add" => ew::add,
        "Sub" => ew::sub,
        "Mul" => ew::mul,
        "Div" => ew::div,
        "Pow" => ew::pow,
        "Sum" => ew::sum,
        "Mean" => ew::mean,
        "Max" | "Min" => ew::max_min,
        "Neg" => ew::neg,
        "Abs" => ew::abs,
        "Relu" => ew::relu,
        "LeakyRelu" => ew::leaky_relu,
        "Sigmoid" => ew::sigmoid,
        "Tanh" => ew::tanh,
        "Erf" => ew::erf,
        "Gelu" => ew::gelu,
        "HardSigmoid" => ew::hard_sigmoid,
        "HardSwish" => ew::hard_swish,
        "Exp" => ew::exp,
        "Sin" => ew::sin,
        "Cos" => ew::cos,
        "Log" => ew::log,
        "Sqrt" => ew::sqrt,
        "Reciprocal" => ew::reciprocal,
        "Softplus" => ew::softplus,
        "Clip" => ew::clip,
        "Where" => ew::where_,
        "Identity" => ew::identity,
        "Cast" => ew::cast,
        "CastLike" => ew::cast,
        "Dropout" => ew::dropout,
        "MatMul" => linalg::matmul,
        "Gemm" => linalg::gemm,
        "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => shape::reshape_like,
        "Transpose" => shape::transpose,
        "Expand" => shape::expand,
        "Concat" => shape::concat,
        "Split" => shape::split,
        "Slice" => shape::slice,
        "Gather" => shape::gather,
        "GatherND" => shape::gather_nd,
        "Pad" => shape::pad,
        "GatherElements" => shape::gather_elements,
        "ScatterElements" => shape::scatter_elements,
        "Tile" => shape::tile,
        "Softmax" => norm::softmax,
        "LogSoftmax" => norm::log_softmax,
        "ReduceSum" | "ReduceMean" => norm::reduce_sum_mean,
        "ReduceL1" => reduce::reduce_l1,
        "ReduceL2" => reduce::reduce_l2,
        "ReduceSumSquare" => reduce::reduce_sum_square,
        "ReduceLogSum" => reduce::reduce_log_sum,
        "ReduceLogSumExp" => reduce::reduce_log_sum_exp,
        "ReduceMax" | "ReduceMin" => reduce::reduce_max_min,
        "CumSum" => reduce::cum_sum,
        "LayerNormalization" => norm::layer_norm,
        "BatchNormalization" => norm::batch_norm,
        "InstanceNormalization" => norm::instance_norm,
        "Conv" => conv::conv,
        "ConvTranspose" => conv::conv_transpose,
        "Resize" => resize::resize,
        "MaxPool" => conv::max_pool,
        "AveragePool" => conv::average_pool,
        "GlobalAveragePool" => conv::global_average_pool,
        _ => return None,
    })
}

/// Whether input `i` of `node` carries a gradient (shapes, indices, masks, axes and
/// running statistics do not).
pub fn input_is_differentiable(node: &Node, i: usize) -> bool {
    match node.op_type.as_str() {
        "Reshape" | "Expand" | "Squeeze" | "Unsqueeze" | "Tile" | "Split" | "ReduceSum"
        | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL2" | "ReduceL1"
        | "ReduceSumSquare" | "ReduceLogSum" | "ReduceLogSumExp" | "Pad" | "CumSum" | "Dropout"
        | "TopK" | "Resize" | "Upsample" => i == 0,
        "Slice" | "Gather" | "GatherElements" | "GatherND" => i == 0,
        "Clip" => i == 0,
        // The target carries only a type (`x.new_zeros(...)` exports CastLike(zeros, x)).
        "CastLike" => i == 0,
        "Where" => i != 0,
        "ScatterND" | "ScatterElements" => i != 1,
        "BatchNormalization" => i < 3,
        "Shape" | "Size" | "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual"
        | "ArgMax" | "ArgMin" | "NonZero" | "Range" | "ConstantOfShape" | "OneHot" | "IsNaN"
        | "IsInf" | "Sign" | "Floor" | "Ceil" | "Round" | "Not" | "And" | "Or" | "Xor" => false,
        _ => true,
    }
}
