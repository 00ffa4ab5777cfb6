//! The op registry: one row per ai.onnx op onnx-ac knows, holding every fact about it —
//! shape/type rule, gradient rule, differentiable inputs, memory class, randomness, cost
//! rule, index and value flow, opset range and lowering. Rows are grouped by family file
//! (`ops/<family>.rs`), which holds the op's rules. Adding an op is one row here plus its
//! rules in the family file (docs/design.md, "Adding an op").

pub mod binary;
pub mod cast;
pub mod concat_split;
pub mod constants;
pub mod control;
pub mod conv;
pub mod cost;
pub mod ctx;
pub mod fold;
pub mod gather_scatter;
pub mod linalg;
pub mod loss;
pub mod norm;
pub mod pad_tile_expand;
pub mod pool;
pub mod random;
pub mod recurrent;
pub mod reduce;
pub mod reshape;
pub mod resize;
pub mod signal;
pub mod softmax;
pub mod unary;

pub use cost::{Bytes, CostRule, Flops};
pub use ctx::{OpCtx, OutInfo, RuleResult};

use crate::autodiff::GradRule;
use crate::ir::{Graph, Names, Node, NodeId};
use cost::{custom, matmul_class, moves, per_in, per_out};
use MemoryClass::*;
use Random::*;
use Slots::*;

pub type ShapeRule = fn(&OpCtx) -> RuleResult;

/// Rewrites a node into other ops when its pattern allows (called by shape inference when
/// it reaches the node, so its inputs are typed); returns whether it did. The replacement
/// is inferred from the node's position on. The names come from the service in the
/// `Option`, made from the graph by the first lowering that rewrites (most graphs have
/// none, and reading every name of a large graph for nothing is not free).
pub type Lowering = fn(&mut Graph, NodeId, i64, &mut Option<Names<'static>>) -> bool;

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
    use crate::ir::{Graph, Names, NodeId};
    type LazyNames = Option<Names<'static>>;
    pub fn split_to_sequence(g: &mut Graph, n: NodeId, _: i64, t: &mut LazyNames) -> bool {
        crate::lower::lower_split_to_sequence(g, n, t)
    }
    pub fn depth_space(g: &mut Graph, n: NodeId, _: i64, t: &mut LazyNames) -> bool {
        crate::lower::lower_depth_space(g, n, t)
    }
    pub fn rnn(g: &mut Graph, n: NodeId, opset: i64, t: &mut LazyNames) -> bool {
        crate::lower_rnn::lower_rnn(g, n, opset, t)
    }
}

