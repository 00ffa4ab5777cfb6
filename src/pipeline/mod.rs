//! The main command as one library call: training graph → plan → rewrite → (verify) →
//! save, with the reports. The CLI only parses flags, picks the cost model and prints.

mod cost_choice;

pub use cost_choice::{select, CostChoice, Costs, ProfileShape};

use crate::error::{Error, Result};
use crate::plan::simulate::Simulation;
use crate::plan::{self, evaluate, NodeCost, PlanInput, RecomputePlan};
use crate::report::{self, Summary};
use crate::size::{human_bytes, human_bytes_up, Budget};
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, Model, ValueId};
use onnx_ac_passes::recompute::{apply_recompute, is_recompute_work, RewriteOptions};
use std::path::PathBuf;

/// Plans aim 1/PLAN_MARGIN_DIVISOR (1%) under the budget (see `plan_and_rewrite`): on the
/// fixtures and the 8-layer transformers of docs/benchmarks-deep.md the measured peak of a
/// rewritten graph is at most 0.8% above its simulation.
pub const PLAN_MARGIN_DIVISOR: u64 = 100;

/// Plans with weights read at run time aim 1/RUNTIME_WEIGHTS_MARGIN_DIVISOR (25%) under the
/// budget (see `plan_and_rewrite`): the simulator's error on them is larger and not yet
/// understood (docs/memory-model.md).
pub const RUNTIME_WEIGHTS_MARGIN_DIVISOR: u64 = 4;

