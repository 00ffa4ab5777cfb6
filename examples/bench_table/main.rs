//! Writes docs/benchmarks.md (issue #6): for each fixture × budget × planner, the simulated
//! added compute, the peak ONNX Runtime measures on the rewritten graph, the measured step
//! time and overhead; the seed-style comparison on GPT-2 (μ-TWO's reduction at the largest
//! batch, and what `ac` costs for the same reduction); and planning time on synthetic
//! transformer training graphs of ~1k, ~10k and ~50k nodes.
//!
//!     cargo run --release --example bench_table [-- OUT.md]
//!
//! Budgets keep 30/50/70/80/90% of the activations: the simulated peak of the plain
//! training graph minus (100 − X)% of the bytes of the forward values the backward reads
//! (the CLI's `--budget X%act`). A plan is run in ONNX Runtime (and verified: same loss and
//! gradients) when its simulated peak fits the budget, and `ac`'s best-effort plan also when
//! it does not; each distinct plan is run once per fixture. Measured peaks are ONNX
//! Runtime's allocator peak plus what the allocator does not see (weights used in place and
//! the graph inputs: the plain graph's simulated peak minus its counted peak), so that they
//! compare with the budget.
//!
//! The planning-time section runs each planner in a child process
//! (`bench_table --synth-plan NODES PLANNER`) so that a slow one can be stopped;
//! `BENCH_TABLE_SKIP_SYNTH=1` leaves that section out (for a quick look at the rest).

use onnx_ac::cost::CostModel;
use onnx_ac::plan::simulate::{ort_default_order, simulate, Simulation};
use onnx_ac::plan::{evaluate, planner_by_name, Evaluation, PlanInput, RecomputePlan};
use onnx_ac::profile::{profile_training_graph, ProfileOptions};
use onnx_ac::runtime::{HostTensor, ModelSession, RunOptions};
use onnx_ac_passes::autodiff::{build_training_graph, saved_activations, TrainingInfo};
use onnx_ac_passes::ir::{Graph, Model, NodeId};
use onnx_ac_passes::synth;
use std::collections::HashMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod fixtures;
mod seed;
mod summary;
mod synth_graphs;
use fixtures::*;
use seed::*;
use summary::*;
use synth_graphs::*;

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
/// The seed-style comparison: GPT-2 at the largest batch of this table (the fixture's
/// positions allow seq ≤ 64).
const SEED: Fixture = Fixture {
    file: "gpt2_dynamic.ts17",
    label: "GPT-2 2L (32×64)",
    dims: &[("batch", 32), ("seq", 64)],
};
/// Intra-op threads for the seed comparison. ONNX Runtime's CPU ScatterND with
/// `reduction="add"` (the embedding gradient) races between threads when it runs in parallel
/// (microsoft/onnxruntime#18048): at 32×64 two runs of the same training graph differ by up
/// to 1e-3 in `wte.weight.grad`, so it is only verifiable on one thread.
const SEED_THREADS: Option<usize> = Some(1);
/// Intra-op threads of the timing sessions. The machine is shared: with ONNX Runtime's
/// default (one thread per core), a competing process slows its parallel kernels down by up
/// to 3× for whole minutes, which no number of repetitions hides; one thread is stable.
/// Peaks and verification use the default.
const TIME_THREADS: Option<usize> = Some(1);
const PLANNERS: [&str; 6] = ["ac", "mutwo", "optimal", "none", "selective", "full"];
/// Share of the activations each budget keeps, %.
const KEEP: [f64; 5] = [30.0, 50.0, 70.0, 80.0, 90.0];
/// Timed rounds per plan (original and rewritten alternating): at least 3, more for fast
/// graphs so that each model gets about `TIMED_S` seconds of runs (up to 30).
const MIN_RUNS: usize = 3;
const MAX_RUNS: usize = 30;
const TIMED_S: f64 = 1.0;
/// Planning time: synthetic sizes, budget, and the longest one plan may take.
const SYNTH_SIZES: [usize; 3] = [1_000, 10_000, 50_000];
const SYNTH_PLANNERS: [&str; 5] = ["ac", "mutwo", "optimal", "selective", "full"];
const SYNTH_KEEP: f64 = 80.0;
/// A planner is skipped at a size when its previous size's time × (size ratio)² exceeds
/// `SYNTH_SKIP_S`; a run is stopped after `SYNTH_STOP_S`.
/// At ~50k nodes (optional) only planners predicted to be cheap run.
const SYNTH_SKIP_S: [f64; 3] = [f64::INFINITY, 300.0, 60.0];
const SYNTH_STOP_S: f64 = 180.0;

fn mib(b: u64) -> String {
    format!("{:.2}", b as f64 / (1024.0 * 1024.0))
}

