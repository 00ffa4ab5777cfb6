//! The main command's link to the runtime: choosing the cost model (measured by profiling
//! when ONNX Runtime is there, analytic otherwise) and verifying a rewrite.

use crate::cli::{PlanArgs, RuntimeArgs};
use crate::cost::{select_cost_model, CostModel, Device, FixedCost};
use crate::error::{Error, Result};
use crate::profile::{profile_training_graph, Profile, ProfileError, ProfileOptions};
use crate::runtime::{Ep, HostTensor, RunOptions};
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, Model, NodeId};
use std::path::Path;

/// The chosen cost model: what it is (named once in the summary) and, when it is a fallback
/// the user did not ask for, a one-line note saying why (printed on stderr).
pub struct Costs {
    pub description: String,
    pub note: Option<String>,
    pub model: Box<dyn CostModel>,
}

/// [`select_cost_model`]'s explanation without its `cost model: ` lead (the summary labels it).
fn measured(profile: crate::profile::Profile, device: Device) -> Costs {
    let (model, why) = select_cost_model(Some(profile), true, device);
    let description = why.strip_prefix("cost model: ").unwrap_or(&why).to_string();
    Costs {
        description,
        note: None,
        model,
    }
}

/// The analytic model for `device`, chosen (`note` None) or fallen back to.
fn analytic(device: Device, note: Option<String>) -> Costs {
    let spec = crate::cost::DeviceSpec::from(device);
    Costs {
        description: format!("analytic roofline for {}", spec.describe()),
        note,
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

/// `--cost`/`--profile`/`--device`: a given profile is used as is; `fixed` and `analytic`
/// need no runtime; otherwise (the default) the training graph is profiled now when ONNX
/// Runtime can be loaded, and the analytic model is used when none is found. A library named
/// by `--ort-lib` or `ORT_DYLIB_PATH` that cannot be used is an error, never a fallback, and
/// `--ort-lib` must name a library even when this cost model does not load it.
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
    if let Some(lib) = &rt.ort_lib {
        crate::runtime::locate(Some(lib))?;
    }
    if let Some(path) = &plan.profile {
        let profile = Profile::load(path).map_err(ProfileError::into_cli_error)?;
        profile
            .check_graph(&tm.graph)
            .map_err(|reason| Error::Output {
                path: path.clone(),
                reason,
            })?;
        return Ok(measured(profile, device));
    }
    match plan.cost.as_deref() {
        Some("fixed") => Ok(Costs {
            description: "fixed table (1e-5 s per MatMul/Gemm/Conv, 1e-6 s per other node)".into(),
            note: None,
            model: Box::new(FixedCost::default()),
        }),
        Some("analytic") => Ok(analytic(device, None)),
        explicit => {
            let available = crate::runtime::init(rt.ort_lib.as_deref());
            match (available, explicit) {
                (Ok(_), _) => {
                    let opts = ProfileOptions {
                        runs: rt.runs,
                        ep: run_options(rt).ep,
                        ort_lib: rt.ort_lib.clone(),
                        progress: true,
                        ..ProfileOptions::default()
                    };
                    let profile = profile_training_graph(tm, model_path, &opts)
                        .map_err(ProfileError::into_cli_error)?;
                    Ok(measured(profile, device))
                }
                (Err(e), Some("measured")) => Err(e.into()),
                (Err(e), _) if rt.ort_lib.is_some() || ort_dylib_path_set() => Err(e.into()),
                (Err(_), _) => Ok(analytic(
                    device,
                    Some(
                        "note: ONNX Runtime not found, so node times are estimated (analytic cost model); \
                         --ort-lib PATH or ORT_DYLIB_PATH names a libonnxruntime to measure them"
                            .into(),
                    ),
                )),
            }
        }
    }
}

/// `ORT_DYLIB_PATH` names a library (which the loader treats as authoritative).
fn ort_dylib_path_set() -> bool {
    std::env::var_os("ORT_DYLIB_PATH").is_some_and(|v| !v.is_empty())
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