/// How the plan is chosen.
#[derive(Clone, Debug)]
pub enum PlanSource {
    Planner(String),
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub struct PlanOptions {
    pub budget: Budget,
    pub source: PlanSource,
    /// Write the output even when the budget is not reachable (with the lowest-peak plan).
    pub best_effort: bool,
    pub rewrite: RewriteOptions,
    /// The symbolic input dimensions `--dim` bound (name, value): an unreachable budget
    /// suggests smaller values for these; a model without any (fixed shapes) gets no such
    /// suggestion.
    pub bound_dims: Vec<(String, i64)>,
}

/// Everything the main command decided, before anything is written.
pub struct Planned {
    pub plan: RecomputePlan,
    pub rewritten: Model,
    pub summary: Summary,
    pub decisions: Vec<report::Decision>,
}

/// What a plan's simulated peak must fit: the budget less the planning margin.
fn planning_target(budget: u64) -> u64 {
    budget - budget / PLAN_MARGIN_DIVISOR
}

/// The smallest budget that accepts a plan peaking at `peak`: one whose planning target
/// covers it, or the plain peak itself (a budget at or above the plain training graph's
/// peak accepts recomputing nothing, with no margin: that graph is the one written).
pub fn budget_for_peak(peak: u64, plain_peak: u64) -> u64 {
    if peak >= plain_peak {
        return plain_peak;
    }
    let mut b = peak + peak / (PLAN_MARGIN_DIVISOR - 1);
    while planning_target(b) < peak {
        b += 1;
    }
    while b > 0 && planning_target(b - 1) >= peak {
        b -= 1;
    }
    b.min(plain_peak)
}

/// The rewrite of `values`, and its simulation. Recomputing nothing is the lower-peak of
/// the training graph as it is and the empty plan's rewrite (whose defences and execution
/// order move the peak a little, either way): a budget covering the plain peak is always
/// met by it.
fn rewrite(
    g: &Graph,
    info: &TrainingInfo,
    values: &[ValueId],
    opts: RewriteOptions,
) -> std::result::Result<(Graph, Simulation), plan::PlanError> {
    let simulated = |rg: Graph| {
        let order = plan::simulate::ort_default_order(&rg);
        let sim = plan::simulate::simulate(&rg, &order, Some(info));
        (rg, sim)
    };
    let rewritten = simulated(apply_recompute(g, info, values, opts)?.0);
    if values.is_empty() {
        let plain = simulated(g.clone());
        if plain.1.peak_bytes < rewritten.1.peak_bytes {
            return Ok(plain);
        }
    }
    Ok(rewritten)
}

/// The peaks a planner reaches on a training graph: the lowest (its plan for an unreachable
/// budget: the lowest-peak plan it finds, or recomputing nothing when that is lower; for a
/// planner that is not monotone in the budget, checked as the main command checks its
/// suggestion) and the plain graph's. Every budget from `budget_for_peak(lowest, plain)` up
/// is reachable by that planner.
pub fn reachable_peaks(
    g: &Graph,
    info: &TrainingInfo,
    planner: &str,
    cost: NodeCost,
) -> Result<(u64, u64)> {
    let order = plan::simulate::ort_default_order(g);
    let base = plan::simulate::simulate(g, &order, Some(info));
    let plain = base.peak_bytes;
    let p = plan::planner_by_name(planner)
        .map_err(|e| Error::Usage(e.to_string()))?
        .plan(&PlanInput {
            graph: g,
            info,
            cost,
            budget_bytes: 0,
        })
        .map_err(plan_err)?;
    let values = p.resolve(g).map_err(plan_err)?;
    let opts = RewriteOptions::default();
    let (_, sim) = rewrite(g, info, &values, opts).map_err(plan_err)?;
    let lowest = sim.peak_bytes.min(plain);
    let lowest = reached_by_suggestion(g, info, planner, cost, lowest, &base, opts)?;
    Ok((lowest, plain))
}

/// Rounds of re-planning that check a suggested budget (planners that are not monotone).
const SUGGESTION_ROUNDS: usize = 4;

/// The peak an unreachable budget's suggestion is made from: `reached`, the planner's
/// best effort, when the planner is monotone in the budget (every budget covering a peak it
/// reached reaches it again). Otherwise the planner is run again at the suggested budget
/// until its plan fits there, raising the peak to what it reached; after a few rounds,
/// the plain peak (recomputing nothing always fits a budget that covers it).
fn reached_by_suggestion(
    g: &Graph,
    info: &TrainingInfo,
    planner: &str,
    cost: NodeCost,
    mut reached: u64,
    base: &Simulation,
    rewrite_opts: RewriteOptions,
) -> Result<u64> {
    let planner = plan::planner_by_name(planner).map_err(|e| Error::Usage(e.to_string()))?;
    if planner.monotone() {
        return Ok(reached);
    }
    for _ in 0..SUGGESTION_ROUNDS {
        let suggested = budget_for_peak(reached, base.peak_bytes);
        if suggested >= base.peak_bytes {
            return Ok(reached);
        }
        let target = planning_target(suggested);
        let p = planner
            .plan(&PlanInput {
                graph: g,
                info,
                cost,
                budget_bytes: target,
            })
            .map_err(plan_err)?;
        let values = p.resolve(g).map_err(plan_err)?;
        let (_, sim) = rewrite(g, info, &values, rewrite_opts).map_err(plan_err)?;
        if sim.peak_bytes <= target {
            return Ok(reached);
        }
        reached = sim.peak_bytes.min(base.peak_bytes);
    }
    Ok(base.peak_bytes)
}

/// An unreachable budget: the lowest peak the plan source reached (its best-effort plan),
/// what no plan can remove, and the smallest budget that source reaches.
fn unreachable_error(
    g: &Graph,
    info: &TrainingInfo,
    budget: u64,
    reached: u64,
    plain_peak: u64,
    source: &PlanSource,
    bound_dims: &[(String, i64)],
) -> Error {
    // Checked for the planner's plans on the folded weights only: plans reading them at run
    // time are not monotone in the budget.
    let suggested = budget_for_peak(reached, plain_peak);
    let order = plan::simulate::ort_default_order(g);
    let sim = plan::simulate::simulate(g, &order, Some(info));
    let grads: u64 = info
        .step_results()
        .iter()
        .filter_map(|&v| g.value_bytes(v))
        .sum();
    let who = match source {
        PlanSource::Planner(name) => format!("planner {name}"),
        PlanSource::File(path) => format!("the plan of {}", path.display()),
    };
    let dims = if bound_dims.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = bound_dims
            .iter()
            .map(|(n, v)| format!("--dim {n}={v}"))
            .collect();
        format!(", smaller dimensions (now {})", list.join(" "))
    };
    Error::BudgetUnreachable {
        budget,
        target: planning_target(budget),
        smallest_peak: reached,
        who,
        detail: format!(
            "incompressible: parameters {}, weights ONNX Runtime prepacks {}, {} {}, graph inputs {}{}, largest single tensor {}",
            human_bytes(sim.breakdown.parameters),
            human_bytes(sim.breakdown.prepacked),
            if info.optimizer.is_some() {
                "updated parameters and optimizer state"
            } else {
                "gradients"
            },
            human_bytes(grads),
            human_bytes(sim.breakdown.graph_inputs),
            if sim.breakdown.optimizer_state > 0 {
                format!(
                    " (of which optimizer state {})",
                    human_bytes(sim.breakdown.optimizer_state)
                )
            } else {
                String::new()
            },
            human_bytes(sim.largest_value_bytes)
        ),
        suggestion: format!(
            "use --budget {} or more{dims}, or --best-effort to write that plan",
            human_bytes_up(suggested)
        ),
    }
}