fn cell(s: &str) -> String {
    let one: String = s.replace(['|', '\n'], " ");
    if one.chars().count() > 90 {
        format!("{}…", one.chars().take(90).collect::<String>())
    } else {
        one
    }
}

/// The plain training graph's simulation and the bytes of its saved activations.
fn plain(g: &Graph, info: &TrainingInfo) -> (Simulation, u64) {
    let order = ort_default_order(g);
    let sim = simulate(g, &order, Some(info));
    let saved = saved_activations(g)
        .iter()
        .filter_map(|&v| g.value_bytes(v))
        .sum();
    (sim, saved)
}

/// `--budget X%act`: the plain peak minus (100 − X)% of the saved activations.
fn budget_for(peak: u64, saved: u64, keep: f64) -> u64 {
    peak.saturating_sub((saved as f64 * (100.0 - keep) / 100.0) as u64)
}

/// One planner run: the plan, its values, the rewritten graph and its simulation.
struct Outcome {
    plan: RecomputePlan,
    values: usize,
    graph: Graph,
    eval: Evaluation,
}

fn run_planner(
    name: &str,
    g: &Graph,
    info: &TrainingInfo,
    cost: onnx_ac::plan::NodeCost,
    budget: u64,
) -> (Result<Outcome, String>, f64) {
    let p = planner_by_name(name).unwrap();
    let t0 = Instant::now();
    let plan = p.plan(&PlanInput {
        graph: g,
        info,
        cost,
        budget_bytes: budget,
    });
    let secs = t0.elapsed().as_secs_f64();
    let out = plan.map_err(|e| e.to_string()).map(|plan| {
        let vals = plan.resolve(g).unwrap();
        let (graph, eval) = evaluate(g, info, &vals, cost).unwrap();
        Outcome {
            plan,
            values: vals.len(),
            graph,
            eval,
        }
    });
    (out, secs)
}

#[derive(Clone)]
struct Measured {
    /// ONNX Runtime's allocator peak plus the bytes it does not count.
    peak: Option<u64>,
    step_s: f64,
    /// The original graph's step time, timed in the same verification.
    orig_step_s: f64,
}

impl Measured {
    fn overhead(&self) -> f64 {
        100.0 * (self.step_s - self.orig_step_s) / self.orig_step_s
    }
}

/// A fixture's training graph, its cost model, and the verified runs made so far.
struct Setup {
    label: String,
    tm: Model,
    info: TrainingInfo,
    cost: Box<dyn CostModel>,
    sim: Simulation,
    saved: u64,
    n_saved: usize,
    /// Sum of the per-node costs: the estimated step.
    step_est_s: f64,
    orig: PathBuf,
    dir: PathBuf,
    inputs: Vec<HostTensor>,
    run: RunOptions,
    runs: usize,
    /// Distinct plans run, by their recomputed values.
    cache: HashMap<Vec<String>, Measured>,
    orig_peak: Option<u64>,
    orig_steps: Vec<f64>,
}

impl Setup {
    fn new(f: &Fixture, threads: Option<usize>, dir: &Path) -> Setup {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/models/{}.onnx", f.file));
        let dims = f.dims.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let (tm, info) =
            onnx_ac::load_training_graph(&path, &dims, &synth::cross_entropy()).unwrap();
        let profile = profile_training_graph(
            &tm,
            &path,
            &ProfileOptions {
                intra_threads: threads,
                progress: false,
                ..ProfileOptions::default()
            },
        )
        .unwrap();
        let profiled_step = profile.step_time_s;
        let g = &tm.graph;
        // The profiled per-node times themselves (docs/benchmarks.md: "the planners use
        // those per-node times"), not the main command's calibrated model.
        let cost: Box<dyn onnx_ac::cost::CostModel> = Box::new(onnx_ac::cost::MeasuredCost::new(
            profile,
            onnx_ac::cost::AnalyticCost::new(onnx_ac::cost::Device::Cpu),
        ));
        let (sim, saved) = plain(g, &info);
        let n_saved = saved_activations(g).len();
        let step_est_s = g.node_ids().map(|n| cost.node_time(g, n)).sum();
        let tag = f.file.replace('.', "_")
            + &f.dims
                .iter()
                .map(|(_, v)| format!("_{v}"))
                .collect::<String>();
        let orig = dir.join(format!("{tag}.orig.onnx"));
        onnx_ac::onnx::save(&tm, &orig, &Default::default()).unwrap();
        let inputs = onnx_ac::profile::inputs_for(g).unwrap();
        let runs = ((TIMED_S / profiled_step.max(1e-6)).ceil() as usize).clamp(MIN_RUNS, MAX_RUNS);
        Setup {
            label: f.label.to_string(),
            tm,
            info,
            cost,
            sim,
            saved,
            n_saved,
            step_est_s,
            orig,
            dir: dir.join(tag),
            inputs,
            run: RunOptions {
                intra_threads: threads,
                ..RunOptions::default()
            },
            runs,
            cache: HashMap::new(),
            orig_peak: None,
            orig_steps: Vec::new(),
        }
    }

