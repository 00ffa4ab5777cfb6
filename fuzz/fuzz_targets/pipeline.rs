//! Bytes → model → training graph → plan (`ac`, 50%act, best effort) with the analytic cost
//! model → rewrite → export: the main command without ONNX Runtime and without writing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onnx_ac::cli::{BatchNormMode, LossArgs};
use onnx_ac::cost::{AnalyticCost, CostModel, Device, DeviceSpec};
use onnx_ac::pipeline::{plan_and_rewrite, PlanOptions, PlanSource};
use onnx_ac::size::Budget;
use onnx_ac_passes::ir::{Graph, NodeId};
use onnx_ac_passes::recompute::RewriteOptions;
use std::collections::BTreeMap;

#[path = "common.rs"]
mod common;

fn run(path: &std::path::Path) -> onnx_ac::Result<()> {
    let m = onnx_ac::load_model(path, &BTreeMap::new())?;
    let loss = LossArgs {
        loss: None,
        logits: None,
        labels: "labels".into(),
        target: "target".into(),
        output: None,
        freeze: Vec::new(),
        batch_norm: BatchNormMode::AsExported,
    };
    let (tm, info) = onnx_ac::commands::training_graph(&m, &loss, path)?;
    let cost = AnalyticCost::new(DeviceSpec::from(Device::Cpu));
    let cost_fn = |g: &Graph, n: NodeId| cost.node_time(g, n);
    let opts = PlanOptions {
        budget: Budget::ActivationPercent(50.0),
        source: PlanSource::Planner("ac".into()),
        best_effort: true,
        rewrite: RewriteOptions::default(),
    };
    let planned = plan_and_rewrite(&tm, &info, &opts, &cost_fn, "analytic")?;
    let _ = onnx_ac::report::decisions_csv(&planned.decisions);
    let _ = planned.summary.to_text();
    onnx_ac::onnx::to_bytes(&planned.rewritten, &Default::default())?;
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let path = common::model_file(data);
    if let Err(e) = run(&path) {
        common::check_error(&e);
    }
});
