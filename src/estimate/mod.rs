//! `onnx-ac estimate`: the memory of a training step by category — parameters, gradients,
//! optimizer state, activations — for each value of one swept dimension (sequence length)
//! and each plan: none, selective, full and, with `--budget`, the `ac` planner's plan.
//! Works structure-only: weights whose data is absent load as shapes and dtypes
//! (`onnx::load_structure_only`), and graph inputs can be declared parameters
//! (`--params-from-inputs`). Nothing runs: the plans come from the library's presets and
//! planner, their figures from the memory simulator and the analytic cost model, as the main
//! command computes them (`pipeline::plan_and_rewrite`). docs/estimate.md defines every
//! figure.

pub mod chart;
pub mod llama;
pub mod table;

use crate::error::{Error, Result};
use crate::pipeline::{plan_and_rewrite, PlanOptions, PlanSource};
use crate::size::Budget;
use onnx_ac_passes::autodiff::glob_match;
use onnx_ac_passes::ir::{static_dims, ExternalRef, Model, Tensor, TensorData};
use onnx_ac_passes::recompute::RewriteOptions;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The most values `--dim NAME=V1,V2,...` may list (each is a training graph and four
/// plans).
pub const MAX_SWEEP_VALUES: usize = 32;

/// One plan's step memory at one point, in bytes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlanMemory {
    /// none, selective, full, or budget.
    pub plan: String,
    pub parameters_bytes: u64,
    pub gradients_bytes: u64,
    pub optimizer_state_bytes: u64,
    /// Forward buffers the backward keeps (views resolved), after the plan.
    pub activations_bytes: u64,
    /// The four above.
    pub total_bytes: u64,
    /// The simulated peak of the whole step (the main command's "step peak").
    pub step_peak_bytes: u64,
    /// Time the plan's recomputation adds, % of the step (analytic cost model).
    pub recompute_time_percent: f64,
    /// The budget plan only: the budget in bytes at this point, and whether the plan's step
    /// peak meets it (else the row is the planner's lowest-peak plan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub within_budget: Option<bool>,
}

/// The plans at one value of the listed dimension.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Point {
    /// Every bound dimension at this point.
    pub dims: BTreeMap<String, i64>,
    pub plans: Vec<PlanMemory>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Parameters {
    pub tensors: usize,
    pub count: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Estimate {
    pub format: String,
    pub version: u32,
    pub model: String,
    /// Initializers loaded as shape and dtype only (their data absent).
    pub initializers_without_data: usize,
    /// Graph inputs taken as parameters (`--params-from-inputs`).
    pub parameters_from_inputs: Vec<String>,
    /// sgd, momentum, adamw, or null (no optimizer: gradients are the step's outputs).
    pub optimizer: Option<String>,
    /// State tensors per parameter (0, 1 or 2), each the parameter's size.
    pub optimizer_states_per_parameter: usize,
    /// The listed dimension (null when every --dim has one value).
    pub sweep_dim: Option<String>,
    pub budget_requested: Option<String>,
    pub cost_model: String,
    pub parameters: Parameters,
    pub points: Vec<Point>,
}

/// Everything `estimate` needs besides the model.
pub struct EstimateOptions<'a> {
    pub dims: &'a [(String, Vec<i64>)],
    /// The training options for a model (its loss, optimizer, frozen names), as the
    /// command's flags give them.
    pub train: &'a dyn Fn(&Model) -> Result<onnx_ac_passes::autodiff::TrainOptions>,
    pub budget: Option<Budget>,
    pub params_from_inputs: &'a [String],
    pub device: crate::cost::Device,
}

/// The names of the presets and the budget plan, in chart order.
pub const PLANS: [&str; 4] = ["none", "selective", "full", "budget"];

/// The dims bound at each point.
type Dims = BTreeMap<String, i64>;