/// `X%act`: the peak without recomputation with only X% of its activation memory (the
/// forward buffers its backward keeps, views resolved), plus the gradients it has not
/// allocated yet at that peak. Gradients (with `--optimizer`, the updated parameters and
/// state) are outputs, alive at the end of every plan's step: they are not activation memory,
/// and a plan that moves the peak to the end of the backward must be allowed them.
pub fn activation_budget(g: &Graph, info: &TrainingInfo, base: &Simulation, p: f64) -> u64 {
    let activations: u64 = report::kept_buffers(g)
        .iter()
        .filter_map(|&v| g.value_bytes(v))
        .sum();
    let gradients: u64 = info
        .step_results()
        .iter()
        .filter_map(|&v| g.value_bytes(v))
        .sum();
    let unallocated_gradients = gradients.saturating_sub(base.breakdown.gradients);
    let cut = (activations as f64 * (100.0 - p) / 100.0) as u64;
    base.peak_bytes.saturating_sub(cut) + unallocated_gradients
}

/// The budget in bytes for the training graph `g`, whose simulated peak without
/// recomputation is `base`.
pub fn budget_bytes(g: &Graph, info: &TrainingInfo, base: &Simulation, budget: Budget) -> u64 {
    match budget {
        Budget::Bytes(b) => b,
        Budget::Percent(p) => (base.peak_bytes as f64 * p / 100.0) as u64,
        Budget::ActivationPercent(p) => activation_budget(g, info, base, p),
    }
}

