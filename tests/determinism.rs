//! The same command gives the same outputs run after run (issue #12 item 11): the default
//! cost model times nothing, and measured costs reach plans only through quantised per-op-type
//! factors, so a profile whose per-node times are jittered by ±20 % and slowed down as a
//! whole gives the same calibration, plan, decisions and summary as the clean one. No timing
//! is measured here: the profiles are synthetic.

mod common;

use common::{fixture, run_cli, training};
use onnx_ac::cost::{AnalyticCost, CalibratedCost, CostModel, Device, MeasuredCost};
use onnx_ac::pipeline::{plan_and_rewrite, PlanOptions, PlanSource, Planned};
use onnx_ac::profile::{NodeProfile, Profile, SplitMix64, FORMAT, VERSION};
use onnx_ac::size::Budget;
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, Model};
use onnx_ac_passes::recompute::RewriteOptions;
use std::collections::BTreeMap;

const DEEP: &str = "gpt2_deep.ts17";

/// Measured / analytic per op type, like the CI machine's GPT-2 profiles (a pooled ratio of
/// about 2.2, GEMMs four times faster than the roofline relative to it, Slice twice slower);
/// op types not listed run at the pooled ratio.
fn true_ratio(op: &str) -> f64 {
    let relative = match op {
        "Gemm" | "Mul" | "Tanh" => 0.25,
        "MatMul" | "Sub" | "ReduceMean" | "Sum" | "Split" => 0.5,
        "Slice" | "Softmax" => 2.0,
        _ => 1.0,
    };
    2.2 * relative
}

/// A profile of `g`: each node's time is its analytic time × [`true_ratio`] × `slowdown`,
/// times a uniform factor in [1 − jitter, 1 + jitter] drawn with `seed`.
fn profile(g: &Graph, slowdown: f64, jitter: f64, seed: u64) -> Profile {
    let analytic = AnalyticCost::new(Device::Cpu);
    let mut rng = SplitMix64::new(seed);
    let mut nodes = BTreeMap::new();
    for n in g.node_ids() {
        let node = g.node(n);
        let noise = 1.0 + jitter * (2.0 * rng.next_f64() - 1.0);
        let time_s = analytic.node_time(g, n) * true_ratio(&node.op_type) * slowdown * noise;
        nodes.insert(
            node.name.clone(),
            NodeProfile {
                op: node.op_type.clone(),
                time_s,
            },
        );
    }
    Profile {
        format: FORMAT.to_string(),
        version: VERSION,
        model: fixture(DEEP).display().to_string(),
        ep: "cpu".to_string(),
        ort_version: "1.31.1".to_string(),
        graph_optimization: "disabled".to_string(),
        runs: 5,
        warmup: 1,
        seed: 0,
        nodes,
        values: BTreeMap::new(),
        measured_peak_bytes: None,
        runtime_peak_bytes: None,
        runtime_baseline_bytes: None,
        parameter_bytes: 0,
        input_bytes: 0,
        step_time_s: 0.0,
        kernel_time_s: 0.0,
        warnings: vec![],
    }
}

fn plan(tm: &Model, info: &TrainingInfo, cost: &dyn CostModel, keep: f64) -> Planned {
    let opts = PlanOptions {
        budget: Budget::ActivationPercent(keep),
        source: PlanSource::Planner("ac".into()),
        best_effort: false,
        rewrite: RewriteOptions::defended(true),
        bound_dims: vec![],
    };
    let f = |g: &Graph, n| cost.node_time(g, n);
    plan_and_rewrite(tm, info, &opts, &f, "calibrated").unwrap()
}

/// What a user compares between two runs: the plan file, the decisions and the summary.
fn outputs(p: &Planned) -> (Vec<String>, String, String) {
    (
        p.plan.recompute.clone(),
        onnx_ac::report::decisions_csv(&p.decisions),
        p.summary.to_text(),
    )
}

#[test]
fn jittered_profiles_give_the_same_plan() {
    let (tm, info) = training(DEEP, &[]);
    let g = &tm.graph;
    let analytic = || AnalyticCost::new(Device::Cpu);
    let clean = CalibratedCost::new(&profile(g, 1.0, 0.0, 0), g, analytic());
    // The calibration found the factors put in (relative to the pooled ratio).
    assert_eq!(clean.calibration.factor("Gemm"), 0.25);
    assert_eq!(clean.calibration.factor("MatMul"), 0.5);
    assert_eq!(clean.calibration.factor("Slice"), 2.0);
    assert_eq!(clean.calibration.factor("Add"), 1.0);
    // ±20% per node and a machine 30% slower or 20% faster: same factors.
    let noisy: Vec<(f64, u64)> = vec![(1.3, 2), (0.8, 3)];
    for &(slowdown, seed) in &noisy {
        let c = CalibratedCost::new(&profile(g, slowdown, 0.2, seed), g, analytic());
        let steps = |c: &CalibratedCost| {
            c.calibration
                .ops
                .iter()
                .map(|(op, r)| (op.clone(), r.steps))
                .collect::<Vec<_>>()
        };
        assert_eq!(steps(&c), steps(&clean), "slowdown {slowdown}, seed {seed}");
    }
    // The same plan, decisions and summary at two budgets.
    for keep in [60.0, 30.0] {
        let want = outputs(&plan(&tm, &info, &clean, keep));
        assert!(!want.0.is_empty(), "{keep}%act recomputes something");
        for &(slowdown, seed) in &noisy {
            let c = CalibratedCost::new(&profile(g, slowdown, 0.2, seed), g, analytic());
            let got = outputs(&plan(&tm, &info, &c, keep));
            assert_eq!(got, want, "{keep}%act, slowdown {slowdown}, seed {seed}");
        }
    }
}

/// The jitter above is enough to move plans made from raw per-node times (so the test above
/// would catch a cost model that passes noise through).
#[test]
fn raw_per_node_times_pass_the_noise_on() {
    let (tm, info) = training(DEEP, &[]);
    let g = &tm.graph;
    let raw = |slowdown, seed| {
        MeasuredCost::new(
            profile(g, slowdown, 0.2, seed),
            AnalyticCost::new(Device::Cpu),
        )
    };
    let a = plan(&tm, &info, &raw(1.0, 1), 60.0).plan.recompute;
    let b = plan(&tm, &info, &raw(1.3, 2), 60.0).plan.recompute;
    assert_ne!(a, b, "raw jittered times gave the same plan");
}

/// The command (GPT-2 at `--budget 60%act`, default cost model) twice: the model, the
/// decisions, the plan and the summary are byte-identical.
#[test]
fn the_default_command_is_byte_identical_run_after_run() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture(DEEP);
    let out = tmp.path().join("out.onnx");
    let dec = tmp.path().join("dec.csv");
    let plan = tmp.path().join("plan.json");
    let run = || {
        let r = run_cli(&[
            model.to_str().unwrap(),
            "--budget",
            "60%act",
            "-o",
            out.to_str().unwrap(),
            "--decisions",
            dec.to_str().unwrap(),
            "--save-plan",
            plan.to_str().unwrap(),
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let read = |p: &std::path::Path| std::fs::read(p).unwrap();
        (r.stdout, read(&out), read(&dec), read(&plan))
    };
    let first = run();
    let text = String::from_utf8_lossy(&first.0).to_string();
    assert!(
        text.starts_with("cost model   analytic roofline for cpu"),
        "the default times nothing: {text}"
    );
    assert!(first == run(), "a second run wrote different bytes");
}
