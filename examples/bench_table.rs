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
    let saved = saved_activations(g, info)
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
        let n_saved = saved_activations(g, &info).len();
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

/// Where `ac` and `optimal` both ran at one budget.
struct Pair {
    fixture: String,
    keep: f64,
    ac: Option<(bool, f64)>,
    optimal: Result<(bool, f64), String>,
}

/// Writes one fixture's table; records `ac`/`optimal` per budget in `pairs`, and in `misses`
/// the plans whose simulated peak fits but whose measured peak does not.
fn fixture_section(
    s: &mut Setup,
    md: &mut String,
    pairs: &mut Vec<Pair>,
    misses: &mut Vec<String>,
) {
    let g = s.g();
    let _ = writeln!(
        md,
        "### {}\n\n{} nodes in the training graph ({} forward), {} saved activations. Plain \
         training graph: simulated peak {} MiB, of which {} MiB are the activations the \
         backward reads and {} MiB are not seen by ONNX Runtime's allocator (weights used in \
         place, graph inputs); estimated step {:.2} ms (sum of the profiled per-node times). \
         Timed rounds per plan: {}.\n",
        s.label,
        g.nodes.len(),
        s.info.forward_end,
        s.n_saved,
        mib(s.sim.peak_bytes),
        mib(s.saved),
        mib(s.unallocated()),
        s.step_est_s * 1e3,
        s.runs
    );
    let mut rows = String::new();
    let _ = writeln!(
        rows,
        "| keep | budget (MiB) | planner | recomputed | added, ms (% of step) | simulated peak (MiB) | fits (simulated) | measured peak (MiB) | within budget (measured) | step (ms) | overhead | plan time (s) |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for keep in KEEP {
        let budget = s.budget(keep);
        let mut pair = Pair {
            fixture: s.label.clone(),
            keep,
            ac: None,
            optimal: Err("not run".into()),
        };
        for planner in PLANNERS {
            eprintln!("{} {keep}% {planner}", s.label);
            let (out, secs) = s.plan(planner, budget);
            let o = match out {
                Ok(o) => o,
                Err(e) => {
                    if planner == "optimal" {
                        pair.optimal = Err(e.clone());
                    }
                    let _ = writeln!(
                        rows,
                        "| {keep}% | {} | {planner} | – | – | – | planner error: {} | – | – | – | – | {secs:.2} |",
                        mib(budget),
                        cell(&e)
                    );
                    continue;
                }
            };
            let fits = o.eval.peak_bytes <= budget;
            if planner == "ac" {
                pair.ac = Some((fits, o.eval.added_time_s));
            }
            if planner == "optimal" {
                pair.optimal = Ok((fits, o.eval.added_time_s));
            }
            let m = if fits || planner == "ac" {
                Some(s.measure(&o))
            } else {
                s.measured(&o)
            };
            let fits_txt = match (fits, planner) {
                (true, _) => "yes".to_string(),
                (false, "ac") => "no: unreachable (best effort)".to_string(),
                (false, "none" | "selective" | "full") => "no (preset)".to_string(),
                (false, _) => "no: unreachable".to_string(),
            };
            let (peak, within, step, over) = match &m {
                Some(m) => (
                    m.peak.map(mib).unwrap_or_else(|| "–".into()),
                    match m.peak {
                        Some(p) if p <= budget => "yes".to_string(),
                        Some(p) => {
                            let over = 100.0 * (p as f64 - budget as f64) / budget as f64;
                            if fits {
                                misses.push(format!(
                                    "{} at {keep}% kept, {planner} (+{over:.1}%)",
                                    s.label
                                ));
                            }
                            format!("no (+{over:.1}%)")
                        }
                        None => "–".into(),
                    },
                    format!("{:.2}", m.step_s * 1e3),
                    format!("{:+.1}%", m.overhead()),
                ),
                None => ("not run".into(), "–".into(), "–".into(), "–".into()),
            };
            let _ = writeln!(
                rows,
                "| {keep}% | {} | {planner} | {} | {:.3} ({:.1}%) | {} | {fits_txt} | {peak} | {within} | {step} | {over} | {secs:.2} |",
                mib(budget),
                o.values,
                o.eval.added_time_s * 1e3,
                100.0 * o.eval.added_time_s / s.step_est_s,
                mib(o.eval.peak_bytes),
            );
        }
        pairs.push(pair);
    }
    let _ = writeln!(
        md,
        "Original training graph, measured: peak {} MiB; best step {} ms (fastest of its \
         runs in the {} timing sessions, one per distinct plan run).\n",
        s.orig_peak.map(mib).unwrap_or_else(|| "–".into()),
        s.orig_steps
            .iter()
            .cloned()
            .reduce(f64::min)
            .map(|t| format!("{:.2}", t * 1e3))
            .unwrap_or_else(|| "–".into()),
        s.orig_steps.len()
    );
    md.push_str(&rows);
    md.push('\n');
}

