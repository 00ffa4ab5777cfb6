//! The subcommands (binary only): turn the parsed arguments into the library's typed options,
//! call it, write and print what it returns.

pub mod estimate;

use crate::cli::{
    BatchNormMode, InspectArgs, LossArgs, LossKind, MainArgs, ModelArgs, OptimizerKind, TrainArgs,
    TrainGraphArgs, VerifyArgs,
};
use onnx_ac::pipeline::{plan_and_rewrite, PlanOptions, PlanSource};
use onnx_ac::{Error, Result};
use onnx_ac_passes::autodiff::{self, Loss, TrainOptions};
use onnx_ac_passes::ir::Model;
use onnx_ac_passes::recompute::RewriteOptions;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn dims_map(dims: &[(String, i64)]) -> BTreeMap<String, i64> {
    dims.iter().cloned().collect()
}

fn load(m: &ModelArgs) -> Result<Model> {
    onnx_ac::load_model(&m.model, &dims_map(&m.dims))
}

/// Turns the loss flags into options; without --loss, the model decides (see
/// `inspect::default_loss`).
pub fn train_options(model: &Model, a: &LossArgs) -> Result<TrainOptions> {
    let loss = match a.loss {
        None => match onnx_ac::inspect::default_loss(model) {
            Loss::CrossEntropy { logits, .. } => Loss::CrossEntropy {
                logits: a.logits.clone().unwrap_or(logits),
                labels: a.labels.clone(),
            },
            other => other,
        },
        Some(LossKind::Output) => Loss::Auto,
        Some(LossKind::CrossEntropy) => {
            let logits = match &a.logits {
                Some(l) => l.clone(),
                None => match onnx_ac::inspect::default_loss(model) {
                    Loss::CrossEntropy { logits, .. } => logits,
                    _ => {
                        return Err(Error::Usage(
                            "--loss cross-entropy needs --logits OUTPUT".into(),
                        ))
                    }
                },
            };
            Loss::CrossEntropy {
                logits,
                labels: a.labels.clone(),
            }
        }
        Some(LossKind::Mse) => Loss::Mse {
            output: a.output.clone(),
            target: a.target.clone(),
        },
    };
    Ok(TrainOptions {
        loss,
        freeze: a.freeze.clone(),
        batch_norm_train: a.batch_norm == BatchNormMode::Train,
        params_as_inputs: a.params_as_inputs || a.optimizer.is_some(),
        optimizer: optimizer(a)?,
    })
}

/// The optimizer step of the flags, with their ranges checked.
fn optimizer(a: &LossArgs) -> Result<Option<autodiff::Optimizer>> {
    use autodiff::OptimizerRule as R;
    let Some(kind) = a.optimizer else {
        return Ok(None);
    };
    let bad = |flag: &str, v: f64, range: &str| {
        Err(Error::Usage(format!(
            "{flag} {v} is out of range: it must be {range}"
        )))
    };
    let in_unit = |v: f64| (0.0..1.0).contains(&v);
    if !(a.lr.is_finite() && a.lr > 0.0) {
        return bad("--lr", a.lr, "a positive number");
    }
    let weight_decay = a.weight_decay.unwrap_or(match kind {
        OptimizerKind::Adamw => 0.01,
        _ => 0.0,
    });
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return bad("--weight-decay", weight_decay, "0 or more");
    }
    let rule = match kind {
        OptimizerKind::Sgd => R::Sgd,
        OptimizerKind::Momentum => {
            if !in_unit(a.momentum) {
                return bad("--momentum", a.momentum, "in [0, 1)");
            }
            R::Momentum {
                momentum: a.momentum,
            }
        }
        OptimizerKind::Adamw => {
            let [beta1, beta2] = a.betas[..] else {
                return Err(Error::Usage(format!(
                    "--betas takes two numbers B1,B2 (got {})",
                    a.betas.len()
                )));
            };
            for b in [beta1, beta2] {
                if !in_unit(b) {
                    return bad("--betas", b, "in [0, 1)");
                }
            }
            if !(a.eps.is_finite() && a.eps > 0.0) {
                return bad("--eps", a.eps, "a positive number");
            }
            R::AdamW {
                beta1,
                beta2,
                eps: a.eps,
            }
        }
    };
    Ok(Some(autodiff::Optimizer {
        rule,
        lr: a.lr,
        weight_decay,
    }))
}