pub fn plan_and_rewrite(
    model: &Model,
    info: &TrainingInfo,
    opts: &PlanOptions,
    cost: NodeCost,
    cost_name: &str,
) -> Result<Planned> {
    let g = &model.graph;
    // The peak without onnx-ac: the training graph as it is, not rewritten.
    let base = {
        let order = plan::simulate::ort_default_order(g);
        plan::simulate::simulate(g, &order, Some(info))
    };
    let budget = budget_bytes(g, info, &base, opts.budget);
    // Plans aim a margin under the budget: the simulator's documented error against ONNX
    // Runtime's measured peak (docs/memory-model.md), so the measured peak fits too. A
    // budget that covers the plain graph's own peak needs no recomputation: the plain
    // training graph is written as it is.
    let covers_plain = budget >= base.peak_bytes;
    let target = if covers_plain {
        budget
    } else {
        planning_target(budget)
    };
    let search = |g: &Graph, info: &TrainingInfo, name: &str| -> Result<RecomputePlan> {
        let planner = plan::planner_by_name(name).map_err(|e| Error::Usage(e.to_string()))?;
        if covers_plain && searches(name) {
            Ok(RecomputePlan::new(planner.name(), target, g, Vec::new()))
        } else {
            planner
                .plan(&PlanInput {
                    graph: g,
                    info,
                    cost,
                    budget_bytes: target,
                })
                .map_err(plan_err)
        }
    };
    let plan = match &opts.source {
        PlanSource::Planner(name) => search(g, info, name)?,
        PlanSource::File(path) => read_plan_file(path)?,
    };
    // A plan file is input: a value its rewrite cannot recompute is its fault (exit 2).
    let from_file = |e: plan::PlanError| match &opts.source {
        PlanSource::File(path) => Error::Output {
            path: path.clone(),
            reason: e.to_string(),
        },
        PlanSource::Planner(_) => plan_err(e),
    };
    // The training graph with its weights read at run time, when a plan file asks for it or
    // when the budget cannot be met without (see below); built only then (a copy of the
    // graph: `tradeoff` and `sweep` plan many times).
    let runtime_cell = std::cell::OnceCell::new();
    let runtime = || {
        runtime_cell
            .get_or_init(|| onnx_ac_passes::runtime_weights::read_weights_at_run_time(g, info))
            .as_ref()
    };
    let (g, info, mut plan) = match plan.runtime_weights.then(runtime).flatten() {
        Some((g2, _)) => (g2, info, plan),
        None => (
            g,
            info,
            RecomputePlan {
                runtime_weights: false,
                ..plan
            },
        ),
    };
    if let PlanSource::File(path) = &opts.source {
        check_plan_names(&plan, g).map_err(|reason| Error::Output {
            path: path.clone(),
            reason,
        })?;
    }
    let mut values = plan.resolve(g).map_err(from_file)?;
    let (mut rg, mut after) = rewrite(g, info, &values, opts.rewrite).map_err(from_file)?;
    // A search planner's plan that misses the budget is its best effort: never one peaking
    // above recomputing nothing. (The presets ignore the budget: their plan is written as
    // asked.)
    if after.peak_bytes > target
        && !values.is_empty()
        && matches!(&opts.source, PlanSource::Planner(name) if searches(name))
    {
        let (erg, empty) = rewrite(g, info, &[], opts.rewrite).map_err(plan_err)?;
        if empty.peak_bytes < after.peak_bytes {
            values.clear();
            plan = RecomputePlan::new(&plan.planner, target, g, Vec::new());
            (rg, after) = (erg, empty);
        }
    }
    // Missed: ONNX Runtime's folded transposes and prepacked copies of the weights are memory
    // a budget may need (as much again as the weights on a transformer). A searching planner
    // plans again on the graph that reads its weights at run time, which trades the time to
    // transpose and pack per step for that memory: its own plan there, then its plan for the
    // folded weights (whose values exist in both graphs), the first that meets the budget
    // with a wider margin (the simulator is less exact on these graphs: measured exact on
    // GPT-2 8L, +2.3% on LLaMA 8L, but +20% on the small GPT-2 fixture at 30%act).
    let fallback = match &opts.source {
        PlanSource::Planner(name)
            if after.peak_bytes > target && searches(name) && !plan.runtime_weights =>
        {
            runtime().map(|r| (r, name))
        }
        _ => None,
    };
    let (g, info) = match fallback {
        Some(((g2, _), name)) => {
            let runtime_target = budget - budget / RUNTIME_WEIGHTS_MARGIN_DIVISOR;
            let mut best: Option<(RecomputePlan, Vec<ValueId>, Graph, Simulation)> = None;
            let mut found = search(g2, info, name)?;
            found.runtime_weights = true;
            let carried = RecomputePlan {
                runtime_weights: true,
                ..plan.clone()
            };
            for candidate in [found, carried] {
                let values2 = candidate.resolve(g2).map_err(plan_err)?;
                let (rg2, after2) = rewrite(g2, info, &values2, opts.rewrite).map_err(plan_err)?;
                if after2.peak_bytes <= runtime_target {
                    best = Some((candidate, values2, rg2, after2));
                    break;
                }
            }
            match best {
                Some((plan2, values2, rg2, after2)) => {
                    (plan, values, rg, after) = (plan2, values2, rg2, after2);
                    (g2, info)
                }
                _ => (g, info),
            }
        }
        None => (g, info),
    };
    if after.peak_bytes > target && !opts.best_effort {
        let mut reached = after.peak_bytes;
        if let PlanSource::Planner(name) = &opts.source {
            if !plan.runtime_weights {
                reached = reached_by_suggestion(g, info, name, cost, reached, &base, opts.rewrite)?;
            }
        }
        return Err(unreachable_error(
            g,
            info,
            budget,
            reached,
            base.peak_bytes,
            &opts.source,
            &opts.bound_dims,
        ));
    }
    // The reported recomputation time is that of the default (defended) rewrite, which the
    // planners score: the rewrite just made when it is the one asked for, else made again.
    let added_time_s = if opts.rewrite == RewriteOptions::default() {
        plan::recompute_time(&rg, cost)
    } else {
        evaluate(g, info, &values, cost)
            .map_err(plan_err)?
            .1
            .added_time_s
    };
    let order = plan::simulate::ort_default_order(g);
    let kept = report::Kept::new(g, &rg);
    let decisions = report::decisions(g, &order, &kept, &values, cost);
    let step_before: f64 = g.node_ids().map(|n| cost(g, n)).sum();
    let recomputed = decisions
        .iter()
        .filter(|d| d.decision == "RECOMPUTE")
        .count();
    let recomputed_bytes: u64 = decisions
        .iter()
        .filter(|d| d.decision == "RECOMPUTE")
        .map(|d| d.median_mem_size_bytes)
        .sum();
    let share = |b: u64| 100.0 * b as f64 / kept.before_bytes.max(1) as f64;
    let step_matmul_flops = crate::cost::matmul_flops(g, g.node_ids());
    let added_matmul_flops = crate::cost::matmul_flops(
        &rg,
        rg.node_ids()
            .filter(|n| is_recompute_work(&rg, rg.node(*n))),
    );
    let reduction = base.peak_bytes as i64 - after.peak_bytes as i64;
    let summary = Summary {
        format: "onnx-ac-summary",
        version: 1,
        planner: plan.planner.clone(),
        cost_model: cost_name.to_string(),
        budget_bytes: budget,
        budget_requested: opts.budget.spec(),
        initial_peak_bytes: base.peak_bytes,
        final_peak_bytes: after.peak_bytes,
        peak_source: "simulated".into(),
        reduction_bytes: reduction,
        reduction_percent: 100.0 * reduction as f64 / base.peak_bytes.max(1) as f64,
        initial_step_time_s: step_before,
        final_step_time_s: step_before + added_time_s,
        step_time_source: format!("estimated ({cost_name})"),
        overhead_s: added_time_s,
        overhead_percent: 100.0 * added_time_s / step_before.max(1e-12),
        overhead_spread_percent: None,
        overhead_within_noise: None,
        recompute_time_s: added_time_s,
        retained_activations: kept.after.len(),
        recomputed_activations: recomputed,
        retained_percent: share(kept.after_bytes),
        recomputed_percent: share(recomputed_bytes),
        retained_memory_bytes: kept.after_bytes,
        saved_memory_bytes: kept.before_bytes.saturating_sub(kept.after_bytes),
        simulated_initial_peak_bytes: base.peak_bytes,
        simulated_final_peak_bytes: after.peak_bytes,
        unallocated_bytes: after.peak_bytes - after.counted_peak_bytes,
        within_budget: after.peak_bytes <= budget,
        step_matmul_flops,
        added_matmul_flops,
        added_matmul_flops_percent: 100.0 * added_matmul_flops / step_matmul_flops.max(1.0),
        runtime_weights_bytes: plan
            .runtime_weights
            .then(runtime)
            .flatten()
            .map(|r| r.1.bytes),
        verify: None,
        warnings: Vec::new(),
        written: Vec::new(),
    };
    let summary = Summary {
        warnings: summary.peak_warnings(),
        ..summary
    };
    let mut rewritten = model.clone();
    rewritten.graph = rg;
    rewritten.metadata.push((
        "onnx_ac.recompute".into(),
        format!(
            "planner={}; budget_bytes={budget}; recomputed={}",
            plan.planner,
            values.len()
        ),
    ));
    Ok(Planned {
        plan,
        rewritten,
        summary,
        decisions,
    })
}

