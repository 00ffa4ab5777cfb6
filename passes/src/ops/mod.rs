//! The op registry: one row per ai.onnx op onnx-ac knows, holding every fact about it —
//! shape/type rule, gradient rule, differentiable inputs, memory class, randomness, cost
//! rule, index and value flow, opset range and lowering. Rows are grouped by family file
//! (`ops/<family>.rs`), which holds the op's rules. Adding an op is one row here plus its
//! rules in the family file (docs/design.md, "Adding an op").

pub mod cost;
pub mod ctx;
pub mod elementwise;
pub mod fold;
pub mod linalg;
pub mod nn;
pub mod reduce;
pub mod shape_ops;

pub use cost::{Bytes, CostRule, Flops};
pub use ctx::{OpCtx, OutInfo, RuleResult};

use crate::autodiff::GradRule;
use crate::ir::{FreshNames, Graph, Node, NodeId};
use cost::{custom, matmul_class, moves, per_in, per_out};
use elementwise as ew;
use shape_ops as sh;
use MemoryClass::*;
use Random::*;
use Slots::*;

mod grad {
    pub use crate::autodiff::rules::*;
}

pub type ShapeRule = fn(&OpCtx) -> RuleResult;

/// Rewrites a node into other ops when its pattern allows (called by shape inference when
/// it reaches the node, so its inputs are typed); returns whether it did. The replacement
/// is inferred from the node's position on.
pub type Lowering = fn(&mut Graph, NodeId, i64, &mut FreshNames) -> bool;

/// A set of input positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slots {
    All,
    Nothing,
    First,
    AfterFirst,
    AllBut(usize),
    Below(usize),
}

impl Slots {
    pub const fn contains(self, i: usize) -> bool {
        match self {
            All => true,
            Nothing => false,
            First => i == 0,
            AfterFirst => i != 0,
            AllBut(k) => i != k,
            Below(k) => i < k,
        }
    }
}

/// How ONNX Runtime's CPU kernel of an op uses memory (its `Alias` and `MayInplace`
/// declarations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryClass {
    /// Writes a new buffer.
    Compute,
    /// May write its output into input 0's buffer when that input dies here.
    InPlace,
    /// The output is input 0's buffer, unchanged (Identity).
    View,
    /// The output is input 0's buffer with new dims (Reshape, Squeeze, Unsqueeze, Flatten).
    /// ONNX Runtime also merges a Reshape into a following one of these, dropping the
    /// Reshape's shape input (`pin::Pinner::pin_for`).
    ReshapeView,
}

impl MemoryClass {
    /// The output shares input 0's buffer (a view holds no memory of its own).
    pub const fn is_view(self) -> bool {
        matches!(self, View | ReshapeView)
    }
}

/// Whether an op's result changes from run to run (such ops are never recomputed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Random {
    Never,
    Always,
    /// Random when this input is present (Dropout's `training_mode`).
    WhenInput(usize),
}

/// What bound an index input of an op puts on its values (the profiler draws integer inputs
/// below it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexBound {
    /// Input 0's dim at the `axis` attribute (Gather, GatherElements, ScatterElements).
    AxisDim,
    /// The smallest of input 0's dims that an index tuple addresses (GatherND, ScatterND).
    TupleDims,
    /// The constant depth input 1 (OneHot).
    Depth,
}

/// The ai.onnx opsets an op exists in: `since` its first version, `until` the version that
/// removed it. Documentation: the loader accepts opsets 13–24 as a whole and the rules
/// handle the versions in between (e.g. ReduceSum's axes input from 13, the other
/// reductions' from 18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opsets {
    pub since: u16,
    pub until: Option<u16>,
}