pub fn inspect(a: &InspectArgs) -> Result<()> {
    let stage = onnx_ac::console::Stage::start(&format!("inspecting {}", a.model.model.display()));
    let m = load(&a.model)?;
    let opts = train_options(&m, &a.loss)?;
    let report = onnx_ac::inspect::inspect(&m, &opts);
    drop(stage);
    if a.json {
        let s =
            serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
        onnx_ac::console::print(&(s + "\n"))?;
    } else {
        onnx_ac::console::print(&report.to_text())?;
    }
    Ok(())
}

/// Builds the training graph of a loaded model.
pub fn training_graph(
    m: &Model,
    a: &LossArgs,
    path: &std::path::Path,
) -> Result<(Model, autodiff::TrainingInfo)> {
    let opts = train_options(m, a)?;
    autodiff::build_training_graph(m, &opts).map_err(|e| Error::Training {
        path: path.to_path_buf(),
        source: e,
    })
}

/// The input files of a command reading `model` (loaded from `path`): the model and its
/// external data, for [`onnx_ac::output::check`].
pub fn model_inputs(model: &Model, path: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut inputs = vec![("the input model", path.to_path_buf())];
    for f in onnx_ac::onnx::external_files(model) {
        inputs.push(("external data of the input model", f));
    }
    inputs
}

/// `-o OUT` and the `OUT.data` file a model with external data is saved with.
pub fn model_outputs(out: &Path) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("-o", out.to_path_buf()),
        (
            "-o's external data",
            onnx_ac::output::with_suffix(out, ".data"),
        ),
    ]
}