/// One row of the seed comparison.
struct SeedRow {
    name: String,
    budget: u64,
    values: usize,
    eval: Evaluation,
    measured: Measured,
    secs: f64,
}

/// The seed comparison: μ-TWO's reduction at the lowest budget it reaches (and its largest
/// one, if lower), `ac` given μ-TWO's simulated peak as its budget (at least the same
/// reduction), and `ac`'s own largest reduction; all run in ONNX Runtime.
fn seed_section(s: &mut Setup, md: &mut String) -> String {
    let red = |p: u64, base: u64| 100.0 * (base as f64 - p as f64) / base as f64;
    // mutwo at every budget: (keep, budget, outcome, plan seconds).
    let mut mutwo = Vec::new();
    for keep in KEEP {
        let budget = s.budget(keep);
        eprintln!("{} {keep}% mutwo", s.label);
        if let (Ok(o), secs) = s.plan("mutwo", budget) {
            mutwo.push((keep, budget, o, secs));
        }
    }
    let reached = mutwo
        .iter()
        .position(|(_, b, o, _)| o.eval.peak_bytes <= *b);
    let lowest = (0..mutwo.len()).min_by_key(|&i| (mutwo[i].2.eval.peak_bytes, i));
    let mut picks: Vec<(&str, usize)> = Vec::new();
    if let Some(i) = reached {
        picks.push(("a", i));
    }
    if let Some(i) = lowest {
        if mutwo[i].2.eval.peak_bytes < reached.map_or(u64::MAX, |r| mutwo[r].2.eval.peak_bytes) {
            picks.push(("b", i));
        }
    }
    let _ = writeln!(
        md,
        "## Seed-style comparison: {}\n\n{} nodes; plain training graph: simulated peak {} \
         MiB, saved activations {} MiB; estimated step {:.1} ms. ONNX Runtime runs with one \
         intra-op thread here, for the peaks and verification too (see below). (a) `mutwo` \
         at the lowest of the five budgets above that it reaches{}; then `ac` is given \
         `mutwo`'s simulated peak as its budget, so it must reach at least the same simulated \
         reduction; (c) `ac`'s own best-effort plan for the lowest budget (30% kept), for \
         its largest reduction. Reductions are against the original training graph, \
         simulated and measured.\n",
        s.label,
        s.g().nodes.len(),
        mib(s.sim.peak_bytes),
        mib(s.saved),
        s.step_est_s * 1e3,
        if picks.iter().any(|(t, _)| *t == "b") {
            "; (b) `mutwo`'s largest reduction: the lowest simulated peak among its plans \
             for the five budgets (reached or not)"
        } else {
            " (its plans for the lower, unreachable budgets reach no lower peak)"
        }
    );
    if picks.is_empty() {
        let _ = writeln!(md, "`mutwo` reaches none of the budgets.\n");
        return "mutwo reaches none of the budgets on the seed model".into();
    }
    let mut rows: Vec<SeedRow> = Vec::new();
    let mut sentences = Vec::new();
    let mut ac_plans: Vec<(&str, Vec<String>)> = Vec::new();
    for (tag, i) in picks {
        let (keep, mbudget, ref mo, msecs) = mutwo[i];
        let mfits = mo.eval.peak_bytes <= mbudget;
        let mm = s.measure(mo);
        let abudget = mo.eval.peak_bytes;
        eprintln!("{} ac at mutwo's peak", s.label);
        let (aout, asecs) = s.plan("ac", abudget);
        let ao = aout.expect("ac");
        let am = s.measure(&ao);
        ac_plans.push((tag, ao.plan.recompute.clone()));
        let pct = |m: &Measured| {
            m.peak
                .zip(s.orig_peak)
                .map(|(p, b)| format!("{:.1}%", red(p, b)))
                .unwrap_or_else(|| "–".into())
        };
        sentences.push(format!(
            "({tag}) `mutwo` {} reduces the peak by {:.1}% simulated / {} measured, \
             recomputing {} values for {:.3} ms of added compute (measured overhead {:+.1}%); \
             `ac` reaches {:.1}% / {} with {} values and {:.3} ms ({:+.1}%){}.",
            if mfits {
                format!("at {keep}% kept")
            } else {
                format!("at its largest reduction (its plan for {keep}% kept, unreachable)")
            },
            red(mo.eval.peak_bytes, s.sim.peak_bytes),
            pct(&mm),
            mo.values,
            mo.eval.added_time_s * 1e3,
            mm.overhead(),
            red(ao.eval.peak_bytes, s.sim.peak_bytes),
            pct(&am),
            ao.values,
            ao.eval.added_time_s * 1e3,
            am.overhead(),
            if ao.eval.peak_bytes <= abudget {
                ""
            } else {
                " — ac did not reach mutwo's peak"
            }
        ));
        rows.push(SeedRow {
            name: format!(
                "({tag}) mutwo, {keep}% kept ({})",
                if mfits { "reached" } else { "unreachable" }
            ),
            budget: mbudget,
            values: mo.values,
            eval: mo.eval.clone(),
            measured: mm,
            secs: msecs,
        });
        rows.push(SeedRow {
            name: format!("({tag}) ac, mutwo's peak"),
            budget: abudget,
            values: ao.values,
            eval: ao.eval,
            measured: am,
            secs: asecs,
        });
    }
    // (c) ac's largest reduction.
    let lowest_mutwo = mutwo.iter().map(|m| m.2.eval.peak_bytes).min().unwrap_or(0);
    let cbudget = s.budget(KEEP[0]);
    eprintln!("{} ac at {}%", s.label, KEEP[0]);
    if let (Ok(co), csecs) = s.plan("ac", cbudget) {
        let cm = s.measure(&co);
        let same = ac_plans
            .iter()
            .find(|(_, r)| *r == co.plan.recompute)
            .map(|(t, _)| format!(" (the same plan as ({t})'s `ac`)"))
            .unwrap_or_default();
        let below = if co.eval.peak_bytes < lowest_mutwo {
            format!(
                ", {:.1} KiB below the lowest peak `mutwo` reaches",
                (lowest_mutwo - co.eval.peak_bytes) as f64 / 1024.0
            )
        } else {
            String::new()
        };
        sentences.push(format!(
            "(c) `ac`'s largest reduction: {:.1}% simulated{} with {} values and {:.3} ms \
             ({:+.1}% measured){below}{same}.",
            red(co.eval.peak_bytes, s.sim.peak_bytes),
            cm.peak
                .zip(s.orig_peak)
                .map(|(p, b)| format!(" / {:.1}% measured", red(p, b)))
                .unwrap_or_default(),
            co.values,
            co.eval.added_time_s * 1e3,
            cm.overhead(),
        ));
        rows.push(SeedRow {
            name: format!(
                "(c) ac, {}% kept ({})",
                KEEP[0],
                if co.eval.peak_bytes <= cbudget {
                    "reached"
                } else {
                    "unreachable, best effort"
                }
            ),
            budget: cbudget,
            values: co.values,
            eval: co.eval,
            measured: cm,
            secs: csecs,
        });
    }
    let _ = writeln!(
        md,
        "Original training graph, measured: peak {} MiB; best step {} ms.\n",
        s.orig_peak.map(mib).unwrap_or_else(|| "–".into()),
        s.orig_steps
            .iter()
            .cloned()
            .reduce(f64::min)
            .map(|t| format!("{:.1}", t * 1e3))
            .unwrap_or_else(|| "–".into())
    );
    let _ = writeln!(md, "| plan | budget (MiB) | recomputed | added, ms (% of step) | simulated peak (MiB) | simulated reduction | measured peak (MiB) | measured reduction | step (ms) | overhead | plan time (s) |\n|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let (e, m) = (&r.eval, &r.measured);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.3} ({:.1}%) | {} | {:.1}% | {} | {} | {:.2} | {:+.1}% | {:.2} |",
            r.name,
            mib(r.budget),
            r.values,
            e.added_time_s * 1e3,
            100.0 * e.added_time_s / s.step_est_s,
            mib(e.peak_bytes),
            red(e.peak_bytes, s.sim.peak_bytes),
            m.peak.map(mib).unwrap_or_else(|| "–".into()),
            match (m.peak, s.orig_peak) {
                (Some(p), Some(b)) => format!("{:.1}%", red(p, b)),
                _ => "–".into(),
            },
            m.step_s * 1e3,
            m.overhead(),
            r.secs
        );
    }
    let summary = format!("Seed comparison on {}: {}", s.label, sentences.join(" "));
    let _ = writeln!(md, "\n{}\n", sentences.join("\n\n"));
    let _ = writeln!(
        md,
        "Why one thread: ONNX Runtime's CPU `ScatterND` with `reduction=\"add\"` (the \
         gradient of the token-embedding `Gather`) runs in parallel at this size, and its \
         threads race on repeated token ids (microsoft/onnxruntime#18048): with the default \
         two threads, two runs of the *same* 32×64 training graph differed by up to ~1.5e-3 \
         in `transformer.wte.weight.grad` (≈700× the verification tolerance) in 5 of 6 \
         tries when this was written (`onnx-ac verify` of a graph against a copy of \
         itself), so no rewrite can be verified there. With one thread the runs are \
         deterministic. At 8×64 (every run of the table above) and 16×64 (two tries) \
         verification was bit-identical with the default threads.\n"
    );
    summary
}

