//! Timing of a hostile `--plan` (issue #12 item 3): a plan that drops every recomputable
//! forward value of a long synthetic model (`synth::wide_model`), so that the first
//! recomputation copies the whole graph.
//!
//! `cargo run --release --example hostile_plan [NODES] [DIR]` (defaults: 20000, a temporary
//! folder) writes `DIR/wide.onnx` and `DIR/all.json`, then runs the main command's pipeline
//! in process (`--budget 1B --best-effort --cost fixed --plan all.json`) and prints the
//! seconds of each step and the node counts. The same files can be given to the CLI:
//! `onnx-ac DIR/wide.onnx --budget 1B --best-effort --cost analytic --plan DIR/all.json -o OUT`.
//!
//! Figures before and after the linear report: docs/benchmarks-io.md.

use onnx_ac::pipeline::{plan_and_rewrite, PlanOptions, PlanSource};
use onnx_ac::plan::RecomputePlan;
use onnx_ac::size::Budget;
use onnx_ac_passes::recompute::RewriteOptions;
use onnx_ac_passes::synth;
use std::collections::BTreeMap;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let nodes: usize = args.get(1).map_or(20_000, |s| s.parse().expect("NODES"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = args
        .get(2)
        .map_or_else(|| tmp.path().to_path_buf(), std::path::PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("wide.onnx");
    let plan_path = dir.join("all.json");

    let t = Instant::now();
    onnx_ac::onnx::save(&synth::wide_model(nodes), &model, &Default::default()).unwrap();
    let (tm, info) =
        onnx_ac::load_training_graph(&model, &BTreeMap::new(), &synth::cross_entropy()).unwrap();
    let g = &tm.graph;
    let all = onnx_ac_passes::recompute::droppable_forward_values(g);
    let plan = RecomputePlan::new("hostile", 1, g, all);
    std::fs::write(&plan_path, serde_json::to_string(&plan).unwrap()).unwrap();
    println!(
        "model {} ({} forward nodes, {} training nodes), plan {} ({} values): {:.2} s",
        model.display(),
        g.backward_start(),
        g.nodes.len(),
        plan_path.display(),
        plan.recompute.len(),
        t.elapsed().as_secs_f64()
    );

    let opts = PlanOptions {
        budget: Budget::Bytes(1),
        source: PlanSource::File(plan_path.clone()),
        best_effort: true,
        rewrite: RewriteOptions::default(),
        bound_dims: vec![],
    };
    let t = Instant::now();
    let p = plan_and_rewrite(&tm, &info, &opts, &onnx_ac::cost::fixed_time, "fixed").unwrap();
    println!(
        "plan_and_rewrite: {:.2} s, rewritten graph {} nodes, {} recomputed",
        t.elapsed().as_secs_f64(),
        p.rewritten.graph.nodes.len(),
        p.summary.recomputed_activations
    );
    let t = Instant::now();
    let out = dir.join("out.onnx");
    onnx_ac::onnx::save(&p.rewritten, &out, &Default::default()).unwrap();
    println!("save: {:.2} s", t.elapsed().as_secs_f64());
}
