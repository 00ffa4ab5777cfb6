//! The analytic cost model: FLOPs and bytes moved per node over a roofline,
//! `time = max(flops / peak_flops, bytes / bandwidth) + launch overhead`.
//!
//! FLOPs count a multiply-add as two. Bytes are the compulsory traffic: every input and output
//! once, except where a kernel touches less (Gather reads only the gathered rows, Slice only
//! the slice) or nothing (Reshape-like ops alias their input). `Constant` nodes cost nothing:
//! runtimes turn them into initializers when the model is loaded.

use super::CostModel;
use onnx_ac_passes::ir::{static_dims, Graph, NodeId, ValueId};
use serde::{Deserialize, Serialize};

/// The devices of the analytic model's table (`--device`).
#[derive(
    clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// This project's 2-core x86-64 CI machine, as measured with ONNX Runtime 1.31
    /// (docs/profiling.md).
    #[default]
    Cpu,
    /// NVIDIA A100 80GB SXM.
    A100,
    /// NVIDIA H100 SXM5.
    H100,
}

impl std::str::FromStr for Device {
    type Err = String;
    /// "cpu", "a100" or "h100" (any case).
    fn from_str(s: &str) -> Result<Device, String> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "a100" => Ok(Device::A100),
            "h100" => Ok(Device::H100),
            other => Err(format!(
                "unknown device '{other}' for the analytic cost model (choose cpu, a100 or h100)"
            )),
        }
    }
}

/// Peak throughput of a device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceSpec {
    pub name: String,
    /// Peak FP32 floating-point operations per second (non-tensor-core for GPUs).
    pub peak_flops: f64,
    /// Peak memory bandwidth, bytes per second.
    pub bandwidth: f64,
    /// Fixed cost of running one kernel (dispatch, launch), seconds.
    pub launch_s: f64,
}

impl DeviceSpec {
    /// e.g. "a100 (19.5 TFLOP/s FP32, 2039 GB/s, 5 µs per kernel)".
    pub fn describe(&self) -> String {
        format!(
            "{} ({} FP32, {:.0} GB/s, {:.0} µs per kernel)",
            self.name,
            if self.peak_flops >= 1e12 {
                format!("{:.1} TFLOP/s", self.peak_flops / 1e12)
            } else {
                format!("{:.0} GFLOP/s", self.peak_flops / 1e9)
            },
            self.bandwidth / 1e9,
            self.launch_s * 1e6
        )
    }
}

impl From<Device> for DeviceSpec {
    fn from(d: Device) -> DeviceSpec {
        let (name, peak_flops, bandwidth, launch_s) = match d {
            // Measured on the 2-core CI machine (docs/profiling.md), rounded down.
            Device::Cpu => ("cpu", 30e9, 8e9, 5e-6),
            // NVIDIA A100 datasheet: 19.5 TFLOPS FP32, 2,039 GB/s HBM2e (80GB SXM).
            Device::A100 => ("a100", 19.5e12, 2039e9, 5e-6),
            // NVIDIA H100 datasheet: 67 TFLOPS FP32, 3.35 TB/s HBM3 (SXM5).
            Device::H100 => ("h100", 67e12, 3350e9, 5e-6),
        };
        DeviceSpec {
            name: name.to_string(),
            peak_flops,
            bandwidth,
            launch_s,
        }
    }
}

/// FLOPs and bytes over a roofline for one device.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalyticCost {
    pub device: DeviceSpec,
    name: String,
}

impl AnalyticCost {
    pub fn new(device: impl Into<DeviceSpec>) -> AnalyticCost {
        let device = device.into();
        let name = format!("analytic({})", device.name);
        AnalyticCost { device, name }
    }
}

impl CostModel for AnalyticCost {
    fn node_time(&self, g: &Graph, n: NodeId) -> f64 {
        if g.node(n).op_type == "Constant" {
            return 0.0;
        }
        let compute = node_flops(g, n) / self.device.peak_flops;
        let memory = node_bytes(g, n) / self.device.bandwidth;
        compute.max(memory) + self.device.launch_s
    }
    fn name(&self) -> &str {
        &self.name
    }
}

