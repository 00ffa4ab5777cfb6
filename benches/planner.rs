//! Planning time on synthetic transformer training graphs of ~1k, ~10k and ~50k nodes
//! (`synth::transformer_with_nodes`; the exact counts are printed).
//!
//! `cargo bench --bench planner`. For each size: `plan::evaluate` (rewrite + simulate, which
//! the searching planners call once per step) of the empty plan and of a plan recomputing
//! every third candidate, and every planner of `plan::planner_by_name` with a budget of 50%
//! of the simulated peak without recomputation.
//!
//! `cargo bench --bench planner -- evaluate` times `evaluate` alone (a minute or so): with a
//! filter that names no planner, the planners' one-shot runs are skipped too.
//!
//! The presets (none, selective, full) run under criterion on every size. The searching
//! planners (ac, mutwo, optimal) re-simulate the whole graph at each step, so they are
//! timed once per size, on ~1k, ~3k, ~10k and ~50k nodes, as long as the predicted time of
//! one plan (the last measured one × the ratio of evaluate times, × the size ratio for
//! mutwo and optimal, whose steps grow with the graph) is at most
//! `ONNX_AC_BENCH_ONESHOT_MAX_S` seconds (default 30); and sampled by criterion where one
//! plan took at most a second. Skipped sizes print the prediction.
//! Figures: docs/benchmarks-io.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use onnx_ac::plan::{candidates::candidates, evaluate, planner_by_name, PlanInput};
use onnx_ac_passes::autodiff::{build_training_graph, TrainingInfo};
use onnx_ac_passes::ir::{Graph, NodeId, ValueId};
use onnx_ac_passes::synth;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Target training-graph sizes for evaluate and the presets.
const SIZES: [usize; 3] = [1_000, 10_000, 50_000];
/// Sizes for the searching planners: one more, for their scaling.
const SEARCH_SIZES: [usize; 4] = [1_000, 3_000, 10_000, 50_000];
const PRESETS: [&str; 3] = ["none", "selective", "full"];
const SEARCHING: [&str; 3] = ["ac", "mutwo", "optimal"];
/// A searching planner is sampled by criterion when one plan takes at most this.
const SAMPLED_MAX: Duration = Duration::from_secs(1);
const ONESHOT_MAX_S_DEFAULT: f64 = 30.0;

/// The fixed cost table of `--cost fixed`.
fn cost(g: &Graph, n: NodeId) -> f64 {
    match g.node(n).op_type.as_str() {
        "MatMul" | "Gemm" | "Conv" | "ConvTranspose" => 1e-5,
        _ => 1e-6,
    }
}

struct Case {
    graph: Graph,
    info: TrainingInfo,
    budget: u64,
    /// Every third recomputation candidate: a plan like the ones the searching planners try.
    third: Vec<ValueId>,
    /// One evaluate of the empty plan, timed once.
    eval_once: Duration,
}

impl Case {
    fn new(target: usize) -> Case {
        let m = synth::transformer_with_nodes(target);
        let (tm, info) = build_training_graph(&m, &synth::cross_entropy()).expect("training graph");
        let t = Instant::now();
        let (_, base) = evaluate(&tm.graph, &info, &[], &cost).expect("evaluate");
        let eval_once = t.elapsed();
        let third = candidates(&tm.graph)
            .into_iter()
            .skip(1)
            .step_by(3)
            .collect();
        Case {
            budget: base.peak_bytes / 2,
            third,
            graph: tm.graph,
            info,
            eval_once,
        }
    }

    fn nodes(&self) -> usize {
        self.graph.nodes.len()
    }

    fn input(&self) -> PlanInput<'_> {
        PlanInput {
            graph: &self.graph,
            info: &self.info,
            cost: &cost,
            budget_bytes: self.budget,
        }
    }

    /// Plans once: (time, values recomputed, simulated peak of the plan).
    fn plan_once(&self, planner: &str) -> (Duration, usize, u64) {
        let p = planner_by_name(planner).expect("planner");
        let t = Instant::now();
        let plan = p.plan(&self.input()).expect("plan");
        let took = t.elapsed();
        let values = plan.resolve(&self.graph).expect("resolve");
        let (_, e) = evaluate(&self.graph, &self.info, &values, &cost).expect("evaluate");
        eprintln!(
            "planner: {planner} on {} nodes: {:.3} s, {} values recomputed, peak {} ({} the budget {})",
            self.nodes(),
            took.as_secs_f64(),
            values.len(),
            e.peak_bytes,
            if e.peak_bytes <= self.budget { "within" } else { "over" },
            self.budget
        );
        (took, values.len(), e.peak_bytes)
    }
}

