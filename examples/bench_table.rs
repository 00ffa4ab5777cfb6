//! Writes docs/benchmarks.md: for each fixture × budget × planner, the simulated added
//! compute, the peak ONNX Runtime measures on the rewritten graph, the measured step time
//! and overhead; planning time on synthetic transformers; and the seed-style comparison.
//!
//!     cargo run --release --example bench_table [-- OUT.md]
//!
//! Budgets are 30/50/70% of the no-recompute activation memory: the peak without
//! recomputation minus 70/50/30% of the bytes of the forward values the backward reads.

use onnx_ac::cost::CostModel;
use onnx_ac::plan::{evaluate, planner_by_name, PlanInput};
use onnx_ac::profile::{profile_training_graph, ProfileOptions};
use onnx_ac::runtime::RunOptions;
use onnx_ac_passes::autodiff::{build_training_graph, saved_activations, Loss, TrainOptions};
use std::fmt::Write;
use std::time::Instant;

struct Fixture {
    file: &'static str,
    label: &'static str,
    dims: &'static [(&'static str, i64)],
}

const FIXTURES: &[Fixture] = &[
    Fixture {
        file: "mlp_dynbatch.ts17",
        label: "MLP (batch 512)",
        dims: &[("batch", 512)],
    },
    Fixture {
        file: "cnn.ts17",
        label: "CNN (batch 4)",
        dims: &[],
    },
    Fixture {
        file: "gpt2_dynamic.ts17",
        label: "GPT-2 2L (8×64)",
        dims: &[("batch", 8), ("seq", 64)],
    },
    Fixture {
        file: "bert_dynamic.ts17",
        label: "BERT 2L (8×64)",
        dims: &[("batch", 8), ("seq", 64)],
    },
];
const PLANNERS: &[&str] = &["ac", "optimal", "mutwo", "none", "selective", "full"];
const PERCENTS: &[f64] = &[30.0, 50.0, 70.0];

