//! The default planner against the others, in simulation with the fixed cost table: it fits
//! whenever any planner fits, never adds more compute than a plan of mutwo, the presets or
//! the exact program that fits the same budget (2% allowed against the exact one), and is
//! monotone in the budget (a larger budget never gives more added compute nor a smaller
//! peak).

mod common;

use common::training;
use onnx_ac::cost::fixed_time;
use onnx_ac::plan::{evaluate, planner_by_name, simulate, PlanInput};
use onnx_ac_passes::autodiff::{build_training_graph, TrainingInfo};
use onnx_ac_passes::ir::Model;
use onnx_ac_passes::synth;

/// (peak bytes, added seconds) of `planner`'s plan at `budget`.
fn outcome(tm: &Model, info: &TrainingInfo, planner: &str, budget: u64) -> (u64, f64) {
    let g = &tm.graph;
    let plan = planner_by_name(planner)
        .unwrap()
        .plan(&PlanInput {
            graph: g,
            info,
            cost: &fixed_time,
            budget_bytes: budget,
        })
        .unwrap();
    let values = plan.resolve(g).unwrap();
    let (_, e) = evaluate(g, info, &values, &fixed_time).unwrap();
    (e.peak_bytes, e.added_time_s)
}

const OTHERS: [&str; 5] = ["mutwo", "none", "selective", "full", "optimal"];

/// Checks `ac` against `OTHERS` at each budget (permille of the plain graph's simulated
/// peak) and its monotonicity; returns how many plans of the others fitted.
fn check(name: &str, tm: &Model, info: &TrainingInfo, permille: &[u64]) -> usize {
    let g = &tm.graph;
    let order = simulate::ort_default_order(g);
    let base = simulate::simulate(g, &order, Some(info)).peak_bytes;
    let mut compared = 0;
    let mut prev: Option<(u64, u64, f64)> = None;
    for &pm in permille {
        let budget = base / 1000 * pm;
        let (peak, time) = outcome(tm, info, "ac", budget);
        let fits = peak <= budget;
        eprintln!("{name} {pm}‰: ac peak {peak} time {time:.6} fits {fits}");
        for other in OTHERS {
            let (op, ot) = outcome(tm, info, other, budget);
            if op > budget {
                continue;
            }
            compared += 1;
            assert!(
                fits,
                "{name} at {pm}‰: {other} fits ({op} B) but ac does not ({peak} B)"
            );
            let allowed = if other == "optimal" { 1.02 } else { 1.0 };
            assert!(
                time <= ot * allowed + 1e-12,
                "{name} at {pm}‰: ac adds {time} s, {other} only {ot} s (peak {op} B)"
            );
        }
        if let (Some((pb, pp, pt)), true) = (prev, fits) {
            assert!(
                time <= pt + 1e-12,
                "{name}: budget {pb} -> {budget} raised the added time {pt} -> {time}"
            );
            assert!(
                peak >= pp,
                "{name}: budget {pb} -> {budget} lowered the peak {pp} -> {peak}"
            );
        }
        if fits {
            prev = Some((budget, peak, time));
        }
    }
    compared
}

#[test]
fn ac_beats_the_others_and_is_monotone() {
    let cases: [(&str, &[(&str, i64)]); 4] = [
        ("mlp.ts17", &[]),
        ("cnn.ts17", &[]),
        ("gpt2_dynamic.ts17", &[("batch", 8), ("seq", 64)]),
        ("bert_dynamic.ts17", &[("batch", 8), ("seq", 64)]),
    ];
    let mut compared = 0;
    for (stem, dims) in cases {
        let (tm, info) = training(stem, dims);
        compared += check(stem, &tm, &info, &[760, 800, 840, 880, 920, 960, 1000]);
    }
    assert!(
        compared > 20,
        "too few comparisons ({compared}): the budgets are all unreachable"
    );
}

/// On a graph with more candidates than `ac` has steps (batched sweep, sampled μ-TWO
/// prefixes, refined by bisection at the budget), the same guarantees hold.
#[test]
fn ac_beats_the_others_on_a_large_graph() {
    let m = synth::transformer_with_nodes(3_000);
    let (tm, info) = build_training_graph(&m, &synth::cross_entropy()).unwrap();
    let compared = check("synthetic 3k", &tm, &info, &[840, 860, 880, 900, 950]);
    assert!(
        compared >= 5,
        "too few comparisons ({compared}): the budgets are all unreachable"
    );
}