/// The rewrite of `plan` on the training graph `model` again, pass by pass through `manager`
/// (`runtime-weights` when the plan reads weights at run time, then `recompute`, `pin-late`
/// and `hide-backward-shapes` as `opts` asks), for `--dump-after` and `--stop-after`: the
/// rewrite [`plan_and_rewrite`] made (when it stopped, the graph after the stop-after pass).
pub fn rewrite_passes(
    model: &Model,
    info: &TrainingInfo,
    plan: &RecomputePlan,
    opts: RewriteOptions,
    manager: &mut onnx_ac_passes::pass::Manager<'_>,
) -> Result<Model> {
    let internal = |e: onnx_ac_passes::pass::PassError| Error::Internal(e.to_string());
    let mut unit = onnx_ac_passes::pass::Unit::training(model.clone(), info.clone());
    unit.runtime_weights = plan.runtime_weights;
    unit.rewrite = opts;
    manager
        .run(&mut unit, "runtime-weights", "runtime-weights")
        .map_err(internal)?;
    // The plan names values of the graph it was made for: with its weights read at run
    // time, that graph.
    unit.recompute = plan.resolve(&unit.model.graph).map_err(plan_err)?;
    manager
        .run(&mut unit, "recompute", "hide-backward-shapes")
        .map_err(internal)?;
    Ok(unit.model)
}