/// The listed dimension (at most one) and the points to estimate.
fn points(dims: &[(String, Vec<i64>)]) -> Result<(Option<String>, Vec<Dims>)> {
    let mut lists = dims.iter().filter(|(_, v)| v.len() > 1);
    let sweep = lists.next();
    if let Some((second, _)) = lists.next() {
        return Err(Error::Usage(format!(
            "--dim {} and --dim {second} both list values: estimate sweeps one dimension",
            sweep.map(|s| s.0.as_str()).unwrap_or_default()
        )));
    }
    let mut fixed = BTreeMap::new();
    for (k, v) in dims {
        if fixed.contains_key(k) {
            return Err(Error::Usage(format!("--dim {k} is given twice")));
        }
        fixed.insert(k.clone(), v[0]);
    }
    Ok(match sweep {
        None => (None, vec![fixed]),
        Some((name, values)) => (
            Some(name.clone()),
            values
                .iter()
                .map(|&x| {
                    let mut d = fixed.clone();
                    d.insert(name.clone(), x);
                    d
                })
                .collect(),
        ),
    })
}

/// Graph inputs matching the globs become parameters: initializers whose data is a
/// placeholder nothing reads. Returns their names.
fn params_from_inputs(m: &mut Model, globs: &[String], path: &Path) -> Result<Vec<String>> {
    if globs.is_empty() {
        return Ok(Vec::new());
    }
    let mut taken = Vec::new();
    for glob in globs {
        let matched: Vec<_> = m
            .graph
            .inputs
            .iter()
            .copied()
            .filter(|&i| {
                let v = m.graph.value(i);
                v.initializer.is_none() && glob_match(glob, &v.name)
            })
            .collect();
        let float: Vec<_> = matched
            .iter()
            .copied()
            .filter(|&i| m.graph.value(i).dtype.is_some_and(|d| d.is_float()))
            .collect();
        if float.is_empty() {
            return Err(Error::Usage(format!(
                "--params-from-inputs '{glob}' matches no float input of {} (inputs: {})",
                path.display(),
                m.graph
                    .inputs
                    .iter()
                    .map(|&i| format!("'{}'", m.graph.value(i).name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for i in float {
            let v = m.graph.value(i);
            let dims = v.shape.as_deref().and_then(static_dims).ok_or_else(|| {
                Error::Usage(format!(
                    "input '{}' of {} ({}) has no static shape: bind its dims with --dim to take \
                     it as a parameter",
                    v.name,
                    path.display(),
                    onnx_ac_passes::ir::shape_string(v.shape.as_ref())
                ))
            })?;
            let t = Tensor {
                dtype: v.dtype.expect("float inputs have a dtype"),
                dims,
                data: TensorData::External(ExternalRef {
                    location: String::new(),
                    offset: 0,
                    length: None,
                    checksum: None,
                    extra: Vec::new(),
                }),
                doc_string: String::new(),
            };
            taken.push(v.name.clone());
            m.graph.value_mut(i).initializer = Some(t);
            m.graph.initializers.push(i);
            m.graph.inputs.retain(|&x| x != i);
        }
    }
    Ok(taken)
}

/// The structure-only model at one point: dims bound, inputs taken as parameters, shapes
/// inferred.
fn model_at(
    base: &Model,
    path: &Path,
    dims: &BTreeMap<String, i64>,
    globs: &[String],
) -> Result<(Model, Vec<String>)> {
    let at = |source| Error::Model {
        path: path.to_path_buf(),
        source,
    };
    let mut m = base.clone();
    onnx_ac_passes::infer::bind_dims(&mut m.graph, dims).map_err(at)?;
    let taken = params_from_inputs(&mut m, globs, path)?;
    let opset = m.opset().unwrap_or(crate::onnx::MIN_OPSET);
    onnx_ac_passes::infer::infer_shapes(&mut m.graph, opset).map_err(at)?;
    Ok((m, taken))
}

/// Estimates the model `base` (loaded from `path` with `absent` initializers without data).
pub fn estimate(
    base: &Model,
    path: &Path,
    absent: usize,
    o: &EstimateOptions,
    progress: &dyn Fn(&str),
) -> Result<Estimate> {
    let (sweep_dim, points_dims) = points(o.dims)?;
    let spec = crate::cost::DeviceSpec::from(o.device);
    let cost_model = crate::cost::AnalyticCost::new(spec.clone());
    let cost_name = format!("analytic roofline for {}", spec.describe());
    let cost_fn = |g: &onnx_ac_passes::ir::Graph, n: onnx_ac_passes::ir::NodeId| {
        crate::cost::CostModel::node_time(&cost_model, g, n)
    };
    let mut points = Vec::new();
    let mut parameters = None;
    let mut taken_names = Vec::new();
    let mut optimizer = None;
    let mut states = 0;
    let total = points_dims.len();
    for (k, dims) in points_dims.into_iter().enumerate() {
        let here = dims
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        progress(&format!("{here} ({}/{total}): training graph", k + 1));
        let (m, taken) = model_at(base, path, &dims, o.params_from_inputs)?;
        taken_names = taken;
        let topts = (o.train)(&m)?;
        let (tm, info) =
            onnx_ac_passes::autodiff::build_training_graph(&m, &topts).map_err(|e| {
                Error::Training {
                    path: path.to_path_buf(),
                    source: e,
                }
            })?;
        let g = &tm.graph;
        let bytes = |v| g.value_bytes(v).unwrap_or(0);
        let param_bytes: u64 = info.params.iter().map(|&p| bytes(p)).sum();
        let grad_bytes: u64 = info.grads.iter().map(|&p| bytes(p)).sum();
        let suffixes = info.optimizer.map(|o| o.state_suffixes()).unwrap_or(&[]);
        states = suffixes.len();
        optimizer = topts.optimizer.map(|o| o.rule.name().to_string());
        // The state inputs the optimizer step declares (`P.exp_avg`, …, AdamW's
        // `optimizer.step`), as docs/cli.md's "Training step" names them.
        let by_name = g.value_by_name();
        let mut state_bytes: u64 = info
            .params
            .iter()
            .flat_map(|&p| {
                let name = &g.value(p).name;
                suffixes.iter().map(move |s| format!("{name}.{s}"))
            })
            .filter_map(|n| by_name.get(n.as_str()).map(|&v| bytes(v)))
            .sum();
        if suffixes.len() == 2 {
            state_bytes += by_name.get("optimizer.step").map_or(0, |&v| bytes(v));
        }
        parameters.get_or_insert(Parameters {
            tensors: info.params.len(),
            count: info
                .params
                .iter()
                .filter_map(|&p| {
                    let v = g.value(p);
                    onnx_ac_passes::ir::static_numel(v.shape.as_deref()?)
                })
                .sum(),
            bytes: param_bytes,
        });
        let mut plans = Vec::new();
        for name in PLANS {
            let (source, budget) = match (name, o.budget) {
                ("budget", None) => continue,
                ("budget", Some(b)) => ("ac", b),
                (preset, _) => (preset, Budget::Percent(100.0)),
            };
            progress(&format!("{here} ({}/{total}): plan {name}", k + 1));
            let opts = PlanOptions {
                budget,
                source: PlanSource::Planner(source.into()),
                best_effort: true,
                rewrite: RewriteOptions::defended(true),
                bound_dims: dims.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            };
            let s = plan_and_rewrite(&tm, &info, &opts, &cost_fn, &cost_name)?.summary;
            let activations = s.retained_memory_bytes;
            let is_budget = name == "budget";
            plans.push(PlanMemory {
                plan: name.into(),
                parameters_bytes: param_bytes,
                gradients_bytes: grad_bytes,
                optimizer_state_bytes: state_bytes,
                activations_bytes: activations,
                total_bytes: param_bytes + grad_bytes + state_bytes + activations,
                step_peak_bytes: s.final_peak_bytes,
                recompute_time_percent: s.overhead_percent,
                budget_bytes: is_budget.then_some(s.budget_bytes),
                within_budget: is_budget.then_some(s.within_budget),
            });
        }
        points.push(Point { dims, plans });
    }
    Ok(Estimate {
        format: "onnx-ac-estimate".into(),
        version: 1,
        model: path.display().to_string(),
        initializers_without_data: absent,
        parameters_from_inputs: taken_names,
        optimizer,
        optimizer_states_per_parameter: states,
        sweep_dim,
        budget_requested: o.budget.map(|b| b.spec()),
        cost_model: cost_name,
        parameters: parameters.expect("at least one point"),
        points,
    })
}