fn group(cr: &mut Criterion) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut g = cr.benchmark_group("planner");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g
}

/// `evaluate` of the empty plan and of `Case::third`.
fn bench_evaluate(cr: &mut Criterion, c: &Case) {
    let n = c.nodes();
    group(cr).bench_function(BenchmarkId::new("evaluate", n), |b| {
        b.iter(|| evaluate(black_box(&c.graph), &c.info, &[], &cost).expect("evaluate"))
    });
    group(cr).bench_function(BenchmarkId::new("evaluate_third", n), |b| {
        b.iter(|| evaluate(black_box(&c.graph), &c.info, &c.third, &cost).expect("evaluate"))
    });
}

/// Whether the command line's benchmark filter (if any) can select benchmarks of `planner`;
/// planners it cannot are not run at all (their one-shot runs happen outside criterion).
fn wanted(planner: &str) -> bool {
    let id = format!("planner/{planner}/");
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    filter.is_none_or(|f| id.contains(f.as_str()) || f.contains(planner))
}

fn bench_planner(cr: &mut Criterion, c: &Case, name: &str) {
    let p = planner_by_name(name).expect("planner");
    let input = c.input();
    group(cr).bench_function(BenchmarkId::new(name, c.nodes()), |b| {
        b.iter(|| p.plan(black_box(&input)).expect("plan"))
    });
}

/// The last measured plan of a searching planner: (nodes, one evaluate, plan time).
type LastRun = Option<(usize, Duration, Duration)>;

fn search(cr: &mut Criterion, c: &Case, name: &str, last: &mut LastRun, max_s: f64) {
    if !wanted(name) {
        return;
    }
    let n = c.nodes();
    if let Some((n0, e0, t0)) = *last {
        // mutwo and optimal grow with candidates × nodes; ac simulates a bounded number
        // of plans on large graphs (about 150,000 simulated nodes per part).
        let steps = if name == "ac" {
            1.0
        } else {
            n as f64 / n0 as f64
        };
        let predicted =
            t0.as_secs_f64() * steps * c.eval_once.as_secs_f64() / e0.as_secs_f64().max(1e-9);
        if predicted > max_s {
            eprintln!(
                "planner: {name} on {n} nodes skipped: predicted {predicted:.0} s for one plan \
                 (> {max_s} s; set ONNX_AC_BENCH_ONESHOT_MAX_S to run it)"
            );
            return;
        }
    }
    let (took, _, _) = c.plan_once(name);
    *last = Some((n, c.eval_once, took));
    if took <= SAMPLED_MAX {
        bench_planner(cr, c, name);
    }
}

fn planners(cr: &mut Criterion) {
    let max_s = std::env::var("ONNX_AC_BENCH_ONESHOT_MAX_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ONESHOT_MAX_S_DEFAULT);
    let mut last: Vec<LastRun> = vec![None; SEARCHING.len()];
    for target in SEARCH_SIZES {
        let c = Case::new(target);
        let n = c.nodes();
        eprintln!(
            "planner: ~{target}: training graph {n} nodes, budget {} bytes (50% of the \
             simulated peak), one evaluate {:.1} ms",
            c.budget,
            c.eval_once.as_secs_f64() * 1e3
        );
        if SIZES.contains(&target) {
            bench_evaluate(cr, &c);
            for name in PRESETS.into_iter().filter(|p| wanted(p)) {
                c.plan_once(name);
                bench_planner(cr, &c, name);
            }
        }
        for (name, last) in SEARCHING.iter().zip(&mut last) {
            search(cr, &c, name, last, max_s);
        }
    }
}

criterion_group!(benches, planners);
criterion_main!(benches);