/// [`onnx_ac::output::check`] on owned pairs.
pub fn check_outputs(
    outputs: &[(&'static str, PathBuf)],
    inputs: &[(&'static str, PathBuf)],
) -> Result<()> {
    let o: Vec<(&str, &Path)> = outputs.iter().map(|(w, p)| (*w, p.as_path())).collect();
    let i: Vec<(&str, &Path)> = inputs.iter().map(|(w, p)| (*w, p.as_path())).collect();
    Ok(onnx_ac::output::check(&o, &i)?)
}

pub fn train_graph(a: &TrainGraphArgs) -> Result<()> {
    let stage = onnx_ac::console::Stage::start(&format!(
        "building the training graph of {}",
        a.model.model.display()
    ));
    let m = load(&a.model)?;
    let mut outputs = model_outputs(&a.out);
    outputs.extend(a.init_state.iter().map(|p| ("--init-state", p.clone())));
    check_outputs(&outputs, &model_inputs(&m, &a.model.model))?;
    check_init_state(&a.init_state, &a.loss)?;
    let (tm, info) = training_graph(&m, &a.loss, &a.model.model)?;
    let mut staging = onnx_ac::output::Staging::new();
    onnx_ac::onnx::save_staged(
        &tm,
        &a.out,
        &onnx_ac::onnx::SaveOptions::default(),
        &mut staging,
    )?;
    if let Some(p) = &a.init_state {
        stage_init_state(&tm, &a.model.model, p, &mut staging)?;
    }
    staging.commit()?;
    drop(stage);
    let outputs = match &info.optimizer {
        Some(o) => format!(
            "loss + {} updated parameters and state ({})",
            info.step_outputs.len(),
            o.describe()
        ),
        None => format!("loss + {} gradients", info.grads.len()),
    };
    onnx_ac::console::eprint_line(&format!(
        "wrote {}: {outputs}, {} forward and {} backward nodes",
        a.out.display(),
        info.forward_end,
        tm.graph.nodes.len() - info.forward_end
    ));
    Ok(())
}

pub fn main_command(a: &MainArgs) -> Result<()> {
    let model_path = a
        .model
        .as_ref()
        .ok_or_else(|| Error::Usage("missing MODEL".into()))?;
    let out = a
        .out
        .as_ref()
        .ok_or_else(|| Error::Usage("missing -o OUT".into()))?;
    let budget = a
        .budget
        .ok_or_else(|| Error::Usage("missing --budget".into()))?;
    let dumps = Dumps::new(a)?;
    let mut passes = dumps.manager(a)?;
    let stage = onnx_ac::console::Stage::start(&format!("loading {}", model_path.display()));
    let m = onnx_ac::load_model_with(model_path, &dims_map(&a.dims), &mut passes)?;
    if dumps.flush(&passes)? {
        return Ok(());
    }
    let mut outputs = model_outputs(out);
    outputs.extend(a.decisions.iter().map(|p| ("--decisions", p.clone())));
    outputs.extend(a.plan.save_plan.iter().map(|p| ("--save-plan", p.clone())));
    outputs.extend(a.init_state.iter().map(|p| ("--init-state", p.clone())));
    outputs.extend(a.report.iter().map(|p| ("--report", p.clone())));
    let mut inputs = model_inputs(&m, model_path);
    inputs.extend(a.plan.plan_file.iter().map(|p| ("--plan", p.clone())));
    inputs.extend(a.plan.profile.iter().map(|p| ("--profile", p.clone())));
    check_outputs(&outputs, &inputs)?;
    check_init_state(&a.init_state, &a.loss)?;
    drop(stage);
    let stage = onnx_ac::console::Stage::start("building the training graph");
    let opts = train_options(&m, &a.loss)?;
    let (tm, info) = autodiff::build_training_graph_with(&m, &opts, &mut passes).map_err(|e| {
        Error::Training {
            path: model_path.to_path_buf(),
            source: e,
        }
    })?;
    drop(stage);
    if dumps.flush(&passes)? {
        return Ok(());
    }
    let build = |dims: &BTreeMap<String, i64>| {
        let m = onnx_ac::load_model(model_path, dims)?;
        training_graph(&m, &a.loss, model_path)
    };
    let shape = onnx_ac::pipeline::ProfileShape {
        dims: dims_map(&a.dims),
        budget,
        limit: a.plan.profile_limit,
        verify: a.verify,
        build: &build,
    };
    let costs = onnx_ac::pipeline::select(
        &tm,
        &info,
        &a.plan.cost_choice(),
        &a.runtime.choice(),
        model_path,
        &shape,
    )?;
    if let Some(note) = &costs.note {
        onnx_ac::console::eprint_line(note);
    }
    let source = match (&a.plan.plan_file, &a.plan.policy) {
        (Some(p), _) => PlanSource::File(p.clone()),
        (None, Some(policy)) => PlanSource::Planner(policy.clone()),
        (None, None) => PlanSource::Planner(a.plan.planner.clone()),
    };
    let opts = PlanOptions {
        budget,
        source,
        best_effort: a.plan.best_effort,
        rewrite: RewriteOptions::defended(!a.plan.no_pin),
        bound_dims: a.dims.clone(),
    };
    let stage = onnx_ac::console::Stage::start("planning and rewriting");
    let cost_fn =
        |g: &onnx_ac_passes::ir::Graph, n: onnx_ac_passes::ir::NodeId| costs.node_time(g, n);
    let mut planned = plan_and_rewrite(&tm, &info, &opts, &cost_fn, &costs.description)?;
    drop(stage);
    if passes.observes("runtime-weights", "hide-backward-shapes") {
        onnx_ac::pipeline::rewrite_passes(&tm, &info, &planned.plan, opts.rewrite, &mut passes)?;
        if dumps.flush(&passes)? {
            return Ok(());
        }
    }
    if a.verify {
        let stage = onnx_ac::console::Stage::start(&format!(
            "verifying in ONNX Runtime ({} timed runs of each graph)",
            a.runtime.runs
        ));
        let report = onnx_ac::compare::verify_models(
            model_path,
            &tm,
            &planned.rewritten,
            &a.runtime.choice(),
        )?;
        drop(stage);
        let failed = !report.passed;
        planned.summary.record_verification(report);
        if failed {
            return Err(Error::VerifyFailed(
                planned
                    .summary
                    .verify
                    .as_ref()
                    .map(|v| v.one_line())
                    .unwrap_or_default(),
            ));
        }
    }
    planned.summary.warnings = planned.summary.peak_warnings();
    // The report shows `ac`'s trade-off curve beside the plan (`tradeoff.rs`).
    let curve = match &a.report {
        Some(_) => {
            let stage =
                onnx_ac::console::Stage::start("planning the trade-off curve for the report");
            let progress = |k: usize, n: usize, what: &str| {
                stage.set_message(&format!(
                    "planning the trade-off curve for the report: plan {k} of {n} ({what})"
                ));
            };
            let topts = onnx_ac::tradeoff::TradeoffOptions {
                planner: "ac".into(),
                points: onnx_ac::html_report::CURVE_POINTS,
                references: true,
                rewrite: opts.rewrite,
            };
            Some(onnx_ac::tradeoff::tradeoff(
                &tm,
                &info,
                &cost_fn,
                &costs.description,
                &topts,
                &progress,
            )?)
        }
        None => None,
    };
    let stage = onnx_ac::console::Stage::start(&format!("writing {}", out.display()));
    // Every output is staged and all are renamed into place together: a failure on any
    // leaves none of them (nor a temporary) behind.
    let mut staging = onnx_ac::output::Staging::new();
    onnx_ac::onnx::save_staged(
        &planned.rewritten,
        out,
        &onnx_ac::onnx::SaveOptions::default(),
        &mut staging,
    )?;
    if let Some(path) = &a.decisions {
        let csv = onnx_ac::report::decisions_csv(&planned.decisions);
        staging.write(path, csv.as_bytes())?;
    }
    if let Some(path) = &a.plan.save_plan {
        let text = serde_json::to_string_pretty(&planned.plan)
            .map_err(|e| Error::Internal(e.to_string()))?;
        staging.write(path, (text + "\n").as_bytes())?;
    }
    if let Some(path) = &a.init_state {
        stage_init_state(&tm, model_path, path, &mut staging)?;
    }
    if let Some(path) = &a.report {
        let html = onnx_ac::html_report::render(&onnx_ac::html_report::ReportInput {
            model_path,
            plain: &tm.graph,
            info: &info,
            planned: &planned,
            tradeoff: curve.as_ref(),
        });
        staging.write(path, html.as_bytes())?;
    }
    let mut written = staging.destinations();
    written.sort_by_key(|p| p != out); // the model first, then its external data
    staging.commit()?;
    drop(stage);
    planned.summary.written = written
        .iter()
        .map(|p| onnx_ac::report::WrittenFile {
            path: p.display().to_string(),
            bytes: std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
        })
        .collect();
    if a.json {
        let text = serde_json::to_string_pretty(&planned.summary)
            .map_err(|e| Error::Internal(e.to_string()))?;
        onnx_ac::console::print(&(text + "\n"))?;
    } else {
        onnx_ac::console::print(&planned.summary.to_text())?;
    }
    Ok(())
}

/// Model metadata the training graph builder writes (`passes/src/autodiff`).
const TRAINING_GRAPH_KEY: &str = "onnx_ac.training_graph";

pub fn verify(a: &VerifyArgs) -> Result<()> {
    // Both graphs must take the same inputs; the original's decide them.
    let original = onnx_ac::onnx::load(&a.original)?;
    let rewritten = onnx_ac::onnx::load(&a.rewritten)?;
    // Two forward models would "pass" by comparing their outputs alone.
    for (path, m) in [(&a.original, &original), (&a.rewritten, &rewritten)] {
        if !m.metadata.iter().any(|(k, _)| k == TRAINING_GRAPH_KEY) {
            return Err(Error::Usage(format!(
                "{} is not a training graph (no {TRAINING_GRAPH_KEY} metadata): verify compares \
                 the loss and gradients of two training graphs; write the original with \
                 `onnx-ac train-graph MODEL -o TRAIN.onnx` and the rewritten one with the main \
                 command",
                path.display()
            )));
        }
    }
    let names = |m: &Model| -> Vec<String> {
        m.graph
            .inputs
            .iter()
            .filter(|&&i| m.graph.value(i).initializer.is_none())
            .map(|&i| m.graph.value(i).name.clone())
            .collect()
    };
    if names(&original) != names(&rewritten) {
        return Err(Error::Usage(format!(
            "{} and {} have different inputs ({:?} vs {:?})",
            a.original.display(),
            a.rewritten.display(),
            names(&original),
            names(&rewritten)
        )));
    }
    let inputs = onnx_ac::profile::inputs_for(&original.graph)?;
    let stage = onnx_ac::console::Stage::start(&format!(
        "running both graphs in ONNX Runtime ({} timed runs of each)",
        a.runtime.runs
    ));
    let report = onnx_ac::compare::verify(
        &a.original,
        &a.rewritten,
        &inputs,
        &a.runtime.choice().run_options(),
        a.runtime.runs,
    )?;
    drop(stage);
    if a.json {
        let text =
            serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
        onnx_ac::console::print(&(text + "\n"))?;
    } else {
        onnx_ac::console::print(&(report.one_line() + "\n"))?;
    }
    if report.passed {
        Ok(())
    } else {
        Err(Error::VerifyFailed(report.one_line()))
    }
}

/// `onnx-ac train`: the step in a loop, about ten loss lines, the final state written last.
pub fn train(a: &TrainArgs) -> Result<()> {
    let m = onnx_ac::load_model(&a.model, &dims_map(&a.dims))?;
    let mut outputs = Vec::new();
    if let Some(out) = &a.out {
        outputs.extend(model_outputs(out));
    }
    outputs.extend(a.save_state.iter().map(|p| ("--save-state", p.clone())));
    let mut inputs = model_inputs(&m, &a.model);
    inputs.extend(a.state.iter().map(|p| ("--state", p.clone())));
    inputs.extend(a.data.iter().map(|p| ("--data", p.clone())));
    check_outputs(&outputs, &inputs)?;
    let state_names = onnx_ac::train::state_names(&m);
    let initial = match &a.state {
        Some(p) => Some(onnx_ac::state::read(
            p,
            &onnx_ac::state::slots(&m, &state_names),
        )?),
        None => None,
    };
    let data = match &a.data {
        Some(p) => {
            let inputs = onnx_ac::batches::data_inputs(&m.graph).map_err(Error::Usage)?;
            onnx_ac::train::Data::File(onnx_ac::batches::read_npz(p, &inputs)?)
        }
        None => onnx_ac::train::Data::Random {
            seed: a.seed,
            same_batch: a.same_batch,
        },
    };
    let opts = onnx_ac::runtime::RunOptions {
        measure_peak: true,
        ..a.runtime.choice().run_options()
    };
    onnx_ac::runtime::init(a.runtime.ort_lib.as_deref())?;
    let bar = onnx_ac::console::Stage::start(&format!("training {} steps", a.steps));
    let mut lines = String::new();
    // About ten loss lines whatever the number of steps: the first, every tenth, the last.
    let every = a.steps.div_ceil(10).max(1);
    let mut on_step = |k: usize, loss: f64, seconds: f64, peak: Option<u64>| {
        bar.set_message(&format!(
            "step {}/{}: loss {loss:.4}, {:.2} ms, peak {}",
            k + 1,
            a.steps,
            seconds * 1e3,
            peak.map_or("not measured".to_string(), onnx_ac::size::human_bytes)
        ));
        if k == 0 || (k + 1) % every == 0 || k + 1 == a.steps {
            lines.push_str(&format!("step {:>6}  loss {loss:.6}\n", k + 1));
        }
    };
    let t = onnx_ac::train::TrainOptions {
        steps: a.steps,
        data,
        initial,
        io_binding: !a.no_io_binding,
    };
    let (report, state) = onnx_ac::train::train(&m, &a.model, &t, &opts, &mut on_step)?;
    drop(bar);
    let mut times = report.step_times_s.clone();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let (first, last) = (report.losses[0], report.losses[report.losses.len() - 1]);
    lines.push_str(&format!(
        "trained {} steps: loss {first:.6} -> {last:.6}, median step {:.2} ms, step peak {} measured\n",
        a.steps,
        median * 1e3,
        report
            .peak_bytes
            .map_or("not".to_string(), onnx_ac::size::human_bytes)
    ));
    let mut staging = onnx_ac::output::Staging::new();
    if let Some(out) = &a.out {
        let trained = onnx_ac::train::with_state(&m, &state)?;
        onnx_ac::onnx::save_staged(
            &trained,
            out,
            &onnx_ac::onnx::SaveOptions::default(),
            &mut staging,
        )?;
    }
    if let Some(p) = &a.save_state {
        staging.write(p, &onnx_ac::state::to_bytes(&state)?)?;
    }
    let written = staging.destinations();
    staging.commit()?;
    for p in written {
        lines.push_str(&format!("wrote {}\n", p.display()));
    }
    Ok(onnx_ac::console::print(&lines)?)
}

/// `--init-state` needs parameters as inputs: refused before any work otherwise.
fn check_init_state(init_state: &Option<PathBuf>, loss: &LossArgs) -> Result<()> {
    if init_state.is_some() && loss.optimizer.is_none() && !loss.params_as_inputs {
        return Err(Error::Usage(
            "--init-state needs a step with parameters as inputs: add --optimizer \
             sgd|momentum|adamw or --params-as-inputs"
                .into(),
        ));
    }
    Ok(())
}

/// `--init-state FILE`: the initial parameters and optimizer state of the step `tm` (built
/// from `model_path`), staged with the command's other outputs.
fn stage_init_state(
    tm: &Model,
    model_path: &Path,
    path: &Path,
    staging: &mut onnx_ac::output::Staging,
) -> Result<()> {
    let names = onnx_ac::state::inputs_with_defaults(tm);
    let tensors = onnx_ac::state::defaults(tm, model_path, &names)?;
    staging.write(path, &onnx_ac::state::to_bytes(&tensors)?)?;
    Ok(())
}

/// `onnx-ac tradeoff`: the planner's curve on the model's training graph (`tradeoff.rs`).
pub fn tradeoff(a: &crate::cli::TradeoffArgs) -> Result<()> {
    let model_path = &a.model.model;
    let stage = onnx_ac::console::Stage::start(&format!("loading {}", model_path.display()));
    let m = load(&a.model)?;
    let mut outputs: Vec<(&'static str, PathBuf)> =
        a.out.iter().map(|p| ("-o", p.clone())).collect();
    outputs.extend(a.chart.iter().map(|p| ("--chart", p.clone())));
    let mut inputs = model_inputs(&m, model_path);
    inputs.extend(a.profile.iter().map(|p| ("--profile", p.clone())));
    check_outputs(&outputs, &inputs)?;
    drop(stage);
    let stage = onnx_ac::console::Stage::start("building the training graph");
    let (tm, info) = training_graph(&m, &a.loss, model_path)?;
    drop(stage);
    let choice = onnx_ac::pipeline::CostChoice {
        cost: a.cost.clone(),
        profile: a.profile.clone(),
        device: a.device.clone(),
    };
    let build = |dims: &BTreeMap<String, i64>| {
        let m = onnx_ac::load_model(model_path, dims)?;
        training_graph(&m, &a.loss, model_path)
    };
    let shape = onnx_ac::pipeline::ProfileShape {
        dims: dims_map(&a.model.dims),
        // The measured cost model profiles the step as it is when it fits this much.
        budget: onnx_ac::size::Budget::Percent(100.0),
        limit: None,
        verify: false,
        build: &build,
    };
    let costs =
        onnx_ac::pipeline::select(&tm, &info, &choice, &a.runtime.choice(), model_path, &shape)?;
    if let Some(note) = &costs.note {
        onnx_ac::console::eprint_line(note);
    }
    let cost_fn =
        |g: &onnx_ac_passes::ir::Graph, n: onnx_ac_passes::ir::NodeId| costs.node_time(g, n);
    let opts = onnx_ac::tradeoff::TradeoffOptions {
        planner: a.planner.clone(),
        points: a.points as usize,
        references: !a.no_references,
        rewrite: RewriteOptions::defended(true),
    };
    let stage = onnx_ac::console::Progress::start(
        "planning the curve",
        a.points as usize + if a.no_references { 0 } else { 4 },
    );
    let progress = |k: usize, _n: usize, what: &str| {
        stage.set(k - 1, &format!("planning the curve: {what}"));
    };
    let curve =
        onnx_ac::tradeoff::tradeoff(&tm, &info, &cost_fn, &costs.description, &opts, &progress)?;
    drop(stage);
    let files = [(&a.out, curve.to_csv()), (&a.chart, curve.to_svg())];
    write_then_print(&files, a.json, &curve, &|| curve.to_text())
}

/// Writes the files asked for (all or none: staged, then renamed together), then prints
/// `value` as JSON or as its text.
fn write_then_print<T: serde::Serialize>(
    files: &[(&Option<PathBuf>, String)],
    json: bool,
    value: &T,
    text: &dyn Fn() -> String,
) -> Result<()> {
    let mut staging = onnx_ac::output::Staging::new();
    for (path, body) in files {
        if let Some(path) = path {
            staging.write(path, body.as_bytes())?;
        }
    }
    staging.commit()?;
    if json {
        let text =
            serde_json::to_string_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(onnx_ac::console::print(&(text + "\n"))?)
    } else {
        Ok(onnx_ac::console::print(&text())?)
    }
}

/// `onnx-ac sweep`: every combination of the `--dim` lists planned under one budget
/// (`sweep.rs`).
pub fn sweep(a: &crate::cli::SweepArgs) -> Result<()> {
    let model_path = &a.model;
    let configs = onnx_ac::sweep::configs(&a.dims)?;
    // Check the model loads and the outputs are safe before planning anything.
    let stage = onnx_ac::console::Stage::start(&format!("loading {}", model_path.display()));
    let first: BTreeMap<String, i64> = configs[0].iter().cloned().collect();
    let m = onnx_ac::load_model(model_path, &first)?;
    let mut outputs: Vec<(&'static str, PathBuf)> =
        a.out.iter().map(|p| ("-o", p.clone())).collect();
    outputs.extend(a.heatmap.iter().map(|p| ("--heatmap", p.clone())));
    check_outputs(&outputs, &model_inputs(&m, model_path))?;
    drop(stage);
    let measured = a.cost.as_deref() == Some("measured");
    let choice = onnx_ac::pipeline::CostChoice {
        cost: a.cost.clone(),
        profile: None,
        device: a.device.clone(),
    };
    let runtime = a.runtime.choice();
    let build = |dims: &BTreeMap<String, i64>| {
        let m = onnx_ac::load_model(model_path, dims)?;
        training_graph(&m, &a.loss, model_path)
    };
    let costs = |tm: &Model, info: &autodiff::TrainingInfo, dims: &BTreeMap<String, i64>| {
        let shape = onnx_ac::pipeline::ProfileShape {
            dims: dims.clone(),
            budget: a.budget,
            limit: None,
            verify: false,
            build: &build,
        };
        let c = onnx_ac::pipeline::select(tm, info, &choice, &runtime, model_path, &shape)?;
        let name = c.description.clone();
        let f: onnx_ac::sweep::NodeTimeFn = Box::new(move |g, n| c.model.node_time(g, n));
        Ok((f, name))
    };
    let stage = onnx_ac::console::Progress::start("planning configurations", configs.len());
    let progress = |_k: usize, _n: usize| stage.inc();
    let opts = onnx_ac::sweep::SweepOptions {
        planner: a.planner.clone(),
        budget: a.budget,
        budget_text: a.budget.to_string(),
        parallel: !measured,
        build: &build,
        costs: &costs,
        progress: &progress,
    };
    let result = onnx_ac::sweep::sweep(&configs, &opts);
    drop(stage);
    let files = [(&a.out, result.to_csv()), (&a.heatmap, result.to_svg())];
    write_then_print(&files, a.json, &result, &|| result.to_text())
}

/// The `profile` command: load, build the training graph, profile it, save the profile and
/// print a one-paragraph summary on stderr.
pub fn profile(a: &crate::cli::ProfileArgs) -> Result<()> {
    let dims = a.model.dims.iter().cloned().collect();
    let stage = onnx_ac::console::Stage::start(&format!(
        "building the training graph of {}",
        a.model.model.display()
    ));
    let m = onnx_ac::load_model(&a.model.model, &dims)?;
    check_outputs(&[("-o", a.out.clone())], &model_inputs(&m, &a.model.model))?;
    let (tm, _) = training_graph(&m, &a.loss, &a.model.model)?;
    drop(stage);
    let started = std::time::Instant::now();
    let p = onnx_ac::profile::profile_training_graph(&tm, &a.model.model, &a.options())
        .map_err(onnx_ac::Error::from)?;
    p.save(&a.out).map_err(onnx_ac::Error::from)?;
    onnx_ac::console::eprint_line(&format!(
        "wrote {}: {} nodes, {} runs on {} in {:.1} s; step {:.2} ms (kernels {:.2} ms); peak {} (parameters {})",
        a.out.display(),
        p.nodes.len(),
        p.runs,
        p.ep,
        started.elapsed().as_secs_f64(),
        p.step_time_s * 1e3,
        p.kernel_time_s * 1e3,
        p.measured_peak_bytes
            .map_or("not measured".to_string(), onnx_ac::size::human_bytes),
        onnx_ac::size::human_bytes(p.parameter_bytes),
    ));
    for w in &p.warnings {
        onnx_ac::console::eprint_line(&format!("warning: {w}"));
    }
    Ok(())
}

/// `--dump-after`, `--stop-after` and `--dump-dir`: the IR text after the named passes,
/// collected by the pass manager's callback and written between stages.
struct Dumps {
    taken: std::rc::Rc<std::cell::RefCell<Vec<(&'static str, String)>>>,
    dir: Option<PathBuf>,
    active: bool,
    stop: Option<String>,
}

impl Dumps {
    fn new(a: &MainArgs) -> Result<Dumps> {
        if let Some(dir) = &a.dump_dir {
            if a.dump_after.is_empty() && a.stop_after.is_none() {
                return Err(Error::Usage(
                    "--dump-dir needs --dump-after NAME or --stop-after NAME".into(),
                ));
            }
            std::fs::create_dir_all(dir).map_err(|e| Error::Output {
                path: dir.clone(),
                reason: format!("cannot create the dump folder: {e}"),
            })?;
        }
        Ok(Dumps {
            taken: Default::default(),
            dir: a.dump_dir.clone(),
            active: !a.dump_after.is_empty() || a.stop_after.is_some(),
            stop: a.stop_after.clone(),
        })
    }

    /// The pass manager the main command runs its passes through.
    fn manager(&self, a: &MainArgs) -> Result<onnx_ac_passes::pass::Manager<'static>> {
        use onnx_ac_passes::pass::Manager;
        let usage = |e: onnx_ac_passes::pass::PassError| Error::Usage(e.to_string());
        if !self.active {
            return Ok(Manager::new());
        }
        let taken = self.taken.clone();
        let mut m = Manager::new()
            .dump_after(&a.dump_after, move |name, text| {
                taken.borrow_mut().push((name, text.to_string()))
            })
            .map_err(usage)?;
        if let Some(name) = &a.stop_after {
            m = m.stop_after(name).map_err(usage)?;
        }
        Ok(m)
    }

    /// Writes the dumps taken so far; whether the command is to stop (the stop-after pass
    /// ran).
    fn flush(&self, passes: &onnx_ac_passes::pass::Manager<'_>) -> Result<bool> {
        let names = onnx_ac_passes::pass::pass_names();
        for (name, text) in self.taken.borrow_mut().drain(..) {
            match &self.dir {
                Some(dir) => {
                    let k = names.iter().position(|n| *n == name).unwrap_or(0) + 1;
                    let path = dir.join(format!("{k:02}-{name}.ir"));
                    std::fs::write(&path, text).map_err(|e| Error::Output {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                    onnx_ac::console::eprint_line(&format!(
                        "wrote {} (the IR after pass {name})",
                        path.display()
                    ));
                }
                None => {
                    // Names come from the file: no terminal control character reaches
                    // stderr (line breaks are the format's own).
                    let text: String = text
                        .chars()
                        .flat_map(|c| match c {
                            '\n' => vec!['\n'],
                            c if c.is_control() => c.escape_default().collect(),
                            c => vec![c],
                        })
                        .collect();
                    onnx_ac::console::eprint_line(&format!("; IR after pass {name}"));
                    onnx_ac::console::eprint_line(text.trim_end_matches('\n'));
                }
            }
        }
        if passes.stopped() {
            onnx_ac::console::eprint_line(&format!(
                "stopped after pass {} (--stop-after): no output written",
                self.stop.as_deref().unwrap_or("")
            ));
        }
        Ok(passes.stopped())
    }
}
