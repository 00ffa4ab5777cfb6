//! `tradeoff` and `sweep`: the planner's curve and a grid of configurations.

use super::*;

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