/// A plan written by `--save-plan`, checked against the training graph `g`.
fn read_plan_file(path: &std::path::Path) -> Result<RecomputePlan> {
    let bad = |reason: String| Error::Output {
        path: path.to_path_buf(),
        reason,
    };
    let text = crate::safefs::read_input_text(path, crate::safefs::JSON_LIMIT_BYTES)
        .map_err(|e| bad(e.to_string()))?;
    let p: RecomputePlan =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a plan file: {e}")))?;
    if p.format != plan::PLAN_FORMAT || p.version != 1 {
        return Err(bad(format!(
            "format {} version {} is not onnx-ac-plan version 1",
            p.format, p.version
        )));
    }
    Ok(p)
}

/// The planners that search for a plan under the budget (the presets ignore it).
fn searches(planner: &str) -> bool {
    matches!(planner, "ac" | "optimal" | "mutwo")
}

/// How many names a message lists before "and N more".
const LIST_NAMES: usize = 5;

/// A plan file's names must be distinct values of this training graph; lists the
/// offenders (a plan of another model, or a hand-edited one).
fn check_plan_names(p: &RecomputePlan, g: &onnx_ac_passes::ir::Graph) -> Result<(), String> {
    let by_name = g.value_by_name();
    let list = |names: &[&str]| {
        let mut s: Vec<String> = names
            .iter()
            .take(LIST_NAMES)
            .map(|n| format!("'{n}'"))
            .collect();
        if names.len() > LIST_NAMES {
            s.push(format!("and {} more", names.len() - LIST_NAMES));
        }
        s.join(", ")
    };
    let unknown: Vec<&str> = p
        .recompute
        .iter()
        .map(String::as_str)
        .filter(|n| !by_name.contains_key(n))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "the plan names {} value(s) the training graph does not have (a plan of another model?): {}",
            unknown.len(),
            list(&unknown)
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut dups: Vec<&str> = Vec::new();
    for n in &p.recompute {
        if !seen.insert(n.as_str()) && !dups.contains(&n.as_str()) {
            dups.push(n);
        }
    }
    if !dups.is_empty() {
        return Err(format!(
            "the plan names {} value(s) more than once: {}",
            dups.len(),
            list(&dups)
        ));
    }
    Ok(())
}

fn plan_err(e: plan::PlanError) -> Error {
    match e {
        // `optimal` out of time is the choice of planner and budget, not a bug: exit 2 with
        // its advice (a larger budget or another planner), never "internal error".
        plan::PlanError::UnknownPlanner(_) | plan::PlanError::Solver(_) => {
            Error::Usage(e.to_string())
        }
        other => Error::Internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimal_out_of_time_is_a_usage_error_not_an_internal_one() {
        let e = plan_err(plan::PlanError::Solver(
            "the integer program was not solved to optimality within 60 s; use a larger budget or another planner".into(),
        ));
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(
            text.starts_with("planner optimal: the integer program"),
            "{text}"
        );
    }
}