fn mib(b: u64) -> String {
    format!("{:.2}", b as f64 / (1024.0 * 1024.0))
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "docs/benchmarks.md".into());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n\nWritten by `cargo run --release --example bench_table` on a 2-core x86-64 machine without GPU, ONNX Runtime 1.31.1 (CPU, default session options). Costs: per-node times measured by profiling each training graph (5 runs). Budgets: 30/50/70% of the no-recompute activation memory (the peak without recomputation minus 70/50/30% of the bytes of the forward values the backward reads). *Added* is the simulated recompute time; *peak* is measured by ONNX Runtime's allocator on the rewritten graph (parameters included); *step* is the measured median step time. \"over\" marks a plan whose simulated peak misses the budget (the planner says unreachable; `--best-effort` output).\n");
    let mut gaps: Vec<f64> = Vec::new();
    for f in FIXTURES {
        let path = root.join(format!("fixtures/models/{}.onnx", f.file));
        let dims = f.dims.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let m = onnx_ac::load_model(&path, &dims).unwrap();
        let opts = TrainOptions {
            loss: Loss::CrossEntropy {
                logits: "logits".into(),
                labels: "labels".into(),
            },
            ..Default::default()
        };
        let (tm, info) = build_training_graph(&m, &opts).unwrap();
        let g = &tm.graph;
        let profile = profile_training_graph(&tm, &path, &ProfileOptions::default()).unwrap();
        let (cost_model, _) =
            onnx_ac::cost::select_cost_model(Some(profile), true, onnx_ac::cost::Device::Cpu);
        let cost = |g: &onnx_ac_passes::ir::Graph, n| cost_model.node_time(g, n);
        let (_, base) = evaluate(g, &info, &[], &cost).unwrap();
        let saved: u64 = saved_activations(g, &info)
            .iter()
            .filter_map(|&v| g.value_bytes(v))
            .sum();
        let orig = tmp.path().join(format!("{}.orig.onnx", f.file));
        onnx_ac::onnx::save(&tm, &orig, &Default::default()).unwrap();
        let inputs = onnx_ac::costs::inputs_for(g).unwrap();
        let _ = writeln!(md, "## {}\n\n{} nodes in the training graph; simulated peak without recomputation {} MiB, of which {} MiB are activations the backward reads.\n", f.label, g.nodes.len(), mib(base.peak_bytes), mib(saved));
        let _ = writeln!(md, "| budget | planner | recomputed | added (ms) | simulated peak (MiB) | measured peak (MiB) | step (ms) | overhead | plan time (s) |\n|---|---|---|---|---|---|---|---|---|");
        for &pct in PERCENTS {
            let budget = base.peak_bytes - ((100.0 - pct) / 100.0 * saved as f64) as u64;
            let mut optimal_added = None;
            for &planner in PLANNERS {
                let p = planner_by_name(planner).unwrap();
                let t0 = Instant::now();
                let plan = match p.plan(&PlanInput {
                    graph: g,
                    info: &info,
                    cost: &cost,
                    budget_bytes: budget,
                }) {
                    Ok(plan) => plan,
                    Err(e) => {
                        let _ = writeln!(
                            md,
                            "| {pct}% ({} MiB) | {planner} | – | – | – | – | – | – | {e} |",
                            mib(budget)
                        );
                        continue;
                    }
                };
                let plan_s = t0.elapsed().as_secs_f64();
                let vals = plan.resolve(g).unwrap();
                let (rg, ev) = evaluate(g, &info, &vals, &cost).unwrap();
                let mut rm = tm.clone();
                rm.graph = rg;
                let rewritten = tmp.path().join(format!("{}.{planner}.onnx", f.file));
                onnx_ac::onnx::save(&rm, &rewritten, &Default::default()).unwrap();
                let r =
                    onnx_ac::verify::verify(&orig, &rewritten, &inputs, &RunOptions::default(), 5)
                        .unwrap();
                assert!(r.passed, "{} {planner} {pct}%: {}", f.file, r.one_line());
                let over = if ev.peak_bytes > budget {
                    " (over)"
                } else {
                    ""
                };
                if planner == "optimal" && ev.peak_bytes <= budget {
                    optimal_added = Some(ev.added_time_s);
                }
                if planner == "ac" && ev.peak_bytes <= budget {
                    if let Some(o) = optimal_added.or_else(|| {
                        planner_by_name("optimal")
                            .ok()
                            .and_then(|op| {
                                op.plan(&PlanInput {
                                    graph: g,
                                    info: &info,
                                    cost: &cost,
                                    budget_bytes: budget,
                                })
                                .ok()
                            })
                            .and_then(|pl| {
                                let v = pl.resolve(g).ok()?;
                                let (_, e) = evaluate(g, &info, &v, &cost).ok()?;
                                (e.peak_bytes <= budget).then_some(e.added_time_s)
                            })
                    }) {
                        if o > 0.0 {
                            gaps.push(100.0 * (ev.added_time_s - o) / o);
                        }
                    }
                }
                let _ = writeln!(
                    md,
                    "| {pct}% ({} MiB) | {planner} | {} | {:.3} | {}{over} | {} | {:.2} | {:+.1}% | {:.2} |",
                    mib(budget),
                    vals.len(),
                    ev.added_time_s * 1e3,
                    mib(ev.peak_bytes),
                    r.rewritten_peak_bytes.map(mib).unwrap_or_else(|| "–".into()),
                    r.rewritten_step_time_s * 1e3,
                    100.0 * (r.rewritten_step_time_s - r.original_step_time_s) / r.original_step_time_s,
                    plan_s
                );
            }
        }
        let _ = writeln!(md);
    }
    if !gaps.is_empty() {
        let worst = gaps.iter().cloned().fold(f64::MIN, f64::max);
        let _ = writeln!(
            md,
            "Largest gap of `ac`'s added compute over `optimal`'s where both fit: {worst:.2}%.\n"
        );
    }
    std::fs::write(&out, md).unwrap();
    eprintln!("wrote {out}");
}