/// The registry: one row per op (a table: one line per row, hence unformatted).
#[rustfmt::skip]
pub static FAMILIES: &[Family] = &[
    Family {
        file: "unary",
        ops: &[
            op("Abs", 1, unary::unary).grad(unary::abs_grad),
            op("Acos", 7, unary::unary).cost(per_out(10.0)),
            op("Acosh", 9, unary::unary).cost(per_out(20.0)),
            op("Asin", 7, unary::unary).cost(per_out(10.0)),
            op("Asinh", 9, unary::unary).cost(per_out(20.0)),
            op("Atan", 7, unary::unary).cost(per_out(10.0)),
            op("Atanh", 9, unary::unary).cost(per_out(20.0)),
            op("BitwiseNot", 18, unary::unary),
            op("Ceil", 1, unary::unary).diff(Nothing),
            op("Celu", 12, unary::unary).cost(per_out(10.0)),
            op("Cos", 7, unary::unary).grad(unary::cos_grad).cost(per_out(10.0)),
            op("Cosh", 9, unary::unary).cost(per_out(20.0)),
            op("Elu", 1, unary::unary).memory(InPlace).cost(per_out(10.0)),
            op("Erf", 9, unary::unary).grad(unary::erf_grad).cost(per_out(20.0)),
            op("Exp", 1, unary::unary).grad(unary::exp_grad).cost(per_out(10.0)),
            op("Floor", 1, unary::unary).diff(Nothing),
            op("Gelu", 20, unary::unary).grad(unary::gelu_grad).cost(per_out(20.0)),
            op("HardSigmoid", 1, unary::unary).grad(unary::hard_sigmoid_grad).memory(InPlace).cost(per_out(10.0)),
            op("HardSwish", 14, unary::unary).grad(unary::hard_swish_grad).cost(per_out(10.0)),
            op("Identity", 1, unary::unary).grad(unary::identity_grad).memory(View).cost(moves(Bytes::None)).values(First),
            op("LeakyRelu", 1, unary::unary).grad(unary::leaky_relu_grad).memory(InPlace),
            op("Log", 1, unary::unary).grad(unary::log_grad).cost(per_out(10.0)),
            op("Mish", 18, unary::unary).cost(per_out(20.0)),
            op("Neg", 1, unary::unary).grad(unary::neg_grad),
            op("Reciprocal", 1, unary::unary).grad(unary::reciprocal_grad).cost(per_out(4.0)),
            op("Relu", 1, unary::unary).grad(unary::relu_grad).memory(InPlace),
            op("Round", 11, unary::unary).diff(Nothing),
            op("Selu", 1, unary::unary).memory(InPlace).cost(per_out(10.0)),
            op("Sigmoid", 1, unary::unary).grad(unary::sigmoid_grad).memory(InPlace).cost(per_out(10.0)),
            op("Sign", 9, unary::unary).diff(Nothing),
            op("Sin", 7, unary::unary).grad(unary::sin_grad).cost(per_out(10.0)),
            op("Sinh", 9, unary::unary).cost(per_out(20.0)),
            op("Softplus", 1, unary::unary).grad(unary::softplus_grad).memory(InPlace).cost(per_out(20.0)),
            op("Softsign", 1, unary::unary).memory(InPlace).cost(per_out(20.0)),
            op("Swish", 24, unary::unary),
            op("Sqrt", 1, unary::unary).grad(unary::sqrt_grad).cost(per_out(4.0)),
            op("Tan", 7, unary::unary).grad(unary::tan_grad).cost(per_out(10.0)),
            op("Tanh", 1, unary::unary).grad(unary::tanh_grad).memory(InPlace).cost(per_out(20.0)),
            op("ThresholdedRelu", 10, unary::unary).memory(InPlace),
            op("Clip", 1, unary::unary).grad(unary::clip_grad).diff(First),
            op("Not", 1, unary::unary_bool).diff(Nothing),
            op("IsNaN", 9, unary::unary_bool).diff(Nothing),
            op("IsInf", 10, unary::unary_bool).diff(Nothing),
        ],
    },
    Family {
        file: "binary",
        ops: &[
            op("Add", 1, binary::binary).grad(binary::add_grad),
            op("Sub", 1, binary::binary).grad(binary::sub_grad),
            op("Mul", 1, binary::binary).grad(binary::mul_grad),
            op("Div", 1, binary::binary).grad(binary::div_grad).cost(per_out(4.0)),
            op("Pow", 1, binary::binary).grad(binary::pow_grad).cost(per_out(20.0)),
            op("Mod", 10, binary::binary).cost(per_out(4.0)),
            op("Max", 1, binary::binary).grad(binary::max_min_grad).cost(custom(binary::variadic_flops)).values(All),
            op("Min", 1, binary::binary).grad(binary::max_min_grad).cost(custom(binary::variadic_flops)).values(All),
            op("Sum", 1, binary::binary).grad(binary::sum_grad).cost(custom(binary::variadic_flops)),
            op("Mean", 1, binary::binary).grad(binary::mean_grad).cost(custom(binary::variadic_flops)),
            op("PRelu", 1, binary::binary),
            op("BitShift", 11, binary::binary),
            op("BitwiseAnd", 18, binary::binary),
            op("BitwiseOr", 18, binary::binary),
            op("BitwiseXor", 18, binary::binary),
            op("Equal", 1, binary::compare).diff(Nothing),
            op("Less", 1, binary::compare).diff(Nothing),
            op("Greater", 1, binary::compare).diff(Nothing),
            op("LessOrEqual", 12, binary::compare).diff(Nothing),
            op("GreaterOrEqual", 12, binary::compare).diff(Nothing),
            op("And", 1, binary::compare).diff(Nothing),
            op("Or", 1, binary::compare).diff(Nothing),
            op("Xor", 1, binary::compare).diff(Nothing),
            op("Where", 9, binary::where_).grad(binary::where_grad).diff(AfterFirst).values(AfterFirst),
        ],
    },
    Family {
        file: "cast",
        ops: &[
            op("Cast", 1, cast::cast).grad(cast::cast_grad).memory(InPlace).values(First),
            op("CastLike", 15, cast::cast_like).grad(cast::cast_grad).diff(First),
        ],
    },
    Family {
        file: "random",
        ops: &[
            op("Dropout", 1, random::dropout).grad(random::dropout_grad).diff(First).random(WhenInput(2)).cost(per_out(10.0)),
            op("Bernoulli", 15, random::like_with_dtype).random(Always),
            op("RandomUniformLike", 1, random::like_with_dtype).random(Always),
            known("RandomNormalLike", 1).random(Always),
            known("RandomUniform", 1).random(Always).cost(CostRule { bytes: Bytes::Written, ..CostRule::DEFAULT }),
            known("RandomNormal", 1).random(Always).cost(CostRule { bytes: Bytes::Written, ..CostRule::DEFAULT }),
            known("Multinomial", 7).random(Always),
        ],
    },
    Family {
        file: "softmax",
        ops: &[
            op("Softmax", 1, softmax::softmax).grad(softmax::softmax_grad).memory(InPlace).cost(per_out(14.0)),
            op("LogSoftmax", 1, softmax::softmax).grad(softmax::log_softmax_grad).memory(InPlace).cost(per_out(14.0)),
            op("Hardmax", 1, softmax::softmax),
        ],
    },
    Family {
        file: "reshape",
        ops: &[
            op("Shape", 1, reshape::shape).diff(Nothing).cost(moves(Bytes::None)),
            op("Size", 1, reshape::size).diff(Nothing).cost(moves(Bytes::None)),
            op("Reshape", 1, reshape::reshape).grad(reshape::reshape_like_grad).diff(First).memory(ReshapeView).cost(moves(Bytes::None)).values(First),
            op("Flatten", 1, reshape::flatten).grad(reshape::reshape_like_grad).memory(ReshapeView).cost(moves(Bytes::None)).values(First),
            op("Transpose", 1, reshape::transpose).grad(reshape::transpose_grad).cost(moves(Bytes::All)).values(First),
            op("Squeeze", 1, reshape::squeeze).grad(reshape::reshape_like_grad).diff(First).memory(ReshapeView).cost(moves(Bytes::None)).values(First),
            op("Unsqueeze", 1, reshape::unsqueeze).grad(reshape::reshape_like_grad).diff(First).memory(ReshapeView).cost(moves(Bytes::None)).values(First),
        ],
    },
    Family {
        file: "constants",
        ops: &[
            op("Constant", 1, constants::constant).cost(moves(Bytes::None)),
            op("ConstantOfShape", 9, constants::constant_of_shape).diff(Nothing).cost(moves(Bytes::Written)),
            op("Range", 11, constants::range).diff(Nothing).cost(moves(Bytes::Written)),
            op("EyeLike", 9, random::like_with_dtype).cost(moves(Bytes::Written)),
            op("Trilu", 14, ctx::like_input0).cost(moves(Bytes::All)),
        ],
    },
    Family {
        file: "concat_split",
        ops: &[
            op("Concat", 1, concat_split::concat).grad(concat_split::concat_grad).cost(moves(Bytes::All)).values(All),
            op("Split", 1, concat_split::split).grad(concat_split::split_grad).diff(First).cost(moves(Bytes::All)).values(First),
            op("Slice", 1, concat_split::slice).grad(concat_split::slice_grad).diff(First).cost(moves(Bytes::Sliced)).values(First),
            known("SplitToSequence", 11).lower(lower::split_to_sequence),
        ],
    },
    Family {
        file: "gather_scatter",
        ops: &[
            op("Gather", 1, gather_scatter::gather).grad(gather_scatter::gather_grad).diff(First).cost(moves(Bytes::Gathered)).values(First).index_input(1, IndexBound::AxisDim),
            op("GatherElements", 11, ctx::like_input1).grad(gather_scatter::gather_elements_grad).diff(First).cost(moves(Bytes::Gathered)).values(First).index_input(1, IndexBound::AxisDim),
            op("GatherND", 11, gather_scatter::gather_nd).grad(gather_scatter::gather_nd_grad).diff(First).cost(moves(Bytes::Gathered)).values(First).index_input(1, IndexBound::TupleDims),
            op("ScatterElements", 11, ctx::like_input0).grad(gather_scatter::scatter_elements_grad).diff(AllBut(1)).memory(InPlace).cost(moves(Bytes::All)).index_input(1, IndexBound::AxisDim),
            op("ScatterND", 11, ctx::like_input0).diff(AllBut(1)).cost(moves(Bytes::All)).index_input(1, IndexBound::TupleDims),
            known("Scatter", 9).cost(moves(Bytes::All)).until(11),
            op("TensorScatter", 24, ctx::like_input0),
            op("OneHot", 9, gather_scatter::one_hot).diff(Nothing).cost(moves(Bytes::All)).index_input(0, IndexBound::Depth),
            op("NonZero", 9, gather_scatter::non_zero).diff(Nothing).data_dependent().cost(moves(Bytes::All)),
            known("Compress", 9).data_dependent().cost(moves(Bytes::All)),
            known("Unique", 11).data_dependent(),
        ],
    },
    Family {
        file: "pad_tile_expand",
        ops: &[
            op("Pad", 1, pad_tile_expand::pad).grad(pad_tile_expand::pad_grad).diff(First).cost(moves(Bytes::All)).values(First),
            op("CenterCropPad", 18, pad_tile_expand::center_crop_pad),
            op("Tile", 1, pad_tile_expand::tile).grad(pad_tile_expand::tile_grad).diff(First).cost(moves(Bytes::Expanded)).values(First),
            op("Expand", 8, pad_tile_expand::expand).grad(pad_tile_expand::expand_grad).diff(First).cost(moves(Bytes::Expanded)).values(First),
            known("DepthToSpace", 1).cost(moves(Bytes::All)).lower(lower::depth_space),
            known("SpaceToDepth", 1).cost(moves(Bytes::All)).lower(lower::depth_space),
        ],
    },
    Family {
        file: "linalg",
        ops: &[
            op("MatMul", 1, linalg::matmul).grad(linalg::matmul_grad).cost(matmul_class(linalg::matmul_flops)),
            op("Gemm", 1, linalg::gemm).grad(linalg::gemm_grad).cost(matmul_class(linalg::gemm_flops)),
            op("QLinearMatMul", 10, linalg::qlinear_matmul),
            known("MatMulInteger", 10).cost(matmul_class(linalg::matmul_flops)),
            known("Einsum", 12).cost(matmul_class(linalg::einsum_flops)),
            op("Attention", 23, linalg::attention),
            op("RotaryEmbedding", 23, ctx::like_input0),
        ],
    },
    Family {
        file: "signal",
        ops: &[
            op("DFT", 17, signal::dft),
            op("STFT", 17, signal::stft),
            op("BlackmanWindow", 17, signal::window),
            op("HannWindow", 17, signal::window),
            op("HammingWindow", 17, signal::window),
            op("MelWeightMatrix", 17, signal::mel_weight_matrix),
        ],
    },
    Family {
        file: "conv",
        ops: &[
            op("Conv", 1, conv::conv).grad(conv::conv_grad).cost(matmul_class(conv::conv_flops)),
            op("DeformConv", 19, conv::conv),
            op("ConvTranspose", 1, conv::conv_transpose).grad(conv::conv_transpose_grad).cost(matmul_class(conv::conv_transpose_flops)),
            known("ConvInteger", 10).cost(CostRule { matmul_class: true, ..CostRule::DEFAULT }),
            op("Col2Im", 18, conv::col2im),
        ],
    },
    Family {
        file: "pool",
        ops: &[
            op("MaxPool", 1, pool::pool).grad(pool::max_pool_grad).cost(custom(pool::pool_flops)),
            op("AveragePool", 1, pool::pool).grad(pool::average_pool_grad).cost(custom(pool::pool_flops)),
            op("LpPool", 1, pool::pool).cost(custom(pool::pool_flops)),
            op("GlobalAveragePool", 1, pool::global_pool).grad(pool::global_average_pool_grad).cost(per_in(1.0)),
            op("GlobalMaxPool", 1, pool::global_pool).cost(per_in(1.0)),
            op("GlobalLpPool", 1, pool::global_pool).cost(per_in(1.0)),
            op("MaxUnpool", 9, pool::max_unpool),
        ],
    },
    Family {
        file: "resize",
        ops: &[
            op("Resize", 10, resize::resize).grad(resize::resize_grad).diff(First).cost(per_out(4.0)),
            known("Upsample", 1).diff(First).cost(per_out(4.0)).until(10),
            op("GridSample", 16, resize::grid_sample),
            op("AffineGrid", 20, resize::affine_grid),
            op("RoiAlign", 10, resize::roi_align),
        ],
    },
    Family {
        file: "recurrent",
        ops: &[
            op("RNN", 1, recurrent::recurrent),
            op("GRU", 1, recurrent::recurrent).lower(lower::rnn),
            op("LSTM", 1, recurrent::recurrent).lower(lower::rnn),
        ],
    },
    Family {
        file: "reduce",
        ops: &[
            op("ReduceMean", 1, reduce::reduce).grad(reduce::reduce_sum_mean_grad).diff(First).cost(per_in(1.0)),
            op("ReduceSum", 1, reduce::reduce).grad(reduce::reduce_sum_mean_grad).diff(First).cost(per_in(1.0)),
            op("ReduceMax", 1, reduce::reduce).grad(reduce::reduce_max_min_grad).diff(First).cost(per_in(1.0)),
            op("ReduceMin", 1, reduce::reduce).grad(reduce::reduce_max_min_grad).diff(First).cost(per_in(1.0)),
            op("ReduceProd", 1, reduce::reduce).diff(First).cost(per_in(1.0)),
            op("ReduceL1", 1, reduce::reduce).grad(reduce::reduce_l1_grad).diff(First).cost(per_in(1.0)),
            op("ReduceL2", 1, reduce::reduce).grad(reduce::reduce_l2_grad).diff(First).cost(per_in(2.0)),
            op("ReduceLogSum", 1, reduce::reduce).grad(reduce::reduce_log_sum_grad).diff(First).cost(per_in(12.0)),
            op("ReduceLogSumExp", 1, reduce::reduce).grad(reduce::reduce_log_sum_exp_grad).diff(First).cost(per_in(12.0)),
            op("ReduceSumSquare", 1, reduce::reduce).grad(reduce::reduce_sum_square_grad).diff(First).cost(per_in(2.0)),
            op("ArgMax", 1, reduce::arg_reduce).diff(Nothing).cost(per_in(1.0)),
            op("ArgMin", 1, reduce::arg_reduce).diff(Nothing).cost(per_in(1.0)),
            op("TopK", 1, reduce::topk).diff(First),
            op("CumSum", 11, reduce::cum_sum).grad(reduce::cum_sum_grad).diff(First).cost(per_in(1.0)),
        ],
    },
    Family {
        file: "norm",
        ops: &[
            op("LayerNormalization", 17, norm::layer_norm).grad(norm::layer_norm_grad).cost(per_out(8.0)),
            op("RMSNormalization", 23, norm::rms_norm),
            op("BatchNormalization", 1, norm::batch_norm).grad(norm::batch_norm_grad).diff(Below(3)).cost(custom(norm::batch_norm_flops)),
            op("InstanceNormalization", 1, norm::same_as_input).grad(norm::instance_norm_grad).cost(per_out(8.0)),
            op("GroupNormalization", 18, norm::same_as_input).cost(per_out(8.0)),
            op("LRN", 1, norm::same_as_input),
            op("LpNormalization", 1, norm::same_as_input).cost(per_out(4.0)),
            op("MeanVarianceNormalization", 9, norm::same_as_input).cost(per_out(8.0)),
        ],
    },
    Family {
        file: "loss",
        ops: &[
            op("NegativeLogLikelihoodLoss", 12, loss::loss),
            op("SoftmaxCrossEntropyLoss", 12, loss::loss),
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

    /// The family file of each op.
    fn family_of(op: &str) -> Option<&'static str> {
        FAMILIES
            .iter()
            .find(|f| f.ops.iter().any(|d| d.op_type == op))
            .map(|f| f.file)
    }

    /// Ops named in a table row's first cell: "Sum, Mean (variadic)" → Sum, Mean;
    /// "BatchNormalization, as exported" → BatchNormalization.
    fn ops_of_cell(cell: &str) -> Vec<String> {
        let mut plain = String::new();
        let mut depth = 0;
        for ch in cell.chars() {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 => plain.push(ch),
                _ => {}
            }
        }
        plain
            .split(',')
            .map(str::trim)
            .filter(|w| {
                w.starts_with(|c: char| c.is_ascii_uppercase())
                    && w.chars().all(|c| c.is_ascii_alphanumeric())
            })
            .map(String::from)
            .collect()
    }

    /// docs/gradients.md's tables and the registry agree: every op with a gradient rule has
    /// a row; every row's op has a rule (a lowering for "(lowered)" rows) and its family
    /// file is one its section's heading names.
    #[test]
    fn gradients_doc_matches_the_registry() {
        let doc = include_str!("../../../docs/gradients.md");
        let rules = doc
            .split("\n## The rules")
            .nth(1)
            .and_then(|r| r.split("\n## Not supported").next())
            .expect("docs/gradients.md has a 'The rules' section");
        let mut documented = std::collections::BTreeSet::new();
        let mut families: Vec<String> = Vec::new();
        for line in rules.lines() {
            if let Some(h) = line.strip_prefix("### ") {
                families = h
                    .split('`')
                    .filter_map(|w| w.strip_prefix("ops/")?.strip_suffix(".rs"))
                    .map(String::from)
                    .collect();
                assert!(!families.is_empty(), "heading names no family file: {h}");
                continue;
            }
            let Some(row) = line.strip_prefix("| ") else {
                continue;
            };
            let cell = row.split(" |").next().unwrap_or("");
            if cell == "op" || cell.starts_with("---") {
                continue;
            }
            let lowered = cell.contains("(lowered)");
            let ops = ops_of_cell(cell);
            assert!(!ops.is_empty(), "no op in row: {line}");
            for op in ops {
                let d = lookup(&op).unwrap_or_else(|| panic!("{op}: no registry row"));
                if lowered {
                    assert!(d.lowering.is_some(), "{op} is documented as lowered");
                } else {
                    assert!(d.grad.is_some(), "{op} is documented with a gradient rule");
                }
                let f = family_of(&op).unwrap();
                assert!(
                    families.iter().any(|x| x == f),
                    "{op} is in ops/{f}.rs, its section names {families:?}"
                );
                documented.insert(op);
            }
        }
        for d in all().filter(|d| d.grad.is_some()) {
            assert!(
                documented.contains(d.op_type),
                "{} has a gradient rule but no row in docs/gradients.md",
                d.op_type
            );
        }
    }
}
