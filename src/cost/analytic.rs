//! The analytic cost model: FLOPs and bytes moved per node over a roofline,
//! `time = max(flops / peak_flops, bytes / bandwidth) + launch overhead`.
//!
//! FLOPs and bytes are each op's cost rule in the registry (`onnx_ac_passes::ops::cost`,
//! `OpDef::cost`). `Constant` nodes cost nothing: runtimes turn them into initializers when
//! the model is loaded.

use super::CostModel;
use onnx_ac_passes::ir::{Graph, NodeId};
pub use onnx_ac_passes::ops::cost::{is_matmul_class, matmul_flops, node_bytes, node_flops};
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
