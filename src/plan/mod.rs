//! Memory simulation and recomputation planning. A plan is data (`RecomputePlan`):
//! printable, diffable, loadable with `--plan plan.json`.

pub mod ac;
pub mod candidates;
pub mod host;
pub mod mutwo;
pub mod optimal;
pub mod presets;
pub mod segments;
pub mod simulate;

use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, NodeId, ValueId};
use onnx_ac_passes::recompute::{apply_recompute, is_recompute_work, RewriteOptions};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Seconds a node takes; planners only see costs through this.
pub type NodeCost<'a> = &'a (dyn Fn(&Graph, NodeId) -> f64 + Sync);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RecomputePlan {
    pub format: String,
    pub version: u32,
    pub planner: String,
    /// The budget the plan was made for (total peak bytes).
    pub budget_bytes: u64,
    /// Forward values dropped after the forward and recomputed for the backward, in
    /// creation order.
    pub recompute: Vec<String>,
    /// The forward reads the constant weights at run time (`runtime_weights.rs` of the passes
    /// crate): ONNX Runtime folds and prepacks none of them. Written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub runtime_weights: bool,
}

pub const PLAN_FORMAT: &str = "onnx-ac-plan";

impl RecomputePlan {
    pub fn new(planner: &str, budget_bytes: u64, g: &Graph, mut values: Vec<ValueId>) -> Self {
        values.sort_by_key(|v| (g.value(*v).producer.map(|p| p.0), v.0));
        values.dedup();
        RecomputePlan {
            format: PLAN_FORMAT.into(),
            version: 1,
            planner: planner.into(),
            budget_bytes,
            recompute: values.iter().map(|&v| g.value(v).name.clone()).collect(),
            runtime_weights: false,
        }
    }

    /// The plan's values in `g`, by name.
    pub fn resolve(&self, g: &Graph) -> Result<Vec<ValueId>, PlanError> {
        let by_name = g.value_by_name();
        self.recompute
            .iter()
            .map(|n| {
                by_name
                    .get(n.as_str())
                    .copied()
                    .ok_or_else(|| PlanError::UnknownValue { value: n.clone() })
            })
            .collect()
    }
}

#[derive(Debug, Error)]
pub enum PlanError {
    #[error("the plan names value '{value}', which the training graph does not have")]
    UnknownValue { value: String },
    #[error("plan file: {0}")]
    Format(String),
    #[error(transparent)]
    Rewrite(#[from] onnx_ac_passes::recompute::RecomputeError),
    #[error("planner optimal: {0}")]
    Solver(String),
    #[error("unknown planner '{0}' (choose ac, optimal, mutwo, none, selective or full)")]
    UnknownPlanner(String),
}

/// The simulated outcome of recomputing `values`: peak and added compute.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub peak_bytes: u64,
    pub activation_peak_bytes: u64,
    /// Seconds of recomputation added to a step.
    pub added_time_s: f64,
    pub copied_nodes: usize,
}

/// Rewrites and simulates a candidate plan.
pub fn evaluate(
    g: &Graph,
    info: &TrainingInfo,
    values: &[ValueId],
    cost: NodeCost,
) -> Result<(Graph, Evaluation), PlanError> {
    let (rg, report) = apply_recompute(g, info, values, RewriteOptions::default())?;
    let (_, sim) = simulate::simulate_ort_default(&rg, Some(info));
    let added = recompute_time(&rg, cost);
    Ok((
        rg,
        Evaluation {
            peak_bytes: sim.peak_bytes,
            activation_peak_bytes: sim.activation_peak_bytes,
            added_time_s: added,
            copied_nodes: report.copied_nodes,
        },
    ))
}

/// Seconds the recomputation work of the rewritten graph `rg` adds to a step
/// (`recompute::is_recompute_work`: the copies, and the aliases hiding their shapes).
pub fn recompute_time(rg: &Graph, cost: NodeCost) -> f64 {
    (rg.backward_start()..rg.nodes.len())
        .filter(|&i| is_recompute_work(rg, &rg.nodes[i]))
        .map(|i| cost(rg, NodeId(i as u32)))
        .sum::<f64>()
        + 0.0 // An empty sum is -0.0.
}

/// What every planner receives.
pub struct PlanInput<'a> {
    pub graph: &'a Graph,
    pub info: &'a TrainingInfo,
    pub cost: NodeCost<'a>,
    pub budget_bytes: u64,
}

pub trait Planner {
    fn name(&self) -> &'static str;
    fn plan(&self, input: &PlanInput) -> Result<RecomputePlan, PlanError>;
    /// Whether a larger budget always gets a plan peaking no higher: then the peak of its
    /// plan for an unreachable budget is reached by every budget that covers it.
    fn monotone(&self) -> bool {
        true
    }
}

/// The planners `--planner` and `--policy` accept.
pub fn planner_by_name(name: &str) -> Result<Box<dyn Planner>, PlanError> {
    Ok(match name {
        "ac" => Box::new(ac::Ac),
        "mutwo" => Box::new(mutwo::MuTwo),
        "optimal" => Box::new(optimal::Optimal::default()),
        "none" => Box::new(presets::Preset::None),
        "selective" => Box::new(presets::Preset::Selective),
        "full" => Box::new(presets::Preset::Full),
        other => return Err(PlanError::UnknownPlanner(other.into())),
    })
}
