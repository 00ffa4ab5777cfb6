//! The op registry: one row per supported ai.onnx op, pointing at the rules in the op
//! family files. Adding an op is a rule in its family file plus a row here.

pub mod ctx;
pub mod elementwise;
pub mod fold;
pub mod linalg;
pub mod nn;
pub mod reduce;
pub mod shape_ops;

pub use ctx::{OpCtx, OutInfo, RuleResult};

use elementwise as ew;
use shape_ops as sh;

pub type ShapeRule = fn(&OpCtx) -> RuleResult;

/// Everything onnx-ac knows about one op.
pub struct OpDef {
    pub op_type: &'static str,
    pub infer: ShapeRule,
}

const fn op(op_type: &'static str, infer: ShapeRule) -> OpDef {
    OpDef { op_type, infer }
}

pub static REGISTRY: &[OpDef] = &[
    // Unary math and activations.
    op("Abs", ew::unary),
    op("Acos", ew::unary),
    op("Acosh", ew::unary),
    op("Asin", ew::unary),
    op("Asinh", ew::unary),
    op("Atan", ew::unary),
    op("Atanh", ew::unary),
    op("BitwiseNot", ew::unary),
    op("Ceil", ew::unary),
    op("Celu", ew::unary),
    op("Cos", ew::unary),
    op("Cosh", ew::unary),
    op("Elu", ew::unary),
    op("Erf", ew::unary),
    op("Exp", ew::unary),
    op("Floor", ew::unary),
    op("Gelu", ew::unary),
    op("HardSigmoid", ew::unary),
    op("HardSwish", ew::unary),
    op("Identity", ew::unary),
    op("LeakyRelu", ew::unary),
    op("Log", ew::unary),
    op("Mish", ew::unary),
    op("Neg", ew::unary),
    op("Reciprocal", ew::unary),
    op("Relu", ew::unary),
    op("Round", ew::unary),
    op("Selu", ew::unary),
    op("Sigmoid", ew::unary),
    op("Sign", ew::unary),
    op("Sin", ew::unary),
    op("Sinh", ew::unary),
    op("Softplus", ew::unary),
    op("Softsign", ew::unary),
    op("Swish", ew::unary),
    op("Sqrt", ew::unary),
    op("Tan", ew::unary),
    op("Tanh", ew::unary),
    op("ThresholdedRelu", ew::unary),
    op("Clip", ew::unary),
    op("Not", ew::unary_bool),
    op("IsNaN", ew::unary_bool),
    op("IsInf", ew::unary_bool),
    // Broadcasting binary and variadic ops.
    op("Add", ew::binary),
    op("Sub", ew::binary),
    op("Mul", ew::binary),
    op("Div", ew::binary),
    op("Pow", ew::binary),
    op("Mod", ew::binary),
    op("Max", ew::binary),
    op("Min", ew::binary),
    op("Sum", ew::binary),
    op("Mean", ew::binary),
    op("PRelu", ew::binary),
    op("BitShift", ew::binary),
    op("BitwiseAnd", ew::binary),
    op("BitwiseOr", ew::binary),
    op("BitwiseXor", ew::binary),
    op("Equal", ew::compare),
    op("Less", ew::compare),
    op("Greater", ew::compare),
    op("LessOrEqual", ew::compare),
    op("GreaterOrEqual", ew::compare),
    op("And", ew::compare),
    op("Or", ew::compare),
    op("Xor", ew::compare),
    op("Where", ew::where_),
    op("Cast", ew::cast),
    op("CastLike", ew::cast_like),
    op("Dropout", ew::dropout),
    op("Softmax", ew::softmax),
    op("LogSoftmax", ew::softmax),
    op("Hardmax", ew::softmax),
    op("Bernoulli", ew::like_with_dtype),
    op("RandomUniformLike", ew::like_with_dtype),
    op("EyeLike", ew::like_with_dtype),
    // Shapes and data movement.
    op("Shape", sh::shape),
    op("Size", sh::size),
    op("Constant", sh::constant),
    op("ConstantOfShape", sh::constant_of_shape),
    op("Range", sh::range),
    op("Reshape", sh::reshape),
    op("Flatten", sh::flatten),
    op("Transpose", sh::transpose),
    op("Concat", sh::concat),
    op("Split", sh::split),
    op("Slice", sh::slice),
    op("Gather", sh::gather),
    op("GatherElements", sh::like_input1),
    op("GatherND", sh::gather_nd),
    op("ScatterElements", sh::like_input0),
    op("ScatterND", sh::like_input0),
    op("Expand", sh::expand),
    op("Squeeze", sh::squeeze),
    op("Unsqueeze", sh::unsqueeze),
    op("Tile", sh::tile),
    op("Pad", sh::pad),
    op("CenterCropPad", sh::center_crop_pad),
    op("NonZero", sh::non_zero),
    op("OneHot", sh::one_hot),
    op("TensorScatter", sh::like_input0),
    op("Trilu", sh::like_input0),
    op("CumSum", sh::cum_sum),
    op("BlackmanWindow", sh::window),
    op("HannWindow", sh::window),
    op("HammingWindow", sh::window),
    op("MelWeightMatrix", sh::mel_weight_matrix),
    // Linear algebra.
    op("MatMul", linalg::matmul),
    op("Gemm", linalg::gemm),
    op("QLinearMatMul", linalg::qlinear_matmul),
    op("Attention", linalg::attention),
    op("RotaryEmbedding", sh::like_input0),
    op("DFT", linalg::dft),
    op("STFT", linalg::stft),
    // Convolution and pooling.
    op("Conv", nn::conv),
    op("DeformConv", nn::conv),
    op("ConvTranspose", nn::conv_transpose),
    op("MaxPool", nn::pool),
    op("AveragePool", nn::pool),
    op("LpPool", nn::pool),
    op("GlobalAveragePool", nn::global_pool),
    op("GlobalMaxPool", nn::global_pool),
    op("GlobalLpPool", nn::global_pool),
    op("MaxUnpool", nn::max_unpool),
    op("Col2Im", nn::col2im),
    op("RoiAlign", nn::roi_align),
    op("GridSample", nn::grid_sample),
    op("AffineGrid", nn::affine_grid),
    op("Resize", nn::resize),
    // Recurrent layers.
    op("RNN", nn::recurrent),
    op("GRU", nn::recurrent),
    op("LSTM", nn::recurrent),
    // Reductions and normalizations.
    op("ReduceMean", reduce::reduce),
    op("ReduceSum", reduce::reduce),
    op("ReduceMax", reduce::reduce),
    op("ReduceMin", reduce::reduce),
    op("ReduceProd", reduce::reduce),
    op("ReduceL1", reduce::reduce),
    op("ReduceL2", reduce::reduce),
    op("ReduceLogSum", reduce::reduce),
    op("ReduceLogSumExp", reduce::reduce),
    op("ReduceSumSquare", reduce::reduce),
    op("ArgMax", reduce::arg_reduce),
    op("ArgMin", reduce::arg_reduce),
    op("TopK", reduce::topk),
    op("NegativeLogLikelihoodLoss", reduce::loss),
    op("SoftmaxCrossEntropyLoss", reduce::loss),
    op("LayerNormalization", reduce::layer_norm),
    op("RMSNormalization", reduce::rms_norm),
    op("BatchNormalization", reduce::batch_norm),
    op("InstanceNormalization", reduce::same_as_input),
    op("GroupNormalization", reduce::same_as_input),
    op("LRN", reduce::same_as_input),
    op("LpNormalization", reduce::same_as_input),
    op("MeanVarianceNormalization", reduce::same_as_input),
];

/// The registry row for a standard-domain op.
pub fn lookup(op_type: &str) -> Option<&'static OpDef> {
    static INDEX: std::sync::OnceLock<std::collections::HashMap<&'static str, usize>> =
        std::sync::OnceLock::new();
    let index = INDEX.get_or_init(|| {
        REGISTRY
            .iter()
            .enumerate()
            .map(|(i, d)| (d.op_type, i))
            .collect()
    });
    index.get(op_type).map(|&i| &REGISTRY[i])
}