/// Everything onnx-ac knows about one op.
#[derive(Clone, Copy)]
pub struct OpDef {
    pub op_type: &'static str,
    /// Shape and type rule. None: onnx-ac knows other facts of the op only, and accepts a
    /// node of it when the file types all its outputs.
    pub infer: Option<ShapeRule>,
    /// Gradient rule.
    pub grad: Option<GradRule>,
    /// Inputs that carry a gradient (shapes, indices, masks, axes and running statistics
    /// do not). Read by op type whatever the node's domain, as before the registry.
    pub differentiable: Slots,
    pub memory: MemoryClass,
    pub random: Random,
    /// The output's size depends on the input values, not only on shapes.
    pub data_dependent: bool,
    pub cost: CostRule,
    /// Inputs whose values (some of them) reach the output unchanged, so an index bound
    /// found past the op applies to them too (for integer outputs).
    pub values: Slots,
    /// An input holding indices, and the bound it gets.
    pub index_input: Option<(usize, IndexBound)>,
    pub opsets: Opsets,
    pub lowering: Option<Lowering>,
}

/// A row with no shape rule, for an op in ai.onnx since opset `since`.
const fn known(op_type: &'static str, since: u16) -> OpDef {
    OpDef {
        op_type,
        infer: None,
        grad: None,
        differentiable: All,
        memory: Compute,
        random: Never,
        data_dependent: false,
        cost: CostRule::DEFAULT,
        values: Nothing,
        index_input: None,
        opsets: Opsets { since, until: None },
        lowering: None,
    }
}

/// A row with a shape rule.
const fn op(op_type: &'static str, since: u16, infer: ShapeRule) -> OpDef {
    OpDef {
        infer: Some(infer),
        ..known(op_type, since)
    }
}

impl OpDef {
    const fn grad(self, r: GradRule) -> OpDef {
        OpDef {
            grad: Some(r),
            ..self
        }
    }
    const fn diff(self, s: Slots) -> OpDef {
        OpDef {
            differentiable: s,
            ..self
        }
    }
    const fn memory(self, m: MemoryClass) -> OpDef {
        OpDef { memory: m, ..self }
    }
    const fn random(self, r: Random) -> OpDef {
        OpDef { random: r, ..self }
    }
    const fn data_dependent(self) -> OpDef {
        OpDef {
            data_dependent: true,
            ..self
        }
    }
    const fn cost(self, c: CostRule) -> OpDef {
        OpDef { cost: c, ..self }
    }
    const fn values(self, s: Slots) -> OpDef {
        OpDef { values: s, ..self }
    }
    const fn index_input(self, slot: usize, b: IndexBound) -> OpDef {
        OpDef {
            index_input: Some((slot, b)),
            ..self
        }
    }
    const fn lower(self, l: Lowering) -> OpDef {
        OpDef {
            lowering: Some(l),
            ..self
        }
    }
    const fn until(self, v: u16) -> OpDef {
        OpDef {
            opsets: Opsets {
                since: self.opsets.since,
                until: Some(v),
            },
            ..self
        }
    }

    /// Whether `node` (of this op) is random.
    pub fn is_random(&self, node: &Node) -> bool {
        match self.random {
            Never => false,
            Always => true,
            WhenInput(i) => node.input(i).is_some(),
        }
    }
}

/// The rows of one family file.
pub struct Family {
    /// `passes/src/ops/<file>.rs`.
    pub file: &'static str,
    pub ops: &'static [OpDef],
}

/// The lowering entry points, in the registry's signature.
mod lower {
    use crate::ir::{FreshNames, Graph, NodeId};
    pub fn split_to_sequence(g: &mut Graph, n: NodeId, _: i64, t: &mut FreshNames) -> bool {
        crate::lower::lower_split_to_sequence(g, n, t)
    }
    pub fn depth_space(g: &mut Graph, n: NodeId, _: i64, t: &mut FreshNames) -> bool {
        crate::lower::lower_depth_space(g, n, t)
    }
    pub fn rnn(g: &mut Graph, n: NodeId, opset: i64, t: &mut FreshNames) -> bool {
        crate::lower_rnn::lower_rnn(g, n, opset, t)
    }
}

