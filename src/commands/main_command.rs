//! The main command: plan and rewrite under a budget, verify, report, save; `--dump-after`.

use super::*;

pub fn main_command(a: &MainArgs) -> Result<()> {
    let model_path = a
        .model
        .as_ref()
        .ok_or_else(|| Error::Usage("missing MODEL".into()))?;
    // `--stop-after` writes nothing, and a pass before planning needs no budget either.
    let planning = a
        .stop_after
        .as_deref()
        .is_none_or(|p| !stops_before_planning(p));
    let needed = |given: bool, flag: &str| {
        if given || !planning {
            return Ok(());
        }
        Err(Error::Usage(match &a.stop_after {
            Some(p) => format!(
                "--stop-after {p} needs {flag}: the passes from runtime-weights on rewrite the \
                 graph by the plan"
            ),
            None => format!("missing {flag}"),
        }))
    };
    // (Without --stop-after, clap requires -o and --budget; with it, nothing is written.)
    needed(a.budget.is_some(), "--budget")?;
    let dumps = Dumps::new(a)?;
    let mut passes = dumps.manager(a)?;
    let stage = onnx_ac::console::Stage::start(&format!("loading {}", model_path.display()));
    let m = onnx_ac::load_model_with(model_path, &dims_map(&a.dims), &mut passes)?;
    if dumps.flush(&passes)? {
        return Ok(());
    }
    if let Some(out) = &a.out {
        let mut outputs = model_outputs(out);
        outputs.extend(a.decisions.iter().map(|p| ("--decisions", p.clone())));
        outputs.extend(a.plan.save_plan.iter().map(|p| ("--save-plan", p.clone())));
        outputs.extend(a.init_state.iter().map(|p| ("--init-state", p.clone())));
        outputs.extend(a.report.iter().map(|p| ("--report", p.clone())));
        let mut inputs = model_inputs(&m, model_path);
        inputs.extend(a.plan.plan_file.iter().map(|p| ("--plan", p.clone())));
        inputs.extend(a.plan.profile.iter().map(|p| ("--profile", p.clone())));
        check_outputs(&outputs, &inputs)?;
    }
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
    // Checked above unless the run stopped before here.
    let Some(budget) = a.budget else {
        return Err(Error::Internal(
            "--stop-after before planning did not stop".into(),
        ));
    };
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
    // Required by clap unless --stop-after, which stopped above.
    let Some(out) = &a.out else {
        return Err(Error::Internal("--stop-after did not stop".into()));
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
pub(super) const TRAINING_GRAPH_KEY: &str = "onnx_ac.training_graph";

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

/// Whether `--stop-after pass` stops before the plan is needed: the passes up to
/// `order-backward` build the training graph, the later ones rewrite it by the plan.
fn stops_before_planning(pass: &str) -> bool {
    let names = onnx_ac_passes::pass::pass_names();
    let at = |p: &str| names.iter().position(|n| *n == p);
    matches!((at(pass), at("order-backward")), (Some(k), Some(last)) if k <= last)
}
