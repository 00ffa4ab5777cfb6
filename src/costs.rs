//! The main command's link to the runtime: choosing the cost model (analytic by default,
//! calibrated with a profile measured now or read from a file on request) and verifying a
//! rewrite.

use crate::cli::{PlanArgs, RuntimeArgs};
use crate::cost::{select_cost_model, CostModel, Device, FixedCost};
use crate::error::{Error, Result};
use crate::profile::{profile_training_graph, Profile, ProfileError, ProfileOptions};
use crate::runtime::{Ep, HostTensor, RunOptions};
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, Model, NodeId};
use std::path::Path;

/// The chosen cost model and what it is (named once in the summary).
pub struct Costs {
    pub description: String,
    pub model: Box<dyn CostModel>,
}

/// [`select_cost_model`]'s explanation without its `cost model: ` lead (the summary labels it).
fn measured(profile: crate::profile::Profile, g: &Graph, device: Device) -> Costs {
    let (model, why) = select_cost_model(Some(profile), g, true, device);
    let description = why.strip_prefix("cost model: ").unwrap_or(&why).to_string();
    Costs { description, model }
}

/// The analytic model for `device`.
fn analytic(device: Device) -> Costs {
    let spec = crate::cost::DeviceSpec::from(device);
    Costs {
        description: format!("analytic roofline for {}", spec.describe()),
        model: Box::new(crate::cost::AnalyticCost::new(spec)),
    }
}

impl Costs {
    pub fn node_time(&self, g: &Graph, n: NodeId) -> f64 {
        self.model.node_time(g, n)
    }
}

/// The fixed table: deterministic, for tests and snapshots.
pub fn fixed_time(g: &Graph, n: NodeId) -> f64 {
    FixedCost::default().node_time(g, n)
}

/// `--cost`/`--profile`/`--device`: a given profile calibrates the analytic model as is;
/// `fixed` is the constant table; `measured` profiles the training graph now (ONNX Runtime
/// required) and calibrates the analytic model with it; otherwise (the default) the analytic
/// model alone, so that the same command gives the same outputs on every run. A library named
/// by `--ort-lib` or `ORT_DYLIB_PATH` must exist even when this cost model does not load it.
pub fn select(
    tm: &Model,
    _info: &TrainingInfo,
    plan: &PlanArgs,
    rt: &RuntimeArgs,
    model_path: &Path,
) -> Result<Costs> {
    let device: Device = plan
        .device
        .parse()
        .map_err(|e: String| Error::Usage(format!("--device: {e}")))?;
    // `--ort-lib` and `ORT_DYLIB_PATH` are authoritative: naming nothing usable is an error
    // even when this cost model loads no library.
    if rt.ort_lib.is_some() || std::env::var_os("ORT_DYLIB_PATH").is_some_and(|v| !v.is_empty()) {
        crate::runtime::locate(rt.ort_lib.as_deref())?;
    }
    if let Some(path) = &plan.profile {
        let profile = Profile::load(path).map_err(ProfileError::into_cli_error)?;
        profile
            .check_graph(&tm.graph)
            .map_err(|reason| Error::Output {
                path: path.clone(),
                reason,
            })?;
        return Ok(measured(profile, &tm.graph, device));
    }
    match plan.cost.as_deref() {
        Some("fixed") => Ok(Costs {
            description: "fixed table (1e-5 s per MatMul/Gemm/Conv, 1e-6 s per other node)".into(),
            model: Box::new(FixedCost::default()),
        }),
        Some("measured") => {
            crate::runtime::init(rt.ort_lib.as_deref())?;
            let opts = ProfileOptions {
                runs: rt.runs.max(1),
                ep: run_options(rt).ep,
                ort_lib: rt.ort_lib.clone(),
                progress: true,
                ..ProfileOptions::default()
            };
            let profile = profile_training_graph(tm, model_path, &opts)
                .map_err(ProfileError::into_cli_error)?;
            Ok(measured(profile, &tm.graph, device))
        }
        _ => Ok(analytic(device)),
    }
}

pub fn run_options(rt: &RuntimeArgs) -> RunOptions {
    RunOptions {
        ep: if rt.ep == "cuda" { Ep::Cuda } else { Ep::Cpu },
        ort_lib: rt.ort_lib.clone(),
        ..RunOptions::default()
    }
}

/// Inputs for a training graph: random, with indices and labels in range (seed 0).
pub fn inputs_for(g: &Graph) -> Result<Vec<HostTensor>> {
    crate::profile::random_inputs(g, 0).map_err(ProfileError::into_cli_error)
}

/// Zeros for every input (valid for any index and label range).
pub fn zero_inputs_for(g: &Graph) -> Result<Vec<HostTensor>> {
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
    let _guard = crate::output::TempGuard::new(dir.path());
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