    fn g(&self) -> &Graph {
        &self.tm.graph
    }

    fn budget(&self, keep: f64) -> u64 {
        budget_for(self.sim.peak_bytes, self.saved, keep)
    }

    fn plan(&self, name: &str, budget: u64) -> (Result<Outcome, String>, f64) {
        let cost = |g: &Graph, n: NodeId| self.cost.node_time(g, n);
        run_planner(name, self.g(), &self.info, &cost, budget)
    }

    /// What ONNX Runtime's allocator does not see: weights used in place, graph inputs.
    fn unallocated(&self) -> u64 {
        self.sim.peak_bytes - self.sim.counted_peak_bytes
    }

    fn measured(&self, o: &Outcome) -> Option<Measured> {
        self.cache.get(&o.plan.recompute).cloned()
    }

    /// Step times of the original and of `rewritten`: one session each, one warm-up run
    /// each, then `runs` rounds alternating the two; the fastest run of each (other work on
    /// the machine only ever slows a run down, and alternating exposes both to the same
    /// conditions).
    fn time_pair(&self, rewritten: &Path) -> (f64, f64) {
        let run = RunOptions {
            intra_threads: TIME_THREADS,
            ..self.run.clone()
        };
        let mut a = ModelSession::prepare(&self.orig, &run).unwrap();
        let mut b = ModelSession::prepare(rewritten, &run).unwrap();
        a.run(&self.inputs).unwrap();
        b.run(&self.inputs).unwrap();
        let (mut ta, mut tb) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..self.runs {
            let t = Instant::now();
            a.run(&self.inputs).unwrap();
            ta = ta.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            b.run(&self.inputs).unwrap();
            tb = tb.min(t.elapsed().as_secs_f64());
        }
        (ta, tb)
    }