/// Child mode: one planner on a synthetic transformer; prints
/// `RESULT secs values peak budget nodes`.
fn synth_plan(target: usize, planner: &str) {
    let m = synth::transformer_with_nodes(target);
    let (tm, info) = build_training_graph(&m, &synth::cross_entropy()).unwrap();
    let g = &tm.graph;
    let (sim, saved) = plain(g, &info);
    let budget = budget_for(sim.peak_bytes, saved, SYNTH_KEEP);
    let (out, secs) = run_planner(planner, g, &info, &onnx_ac::cost::fixed_time, budget);
    let o = out.unwrap();
    println!(
        "RESULT {secs} {} {} {budget} {}",
        o.values,
        o.eval.peak_bytes,
        g.nodes.len()
    );
}

fn synth_section(md: &mut String) -> String {
    let exe = std::env::current_exe().unwrap();
    let limit = Duration::from_secs_f64(SYNTH_STOP_S);
    // planner -> (target, seconds) of its last finished run.
    let mut last: HashMap<&str, (usize, f64)> = HashMap::new();
    let mut cells: HashMap<(&str, usize), String> = HashMap::new();
    let mut nodes: HashMap<usize, usize> = HashMap::new();
    // "planner time" of the finished runs, for the summary.
    let mut short: HashMap<(&str, usize), String> = HashMap::new();
    for (target, skip_s) in SYNTH_SIZES.into_iter().zip(SYNTH_SKIP_S) {
        for planner in SYNTH_PLANNERS {
            let predicted = last
                .get(planner)
                .map(|&(t0, s0)| s0 * (target as f64 / t0 as f64).powi(2));
            if let Some(predicted) = predicted {
                if predicted > skip_s {
                    eprintln!(
                        "synthetic ~{target}: {planner} skipped (predicted {predicted:.0} s)"
                    );
                    cells.insert(
                        (planner, target),
                        format!("skipped (predicted ~{predicted:.0} s)"),
                    );
                    continue;
                }
            }
            eprintln!("synthetic ~{target}: {planner}");
            let mut child = Command::new(&exe)
                .args(["--synth-plan", &target.to_string(), planner])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let t0 = Instant::now();
            let status = loop {
                if let Some(st) = child.try_wait().unwrap() {
                    break Some(st);
                }
                if t0.elapsed() > limit {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let mut text = String::new();
            if let Some(mut out) = child.stdout.take() {
                let _ = std::io::Read::read_to_string(&mut out, &mut text);
            }
            let parsed = text
                .lines()
                .find_map(|l| l.strip_prefix("RESULT "))
                .map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>());
            let c = match (status, parsed) {
                (None, _) => {
                    last.insert(planner, (target, limit.as_secs_f64()));
                    format!("stopped after {:.0} s", limit.as_secs_f64())
                }
                (Some(st), Some(f)) if st.success() && f.len() == 5 => {
                    let secs: f64 = f[0].parse().unwrap();
                    let peak: u64 = f[2].parse().unwrap();
                    let budget: u64 = f[3].parse().unwrap();
                    nodes.insert(target, f[4].parse().unwrap());
                    last.insert(planner, (target, secs));
                    let t = if secs >= 1.0 {
                        format!("{secs:.1} s")
                    } else {
                        format!("{:.1} ms", secs * 1e3)
                    };
                    let pred = match predicted {
                        Some(p) if p >= 1.0 => format!("; predicted {p:.0} s"),
                        Some(p) => format!("; predicted {:.0} ms", p * 1e3),
                        None => String::new(),
                    };
                    let fit = if peak <= budget { "fits" } else { "over" };
                    short.insert(
                        (planner, target),
                        if fit == "over" {
                            format!("{planner} {t} (over the budget)")
                        } else {
                            format!("{planner} {t}")
                        },
                    );
                    format!("{t} ({} values, {fit}{pred})", f[1])
                }
                (Some(st), _) => format!("failed ({st})"),
            };
            cells.insert((planner, target), c);
        }
    }
    let _ = writeln!(
        md,
        "## Planning time\n\nSynthetic GPT-style transformers (`synth::transformer_with_nodes`: \
         hidden 64, 4 heads, seq 128, batch 4, vocab 256), cross-entropy training graph, \
         fixed cost table (`--cost fixed`: 1e-5 s per MatMul/Gemm/Conv, 1e-6 s per other \
         node), budget keeping {SYNTH_KEEP}% of the activations. One plan per cell, in a \
         child process, wall-clock time of `Planner::plan` alone (not the graph build); \
         \"fits\"/\"over\": the plan's simulated peak against the budget. A planner is skipped \
         at a size when its previous size's time × (size ratio)² (\"predicted\") exceeds \
         {} s at ~10k and {} s at ~50k (that size is optional), and stopped after {:.0} s.\n",
        SYNTH_SKIP_S[1],
        SYNTH_SKIP_S[2],
        limit.as_secs_f64()
    );
    let head: Vec<String> = SYNTH_SIZES
        .iter()
        .map(|t| match nodes.get(t) {
            Some(n) => format!("~{}k ({n} nodes)", t / 1000),
            None => format!("~{}k", t / 1000),
        })
        .collect();
    let _ = writeln!(
        md,
        "| planner | {} |\n|---|{}",
        head.join(" | "),
        "---|".repeat(SYNTH_SIZES.len())
    );
    for planner in SYNTH_PLANNERS {
        let row: Vec<String> = SYNTH_SIZES
            .iter()
            .map(|t| cells.get(&(planner, *t)).cloned().unwrap_or_default())
            .collect();
        let _ = writeln!(md, "| {planner} | {} |", row.join(" | "));
    }
    md.push('\n');
    let mut note = Vec::new();
    for t in SYNTH_SIZES {
        let ran: Vec<String> = SYNTH_PLANNERS
            .iter()
            .filter_map(|p| short.get(&(*p, t)).cloned())
            .collect();
        let not: Vec<String> = SYNTH_PLANNERS
            .iter()
            .filter(|p| !short.contains_key(&(**p, t)))
            .map(|p| format!("{p} {}", cells.get(&(*p, t)).cloned().unwrap_or_default()))
            .collect();
        let mut line = format!(
            "~{}k nodes: {}",
            t / 1000,
            if ran.is_empty() {
                "none ran".to_string()
            } else {
                ran.join(", ")
            }
        );
        if !not.is_empty() {
            let _ = write!(line, "; {}", not.join(", "));
        }
        note.push(line);
    }
    note.join("; ")
}

fn gap_summary(pairs: &[Pair]) -> String {
    // (ac − optimal seconds, optimal seconds, pair) where both fit.
    let both: Vec<(f64, f64, &Pair)> = pairs
        .iter()
        .filter_map(|p| match (&p.ac, &p.optimal) {
            (Some((true, a)), Ok((true, o))) => Some((a - o, *o, p)),
            _ => None,
        })
        .collect();
    let at = |p: &Pair| format!("{} at {}% kept", p.fixture, p.keep);
    let rel = |gap: f64, o: f64| {
        if o > 0.0 {
            format!("{:+.1}% of optimal's", 100.0 * gap / o)
        } else {
            "optimal adds nothing there".into()
        }
    };
    let mut s = match both.iter().max_by(|x, y| x.0.total_cmp(&y.0)) {
        Some(&(gap, o, p)) if gap > 1e-9 => format!(
            "`ac` vs `optimal`, simulated added compute where both fit ({} budgets): the \
             largest gap of `ac` over `optimal` is {:+.3} ms ({}) on {}.",
            both.len(),
            gap * 1e3,
            rel(gap, o),
            at(p)
        ),
        Some(_) => format!(
            "`ac` vs `optimal`, simulated added compute where both fit ({} budgets): `ac` \
             never adds more than `optimal` (largest gap 0).",
            both.len()
        ),
        None => "`ac` and `optimal` never both fit.".into(),
    };
    let cheaper: Vec<String> = both
        .iter()
        .filter(|(gap, _, _)| *gap < -1e-9)
        .map(|&(gap, o, p)| format!("{} ({:+.3} ms, {})", at(p), gap * 1e3, rel(gap, o)))
        .collect();
    if !cheaper.is_empty() {
        let _ = write!(
            s,
            " `ac` is cheaper than `optimal` on {}.",
            cheaper.join(", ")
        );
    }
    let mut fails = Vec::new();
    for p in pairs {
        if !matches!(p.ac, Some((true, _))) {
            continue;
        }
        match &p.optimal {
            Ok((false, _)) => fails.push(format!("{} (over the budget)", at(p))),
            Err(e) => fails.push(format!("{} (error: {})", at(p), cell(e))),
            _ => {}
        }
    }
    if !fails.is_empty() {
        let _ = write!(
            s,
            " Where `ac` fits but `optimal` does not (its plan is infeasible or over the \
             simulated budget, since its program models ONNX Runtime's allocator only \
             approximately): {}.",
            fails.join("; ")
        );
    }
    let mut unreachable: Vec<(String, Vec<String>)> = Vec::new();
    for p in pairs.iter().filter(|p| !matches!(p.ac, Some((true, _)))) {
        match unreachable.last_mut() {
            Some((f, keeps)) if *f == p.fixture => keeps.push(format!("{}%", p.keep)),
            _ => unreachable.push((p.fixture.clone(), vec![format!("{}%", p.keep)])),
        }
    }
    let n: usize = unreachable.iter().map(|(_, k)| k.len()).sum();
    let _ = write!(
        s,
        " `ac` finds {n} of the {} (fixture, budget) pairs unreachable: {}.",
        pairs.len(),
        unreachable
            .iter()
            .map(|(f, k)| format!("{f} at {} kept", k.join("/")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    s
}

/// The 1-minute load average.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map(|k| format!(", {:.0} GiB RAM", k / (1024.0 * 1024.0)))
        .unwrap_or_default();
    format!(
        "{cpu}, {} logical / {} physical cores{mem}, {} {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        onnx_ac::plan::host::Host::detect().cores,
        std::env::consts::OS,
        std::env::consts::ARCH
    )
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