fn dims(g: &Graph, v: Option<ValueId>) -> Option<Vec<i64>> {
    static_dims(g.value(v?).shape.as_ref()?)
}

fn numel(g: &Graph, v: Option<ValueId>) -> f64 {
    dims(g, v).map_or(0.0, |d| d.iter().map(|&x| x.max(0) as f64).product())
}

fn bytes(g: &Graph, v: Option<ValueId>) -> f64 {
    v.and_then(|v| g.value_bytes(v)).unwrap_or(0) as f64
}

fn product(d: &[i64]) -> f64 {
    d.iter().map(|&x| x.max(0) as f64).product()
}

/// Ops whose output aliases their input (no data moved) or that only read metadata.
const NO_TRAFFIC: &[&str] = &[
    "Constant",
    "Shape",
    "Size",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Identity",
];

/// Bytes a node reads and writes.
pub fn node_bytes(g: &Graph, n: NodeId) -> f64 {
    let node = g.node(n);
    let op = node.op_type.as_str();
    if NO_TRAFFIC.contains(&op) {
        return 0.0;
    }
    let out: f64 = node.outputs.iter().map(|&o| bytes(g, o)).sum();
    match op {
        "Gather" | "GatherElements" | "GatherND" => 2.0 * out + bytes(g, node.input(1)),
        "Slice" => 2.0 * out,
        "Expand" | "Tile" => out + bytes(g, node.input(0)),
        "ConstantOfShape" | "Range" | "EyeLike" | "RandomNormal" | "RandomUniform" => out,
        _ => node.inputs.iter().map(|&i| bytes(g, i)).sum::<f64>() + out,
    }
}

/// MatMul-class ops: the compute-heavy ones recomputation is measured by (PyTorch's
/// partitioner bans them from recomputation below its budget 1; its trade-off is reported
/// in their FLOPs).
pub fn is_matmul_class(op: &str) -> bool {
    matches!(
        op,
        "MatMul" | "Gemm" | "Conv" | "ConvTranspose" | "Einsum" | "MatMulInteger" | "ConvInteger"
    )
}

/// FLOPs of the MatMul-class nodes of `g` among `nodes`.
pub fn matmul_flops(g: &Graph, nodes: impl Iterator<Item = NodeId>) -> f64 {
    nodes
        .filter(|&n| is_matmul_class(&g.node(n).op_type))
        .map(|n| node_flops(g, n))
        .sum::<f64>()
        + 0.0
}