/// The registry: one row per op (a table: one line per row, hence unformatted).
#[rustfmt::skip]
pub static FAMILIES: &[Family] = &[
    Family {
        file: "unary",
        ops: &[
            op("Abs", 1, ew::unary).grad(grad::elementwise::abs),
            op("Acos", 7, ew::unary).cost(per_out(10.0)),
            op("Acosh", 9, ew::unary).cost(per_out(20.0)),
            op("Asin", 7, ew::unary).cost(per_out(10.0)),
            op("Asinh", 9, ew::unary).cost(per_out(20.0)),
            op("Atan", 7, ew::unary).cost(per_out(10.0)),
            op("Atanh", 9, ew::unary).cost(per_out(20.0)),
            op("BitwiseNot", 18, ew::unary),
            op("Ceil", 1, ew::unary).diff(Nothing),
            op("Celu", 12, ew::unary).cost(per_out(10.0)),
            op("Cos", 7, ew::unary).grad(grad::elementwise::cos).cost(per_out(10.0)),
            op("Cosh", 9, ew::unary).cost(per_out(20.0)),
            op("Elu", 1, ew::unary).memory(InPlace).cost(per_out(10.0)),
            op("Erf", 9, ew::unary).grad(grad::elementwise::erf).cost(per_out(20.0)),
            op("Exp", 1, ew::unary).grad(grad::elementwise::exp).cost(per_out(10.0)),
            op("Floor", 1, ew::unary).diff(Nothing),
            op("Gelu", 20, ew::unary).grad(grad::elementwise::gelu).cost(per_out(20.0)),
            op("HardSigmoid", 1, ew::unary).grad(grad::elementwise::hard_sigmoid).memory(InPlace).cost(per_out(10.0)),
            op("HardSwish", 14, ew::unary).grad(grad::elementwise::hard_swish).cost(per_out(10.0)),
            op("Identity", 1, ew::unary).grad(grad::elementwise::identity).memory(View).cost(moves(Bytes::None)).values(First),
            op("LeakyRelu", 1, ew::unary).grad(grad::elementwise::leaky_relu).memory(InPlace),
            op("Log", 1, ew::unary).grad(grad::elementwise::log).cost(per_out(10.0)),
            op("Mish", 18, ew::unary).cost(per_out(20.0)),
            op("Neg", 1, ew::unary).grad(grad::elementwise::neg),
            op("Reciprocal", 1, ew::unary).grad(grad::elementwise::reciprocal).cost(per_out(4.0)),
            op("Relu", 1, ew::unary).grad(grad::elementwise::relu).memory(InPlace),
            op("Round", 11, ew::unary).diff(Nothing),
            op("Selu", 1, ew::unary).memory(InPlace).cost(per_out(10.0)),
            op("Sigmoid", 1, ew::unary).grad(grad::elementwise::sigmoid).memory(InPlace).cost(per_out(10.0)),
            op("Sign", 9, ew::unary).diff(Nothing),
            op("Sin", 7, ew::unary).grad(grad::elementwise::sin).cost(per_out(10.0)),
            op("Sinh", 9, ew::unary).cost(per_out(20.0)),
            op("Softplus", 1, ew::unary).grad(grad::elementwise::softplus).memory(InPlace).cost(per_out(20.0)),
            op("Softsign", 1, ew::unary).memory(InPlace).cost(per_out(20.0)),
            op("Swish", 24, ew::unary),
            op("Sqrt", 1, ew::unary).grad(grad::elementwise::sqrt).cost(per_out(4.0)),
            op("Tan", 7, ew::unary).cost(per_out(10.0)),
            op("Tanh", 1, ew::unary).grad(grad::elementwise::tanh).memory(InPlace).cost(per_out(20.0)),
            op("ThresholdedRelu", 10, ew::unary).memory(InPlace),
            op("Clip", 1, ew::unary).grad(grad::elementwise::clip).diff(First),
            op("Not", 1, ew::unary_bool).diff(Nothing),
            op("IsNaN", 9, ew::unary_bool).diff(Nothing),
            op("IsInf", 10, ew::unary_bool).diff(Nothing),
        ],
    },
    Family {
        file: "binary",
        ops: &[
            op("Add", 1, ew::binary).grad(grad::elementwise::add),
            op("Sub", 1, ew::binary).grad(grad::elementwise::sub),
            op("Mul", 1, ew::binary).grad(grad::elementwise::mul),
            op("Div", 1, ew::binary).grad(grad::elementwise::div).cost(per_out(4.0)),
            op("Pow", 1, ew::binary).grad(grad::elementwise::pow).cost(per_out(20.0)),
            op("Mod", 10, ew::binary).cost(per_out(4.0)),
            op("Max", 1, ew::binary).grad(grad::elementwise::max_min).cost(custom(cost::variadic)).values(All),
            op("Min", 1, ew::binary).grad(grad::elementwise::max_min).cost(custom(cost::variadic)).values(All),
            op("Sum", 1, ew::binary).grad(grad::elementwise::sum).cost(custom(cost::variadic)),
            op("Mean", 1, ew::binary).grad(grad::elementwise::mean).cost(custom(cost::variadic)),
            op("PRelu", 1, ew::binary),
            op("BitShift", 11, ew::binary),
            op("BitwiseAnd", 18, ew::binary),
            op("BitwiseOr", 18, ew::binary),
            op("BitwiseXor", 18, ew::binary),
            op("Equal", 1, ew::compare).diff(Nothing),
            op("Less", 1, ew::compare).diff(Nothing),
            op("Greater", 1, ew::compare).diff(Nothing),
            op("LessOrEqual", 12, ew::compare).diff(Nothing),
            op("GreaterOrEqual", 12, ew::compare).diff(Nothing),
            op("And", 1, ew::compare).diff(Nothing),
            op("Or", 1, ew::compare).diff(Nothing),
            op("Xor", 1, ew::compare).diff(Nothing),
            op("Where", 9, ew::where_).grad(grad::elementwise::where_).diff(AfterFirst).values(AfterFirst),
        ],
    },
    Family {
        file: "cast",
        ops: &[
            op("Cast", 1, ew::cast).grad(grad::elementwise::cast).memory(InPlace).values(First),
            op("CastLike", 15, ew::cast_like).grad(grad::elementwise::cast).diff(First),
        ],
    },
    Family {
        file: "random",
        ops: &[
            op("Dropout", 1, ew::dropout).grad(grad::elementwise::dropout).diff(First).random(WhenInput(2)).cost(per_out(10.0)),
            op("Bernoulli", 15, ew::like_with_dtype).random(Always),
            op("RandomUniformLike", 1, ew::like_with_dtype).random(Always),
            known("RandomNormalLike", 1).random(Always),
            known("RandomUniform", 1).random(Always).cost(CostRule { bytes: Bytes::Written, ..CostRule::DEFAULT }),
            known("RandomNormal", 1).random(Always).cost(CostRule { bytes: Bytes::Written, ..CostRule::DEFAULT }),
            known("Multinomial", 7).random(Always),
        ],
    },
    Family {
        file: "softmax",
        ops: &[
            op("Softmax", 1, ew::softmax).grad(grad::norm::softmax).memory(InPlace).cost(per_out(14.0)),
            op("LogSoftmax", 1, ew::softmax).grad(grad::norm::log_softmax).memory(InPlace).cost(per_out(14.0)),
            op("Hardmax", 1, ew::softmax),
        ],
    },
    Family {
        file: "reshape",
        ops: &[
            op("Shape", 1, sh::shape).diff(Nothing).cost(moves(Bytes::None)),
            op("Size", 1, sh::size).diff(Nothing).cost(moves(Bytes::None)),
            op("Reshape", 1, sh::reshape).grad(grad::shape::reshape_like).diff(First).memory(ReshapeView).cost(moves(Bytes::None)).values(First),
            op("Flatten", 1, sh::flatten).grad(grad::shape::reshape_like).memory(ReshapeView).cost(moves(Bytes::None)).values(First),
            op("Transpose", 1, sh::transpose).grad(grad::shape::transpose).cost(moves(Bytes::All)).values(First),
            op("Squeeze", 1, sh::squeeze).grad(grad::shape::reshape_like).diff(First).memory(ReshapeView).cost(moves(Bytes::None)).values(First),
            op("Unsqueeze", 1, sh::unsqueeze).grad(grad::shape::reshape_like).diff(First).memory(ReshapeView).cost(moves(Bytes::None)).values(First),
        ],
    },
    Family {
        file: "constants",
        ops: &[
            op("Constant", 1, sh::constant).cost(moves(Bytes::None)),
            op("ConstantOfShape", 9, sh::constant_of_shape).diff(Nothing).cost(moves(Bytes::Written)),
            op("Range", 11, sh::range).diff(Nothing).cost(moves(Bytes::Written)),
            op("EyeLike", 9, ew::like_with_dtype).cost(moves(Bytes::Written)),
            op("Trilu", 14, sh::like_input0).cost(moves(Bytes::All)),
        ],
    },
    Family {
        file: "concat_split",
        ops: &[
            op("Concat", 1, sh::concat).grad(grad::shape::concat).cost(moves(Bytes::All)).values(All),
            op("Split", 1, sh::split).grad(grad::shape::split).diff(First).cost(moves(Bytes::All)).values(First),
            op("Slice", 1, sh::slice).grad(grad::shape::slice).diff(First).cost(moves(Bytes::Sliced)).values(First),
            known("SplitToSequence", 11).lower(lower::split_to_sequence),
        ],
    },
    Family {
        file: "gather_scatter",
        ops: &[
            op("Gather", 1, sh::gather).grad(grad::shape::gather).diff(First).cost(moves(Bytes::Gathered)).values(First).index_input(1, IndexBound::AxisDim),
            op("GatherElements", 11, sh::like_input1).grad(grad::shape::gather_elements).diff(First).cost(moves(Bytes::Gathered)).values(First).index_input(1, IndexBound::AxisDim),
            op("GatherND", 11, sh::gather_nd).grad(grad::shape::gather_nd).diff(First).cost(moves(Bytes::Gathered)).values(First).index_input(1, IndexBound::TupleDims),
            op("ScatterElements", 11, sh::like_input0).grad(grad::shape::scatter_elements).diff(AllBut(1)).memory(InPlace).cost(moves(Bytes::All)).index_input(1, IndexBound::AxisDim),
            op("ScatterND", 11, sh::like_input0).diff(AllBut(1)).cost(moves(Bytes::All)).index_input(1, IndexBound::TupleDims),
            known("Scatter", 9).cost(moves(Bytes::All)).until(11),
            op("TensorScatter", 24, sh::like_input0),
            op("OneHot", 9, sh::one_hot).diff(Nothing).cost(moves(Bytes::All)).index_input(0, IndexBound::Depth),
            op("NonZero", 9, sh::non_zero).diff(Nothing).data_dependent().cost(moves(Bytes::All)),
            known("Compress", 9).data_dependent().cost(moves(Bytes::All)),
            known("Unique", 11).data_dependent(),
        ],
    },
    Family {
        file: "pad_tile_expand",
        ops: &[
            op("Pad", 1, sh::pad).grad(grad::shape::pad).diff(First).cost(moves(Bytes::All)).values(First),
            op("CenterCropPad", 18, sh::center_crop_pad),
            op("Tile", 1, sh::tile).grad(grad::shape::tile).diff(First).cost(moves(Bytes::Expanded)).values(First),
            op("Expand", 8, sh::expand).grad(grad::shape::expand).diff(First).cost(moves(Bytes::Expanded)).values(First),
            known("DepthToSpace", 1).cost(moves(Bytes::All)).lower(lower::depth_space),
            known("SpaceToDepth", 1).cost(moves(Bytes::All)).lower(lower::depth_space),
        ],
    },
    Family {
        file: "linalg",
        ops: &[
            op("MatMul", 1, linalg::matmul).grad(grad::linalg::matmul).cost(matmul_class(cost::matmul)),
            op("Gemm", 1, linalg::gemm).grad(grad::linalg::gemm).cost(matmul_class(cost::gemm)),
            op("QLinearMatMul", 10, linalg::qlinear_matmul),
            known("MatMulInteger", 10).cost(matmul_class(cost::matmul)),
            known("Einsum", 12).cost(matmul_class(cost::einsum)),
            op("Attention", 23, linalg::attention),
            op("RotaryEmbedding", 23, sh::like_input0),
        ],
    },
    Family {
        file: "signal",
        ops: &[
            op("DFT", 17, linalg::dft),
            op("STFT", 17, linalg::stft),
            op("BlackmanWindow", 17, sh::window),
            op("HannWindow", 17, sh::window),
            op("HammingWindow", 17, sh::window),
            op("MelWeightMatrix", 17, sh::mel_weight_matrix),
        ],
    },
    Family {
        file: "conv",
        ops: &[
            op("Conv", 1, nn::conv).grad(grad::conv::conv).cost(matmul_class(cost::conv)),
            op("DeformConv", 19, nn::conv),
            op("ConvTranspose", 1, nn::conv_transpose).grad(grad::conv::conv_transpose).cost(matmul_class(cost::conv_transpose)),
            known("ConvInteger", 10).cost(CostRule { matmul_class: true, ..CostRule::DEFAULT }),
            op("Col2Im", 18, nn::col2im),
        ],
    },
    Family {
        file: "pool",
        ops: &[
            op("MaxPool", 1, nn::pool).grad(grad::conv::max_pool).cost(custom(cost::pool)),
            op("AveragePool", 1, nn::pool).grad(grad::conv::average_pool).cost(custom(cost::pool)),
            op("LpPool", 1, nn::pool).cost(custom(cost::pool)),
            op("GlobalAveragePool", 1, nn::global_pool).grad(grad::conv::global_average_pool).cost(per_in(1.0)),
            op("GlobalMaxPool", 1, nn::global_pool).cost(per_in(1.0)),
            op("GlobalLpPool", 1, nn::global_pool).cost(per_in(1.0)),
            op("MaxUnpool", 9, nn::max_unpool),
        ],
    },
    Family {
        file: "resize",
        ops: &[
            op("Resize", 10, nn::resize).grad(grad::resize::resize).diff(First).cost(per_out(4.0)),
            known("Upsample", 1).diff(First).cost(per_out(4.0)).until(10),
            op("GridSample", 16, nn::grid_sample),
            op("AffineGrid", 20, nn::affine_grid),
            op("RoiAlign", 10, nn::roi_align),
        ],
    },
    Family {
        file: "recurrent",
        ops: &[
            op("RNN", 1, nn::recurrent),
            op("GRU", 1, nn::recurrent).lower(lower::rnn),
            op("LSTM", 1, nn::recurrent).lower(lower::rnn),
        ],
    },
    Family {
        file: "reduce",
        ops: &[
            op("ReduceMean", 1, reduce::reduce).grad(grad::norm::reduce_sum_mean).diff(First).cost(per_in(1.0)),
            op("ReduceSum", 1, reduce::reduce).grad(grad::norm::reduce_sum_mean).diff(First).cost(per_in(1.0)),
            op("ReduceMax", 1, reduce::reduce).grad(grad::reduce::reduce_max_min).diff(First).cost(per_in(1.0)),
            op("ReduceMin", 1, reduce::reduce).grad(grad::reduce::reduce_max_min).diff(First).cost(per_in(1.0)),
            op("ReduceProd", 1, reduce::reduce).diff(First).cost(per_in(1.0)),
            op("ReduceL1", 1, reduce::reduce).grad(grad::reduce::reduce_l1).diff(First).cost(per_in(1.0)),
            op("ReduceL2", 1, reduce::reduce).grad(grad::reduce::reduce_l2).diff(First).cost(per_in(2.0)),
            op("ReduceLogSum", 1, reduce::reduce).grad(grad::reduce::reduce_log_sum).diff(First).cost(per_in(12.0)),
            op("ReduceLogSumExp", 1, reduce::reduce).grad(grad::reduce::reduce_log_sum_exp).diff(First).cost(per_in(12.0)),
            op("ReduceSumSquare", 1, reduce::reduce).grad(grad::reduce::reduce_sum_square).diff(First).cost(per_in(2.0)),
            op("ArgMax", 1, reduce::arg_reduce).diff(Nothing).cost(per_in(1.0)),
            op("ArgMin", 1, reduce::arg_reduce).diff(Nothing).cost(per_in(1.0)),
            op("TopK", 1, reduce::topk).diff(First),
            op("CumSum", 11, sh::cum_sum).grad(grad::reduce::cum_sum).diff(First).cost(per_in(1.0)),
        ],
    },
    Family {
        file: "norm",
        ops: &[
            op("LayerNormalization", 17, reduce::layer_norm).grad(grad::norm::layer_norm).cost(per_out(8.0)),
            op("RMSNormalization", 23, reduce::rms_norm),
            op("BatchNormalization", 1, reduce::batch_norm).grad(grad::norm::batch_norm).diff(Below(3)).cost(custom(cost::batch_norm)),
            op("InstanceNormalization", 1, reduce::same_as_input).grad(grad::norm::instance_norm).cost(per_out(8.0)),
            op("GroupNormalization", 18, reduce::same_as_input).cost(per_out(8.0)),
            op("LRN", 1, reduce::same_as_input),
            op("LpNormalization", 1, reduce::same_as_input).cost(per_out(4.0)),
            op("MeanVarianceNormalization", 9, reduce::same_as_input).cost(per_out(8.0)),
        ],
    },
    Family {
        file: "loss",
        ops: &[
            op("NegativeLogLikelihoodLoss", 12, reduce::loss),
            op("SoftmaxCrossEntropyLoss", 12, reduce::loss),
        ],
    },
    Family {
        file: "control",
        ops: &[
            known("If", 1).data_dependent(),
            known("Loop", 1).data_dependent(),
        ],
    },
];