    /// Runs the original and the rewritten graph in ONNX Runtime (once per distinct plan):
    /// the loss and gradients must match; measured peaks and step times.
    fn measure(&mut self, o: &Outcome) -> Measured {
        if let Some(m) = self.measured(o) {
            return m;
        }
        std::fs::create_dir_all(&self.dir).unwrap();
        let mut rm = self.tm.clone();
        rm.graph = o.graph.clone();
        let path = self.dir.join(format!("plan{}.onnx", self.cache.len()));
        onnx_ac::onnx::save(&rm, &path, &Default::default()).unwrap();
        let t0 = Instant::now();
        // Correctness and peaks; its one timed run per model is not used.
        let r = onnx_ac::compare::verify(&self.orig, &path, &self.inputs, &self.run, 1).unwrap();
        assert!(
            r.passed,
            "{} {} ({} values): {}",
            self.label,
            o.plan.planner,
            o.values,
            r.one_line()
        );
        let (ta, tb) = self.time_pair(&path);
        eprintln!(
            "  verified {} ({} values, {}): {}; best step {:.2} -> {:.2} ms [{:.1} s]",
            self.label,
            o.values,
            o.plan.planner,
            r.one_line(),
            ta * 1e3,
            tb * 1e3,
            t0.elapsed().as_secs_f64()
        );
        let _ = std::fs::remove_file(&path);
        let un = self.unallocated();
        if self.orig_peak.is_none() {
            self.orig_peak = r.original_peak_bytes.map(|b| b + un);
        }
        self.orig_steps.push(ta);
        let m = Measured {
            peak: r.rewritten_peak_bytes.map(|b| b + un),
            step_s: tb,
            orig_step_s: ta,
        };
        self.cache.insert(o.plan.recompute.clone(), m.clone());
        m
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--synth-plan") {
        synth_plan(args[2].parse().unwrap(), &args[3]);
        return;
    }
    let started = Instant::now();
    let load_start = loadavg();
    let out = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "docs/benchmarks.md".into());
    let tmp = tempfile::tempdir().unwrap();

    let mut synth_md = String::new();
    let synth_note = if std::env::var_os("BENCH_TABLE_SKIP_SYNTH").is_some() {
        String::new()
    } else {
        synth_section(&mut synth_md)
    };

    let mut fixtures_md = String::new();
    let mut pairs = Vec::new();
    let mut misses = Vec::new();
    for f in FIXTURES {
        let mut s = Setup::new(f, None, tmp.path());
        fixture_section(&mut s, &mut fixtures_md, &mut pairs, &mut misses);
    }
    let mut gaps = gap_summary(&pairs);
    if misses.is_empty() {
        gaps.push_str(
            " Every plan that fits the budget in simulation also fits it in ONNX Runtime.",
        );
    } else {
        let _ = write!(
            gaps,
            " Plans that fit in simulation but whose measured peak is over the budget: {}.",
            misses.join("; ")
        );
    }

    let mut seed_md = String::new();
    let mut seed = Setup::new(&SEED, SEED_THREADS, tmp.path());
    let seed_summary = seed_section(&mut seed, &mut seed_md);

    let ort = onnx_ac::runtime::loaded_library()
        .map(|l| l.version.clone())
        .unwrap_or_else(|| "unknown".into());
    let mut commit = command_line("git", &["rev-parse", "--short", "HEAD"]);
    if !command_line("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        commit.push_str(" with uncommitted changes");
    }
    let rustc = command_line("rustc", &["--version"]);
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Benchmarks\n\n\
         Written by `cargo run --release --example bench_table` (examples/bench_table.rs) at \
         commit {commit}, in {minutes:.1} min. Machine: {} (load average {} at the start, {} \
         at the end: the machine was shared with other work). ONNX Runtime {ort} (CPU \
         execution provider, default session options: all graph optimizations, one intra-op \
         thread per physical core unless said otherwise); {rustc}, release build.\n\n\
         The 8-layer transformers at batch 8 × 128 (issue #11: budgets down to 10%act, \
         kept fraction and added MatMul FLOPs against PyTorch's partitioner, the seed-style \
         batch table) are in [benchmarks-deep.md](benchmarks-deep.md) \
         (scripts/zoo/bench_deep.py, scripts/zoo/bench_seed.py).\n\n\
         ## Summary\n\n- {gaps}\n- {seed_summary}\n- Planning time (synthetic transformers, one plan each): {synth_note}.\n\n\
         ## Fixtures × budgets × planners\n\n\
         Each fixture's training graph (cross-entropy loss on `logits`) is profiled in ONNX \
         Runtime (5 runs, optimizations off) and the planners use those per-node times. \
         Columns:\n\n\
         - **keep / budget**: the budget keeps that share of the activations: the plain \
         training graph's simulated peak minus (100 − keep)% of the bytes of the forward \
         values the backward reads (`--budget keep%act`). The budget covers the whole step: \
         weights, inputs, activations, gradients, transients.\n\
         - **planner**: `ac` (the default), `mutwo` (μ-TWO's greedy), `optimal` (the exact \
         program), and the presets `none`, `selective`, `full` (which ignore the budget). \
         `none` recomputes nothing but is still a rewritten graph, with the backward's dims \
         hidden from ONNX Runtime (docs/design.md), so its peak can be below the plain \
         graph's.\n\
         - **recomputed**: forward values the plan drops and recomputes.\n\
         - **added**: simulated recompute time, the sum of the profiled times of the copied \
         nodes, and its share of the estimated step (sum of all profiled node times).\n\
         - **simulated peak / fits**: the simulator's peak of the rewritten graph and whether \
         it is within the budget. \"unreachable\" means the planner found no plan that fits; \
         `ac`'s row then shows its best-effort plan (what `--best-effort` writes).\n\
         - **measured peak**: ONNX Runtime's allocator peak on the rewritten graph plus the \
         bytes it does not allocate (weights it uses in place and the graph inputs, from the \
         plain graph's simulation), so it compares with the budget; **within budget**: \
         measured peak ≤ budget. Only plans that fit, and `ac`'s best-effort plan, are run \
         (\"not run\" otherwise); each distinct plan is run once per fixture and its numbers \
         are repeated wherever it recurs.\n\
         - **step / overhead**: the rewritten graph's step time and its change against the \
         original's, both timed in ONNX Runtime with **one intra-op thread**, in \
         alternating runs after one warm-up run each, the fastest run of each. The machine \
         was shared with other work: with the default two threads a competing process slowed \
         ONNX Runtime's parallel kernels down by up to 3× for minutes at a time (e.g. GPT-2's \
         step between 27 and 94 ms), which no number of repetitions hides; single-threaded \
         runs are stable, and other work only ever slows a run down (hence the fastest). Differences of a \
         few percent are noise. Every plan run is verified first: loss and all gradients match the \
         original's.\n\
         - **plan time**: wall-clock time of the planner.\n\n\
         On these 2-layer models the budgets keeping 30–70% of the activations are mostly \
         unreachable: most of the remaining peak is the backward's own values and one \
         layer's activations, which recomputation cannot remove.\n",
        machine(),
        load_start,
        loadavg()
    );
    md.push_str(&fixtures_md);
    md.push_str(&seed_md);
    md.push_str(&synth_md);
    std::fs::write(&out, md).unwrap();
    eprintln!("wrote {out} in {minutes:.1} min");
}