/// Floating-point operations of a node (a multiply-add counts two).
pub fn node_flops(g: &Graph, n: NodeId) -> f64 {
    let node = g.node(n);
    let out = numel(g, node.output(0));
    let inp = numel(g, node.input(0));
    match node.op_type.as_str() {
        "MatMul" | "MatMulInteger" => {
            let k = dims(g, node.input(0))
                .and_then(|d| d.last().copied())
                .unwrap_or(0);
            2.0 * out * k.max(0) as f64
        }
        "Gemm" => {
            let a = dims(g, node.input(0)).unwrap_or_default();
            let trans_a = node.attr_int("transA").unwrap_or(0) != 0;
            let k = match (a.as_slice(), trans_a) {
                ([k, _], true) | ([_, k], false) => *k,
                _ => 0,
            };
            let bias = if node.input(2).is_some() { out } else { 0.0 };
            2.0 * out * k.max(0) as f64 + bias
        }
        "Conv" => {
            // W: [C_out, C_in / group, k...]; each output element is a dot product over
            // C_in / group × kernel.
            let w = dims(g, node.input(1)).unwrap_or_default();
            let per_out = w.get(1..).map_or(0.0, product);
            let bias = if node.input(2).is_some() { out } else { 0.0 };
            2.0 * out * per_out + bias
        }
        "ConvTranspose" => {
            // W: [C_in, C_out / group, k...]; each input element scatters into
            // C_out / group × kernel outputs.
            let w = dims(g, node.input(1)).unwrap_or_default();
            let per_in = w.get(1..).map_or(0.0, product);
            let bias = if node.input(2).is_some() { out } else { 0.0 };
            2.0 * inp * per_in + bias
        }
        "MaxPool" | "AveragePool" | "LpPool" => {
            let k = node.attr_ints("kernel_shape").map_or(1.0, product);
            out * k
        }
        "GlobalAveragePool" | "GlobalMaxPool" | "GlobalLpPool" => inp,
        "Softmax" | "LogSoftmax" => 14.0 * out,
        "LayerNormalization"
        | "InstanceNormalization"
        | "GroupNormalization"
        | "MeanVarianceNormalization" => 8.0 * out,
        "BatchNormalization" => {
            if node.attr_int("training_mode").unwrap_or(0) != 0 {
                8.0 * out
            } else {
                2.0 * out
            }
        }
        "LpNormalization" => 4.0 * out,
        "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1"
        | "ArgMax" | "ArgMin" | "CumSum" => inp,
        "ReduceL2" | "ReduceSumSquare" => 2.0 * inp,
        "ReduceLogSum" | "ReduceLogSumExp" => 12.0 * inp,
        "Sum" | "Mean" | "Max" | "Min" => {
            let k = node.inputs.iter().flatten().count().max(2) as f64;
            (k - 1.0) * out
        }
        "Div" | "Reciprocal" | "Sqrt" | "Mod" => 4.0 * out,
        "Exp" | "Log" | "Sigmoid" | "HardSigmoid" | "HardSwish" | "Elu" | "Selu" | "Celu"
        | "Sin" | "Cos" | "Tan" | "Asin" | "Acos" | "Atan" | "Dropout" => 10.0 * out,
        "Erf" | "Tanh" | "Gelu" | "Pow" | "Softplus" | "Softsign" | "Mish" | "Sinh" | "Cosh"
        | "Asinh" | "Acosh" | "Atanh" => 20.0 * out,
        "Add" | "Sub" | "Mul" | "Neg" | "Abs" | "Relu" | "LeakyRelu" | "PRelu"
        | "ThresholdedRelu" | "Sign" | "Floor" | "Ceil" | "Round" | "Clip" | "Where" | "Equal"
        | "Less" | "LessOrEqual" | "Greater" | "GreaterOrEqual" | "And" | "Or" | "Xor" | "Not"
        | "IsNaN" | "IsInf" | "Cast" | "CastLike" | "BitShift" => out,
        "Resize" | "Upsample" => 4.0 * out,
        "Einsum" => einsum_flops(g, n).unwrap_or(out),
        // Data movement and shape computations: bytes only.
        "Constant" | "Shape" | "Size" | "Reshape" | "Squeeze" | "Unsqueeze" | "Flatten"
        | "Identity" | "Transpose" | "Concat" | "Split" | "Slice" | "Gather" | "GatherElements"
        | "GatherND" | "ScatterElements" | "ScatterND" | "Scatter" | "Expand" | "Tile" | "Pad"
        | "ConstantOfShape" | "Range" | "OneHot" | "EyeLike" | "SpaceToDepth" | "DepthToSpace"
        | "Compress" | "NonZero" | "Trilu" => 0.0,
        // Anything else: one operation per output element.
        _ => out,
    }
}

/// 2 × the product of every index's size (each distinct letter is one loop), for equations
/// without an ellipsis.
fn einsum_flops(g: &Graph, n: NodeId) -> Option<f64> {
    let node = g.node(n);
    let eq = node.attr_string("equation")?;
    let lhs = eq.split("->").next()?;
    if lhs.contains("...") {
        return None;
    }
    let mut sizes: std::collections::BTreeMap<char, i64> = Default::default();
    for (term, v) in lhs.split(',').zip(&node.inputs) {
        let d = dims(g, *v)?;
        let letters: Vec<char> = term.trim().chars().collect();
        if letters.len() != d.len() {
            return None;
        }
        for (c, x) in letters.into_iter().zip(d) {
            sizes.insert(c, x);
        }
    }
    Some(2.0 * sizes.values().map(|&x| x.max(0) as f64).product::<f64>())
}