/// Every row.
pub fn all() -> impl Iterator<Item = &'static OpDef> {
    FAMILIES.iter().flat_map(|f| f.ops)
}

/// The registry row of an op type (any domain: callers that care check the node's domain).
/// O(1): hashed once.
pub fn lookup(op_type: &str) -> Option<&'static OpDef> {
    type Index = std::collections::HashMap<&'static str, &'static OpDef, crate::fxhash::FastHash>;
    static INDEX: std::sync::OnceLock<Index> = std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| all().map(|d| (d.op_type, d)).collect())
        .get(op_type)
        .copied()
}

/// The shape rule of an op type, if onnx-ac has one.
pub fn shape_rule(op_type: &str) -> Option<ShapeRule> {
    lookup(op_type)?.infer
}

/// Whether the op's output is a view of input 0 (`MemoryClass::is_view`).
pub fn is_view_op(op_type: &str) -> bool {
    lookup(op_type).is_some_and(|d| d.memory.is_view())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_op() {
        let mut seen = std::collections::HashSet::new();
        for d in all() {
            assert!(seen.insert(d.op_type), "{} has two rows", d.op_type);
            assert!(std::ptr::eq(lookup(d.op_type).unwrap(), d));
        }
    }

    /// A view moves no bytes; a lowering exists only where a gradient or shape rule of the
    /// replacement is meant to apply (the node itself has no gradient rule).
    #[test]
    fn facts_agree() {
        for d in all() {
            if d.memory.is_view() {
                assert_eq!(d.cost.bytes, Bytes::None, "{}", d.op_type);
                assert!(d.values.contains(0), "{}", d.op_type);
            }
            if d.lowering.is_some() {
                assert!(d.grad.is_none(), "{}", d.op_type);
            }
            if let Some(u) = d.opsets.until {
                assert!(u > d.opsets.since, "{}", d.op_type);
            }
        }
    }
}
