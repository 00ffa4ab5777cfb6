//! Profiling a training graph with ONNX Runtime: per-node kernel times (median over runs),
//! bytes per value (from the graph's static shapes), the measured peak memory of one run, and
//! the step time. The result is a [`Profile`], saved as JSON (`docs/profiling.md`) and read back
//! by the measured cost model ([`crate::cost::MeasuredCost`]).
//!
//! Sessions run with graph optimizations **disabled** so that every kernel ONNX Runtime times is
//! one node of our graph, under the same name (fused kernels would carry other names). Node
//! names must therefore be unique and non-empty; [`check_node_names`] says which are not.

mod inputs;

pub use inputs::{input_kind, random_inputs, InputKind, SplitMix64};

/// Inputs for a training graph: random, with indices and labels in range (seed 0).
pub fn inputs_for(
    g: &onnx_ac_passes::ir::Graph,
) -> Result<Vec<crate::runtime::HostTensor>, ProfileError> {
    random_inputs(g, 0)
}

use crate::onnx::OnnxError;
use crate::runtime::{self, Ep, GraphOpt, HostTensor, ModelSession, RunOptions, RuntimeError};
use onnx_ac_passes::ir::{Graph, Model};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;
use thiserror::Error;

/// The `format` field of every profile file.
pub const FORMAT: &str = "onnx-ac-profile";
/// The profile format version this build writes and reads.
pub const VERSION: u32 = 1;

/// ONNX Runtime keeps initializers larger than this many bytes in the loaded model buffer
/// instead of allocating them, so the counting allocator does not see them (see
/// `crate::runtime::RunResult::peak_bytes`).
pub const UNCOUNTED_INITIALIZER_MIN_BYTES: u64 = 128;

#[derive(Debug, Error)]
pub enum ProfileError {
    #[error("{}: {problem}; the profile maps ONNX Runtime's per-node times by node name, so every node needs a unique, non-empty name", .model.display())]
    NodeNames { model: PathBuf, problem: String },

    #[error("input '{name}': {reason}")]
    Input { name: String, reason: String },

    #[error("cannot write the training graph for ONNX Runtime: {0}")]
    Save(#[from] OnnxError),

    #[error(transparent)]
    Runtime(#[from] RuntimeError),

    #[error("{0}")]
    Options(String),

    #[error("{}: {reason}", .path.display())]
    Format { path: PathBuf, reason: String },

    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
}

impl ProfileError {
    /// The tool's exit code for this error: 2 for bad input, options or environment, 1 for an
    /// internal failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ProfileError::Save(OnnxError::Serialize { .. }) => 1,
            _ => 2,
        }
    }
}

/// Time of one node in a profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeProfile {
    /// The node's op type.
    pub op: String,
    /// Median kernel time over the measured runs, in seconds. 0 for nodes ONNX Runtime does not
    /// run as kernels (`Constant` nodes become initializers when the model is loaded).
    pub time_s: f64,
}

/// What profiling a training graph measured. Serialized as `docs/profiling.md` describes;
/// maps are sorted by name so the file is deterministic for equal measurements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] when written by this build.
    pub version: u32,
    /// The model the training graph was built from, as given.
    pub model: String,
    /// Execution provider: "cpu" or "cuda".
    pub ep: String,
    /// ONNX Runtime version used.
    #[serde(default)]
    pub ort_version: String,
    /// Graph optimization level of the profiled sessions ("disabled").
    #[serde(default)]
    pub graph_optimization: String,
    /// Measured runs (the medians are over these), and warm-up runs before them.
    pub runs: usize,
    #[serde(default)]
    pub warmup: usize,
    /// Seed of the random inputs.
    #[serde(default)]
    pub seed: u64,
    /// Per node name: op type and median kernel time. Every node of the graph, except the
    /// ones ONNX Runtime did not time under their name (listed in `warnings`).
    pub nodes: BTreeMap<String, NodeProfile>,
    /// Per value name (graph inputs, initializers, node outputs): bytes from the static shape.
    pub values: BTreeMap<String, u64>,
    /// What the run added at its peak (`runtime_peak_bytes - runtime_baseline_bytes`:
    /// activations, gradients, kernel scratch buffers) plus `parameter_bytes` and
    /// `input_bytes`. Comparable with a planner's total peak. `None` when the measurement
    /// failed (see `warnings`).
    pub measured_peak_bytes: Option<u64>,
    /// Peak bytes ONNX Runtime allocated through the counting allocator in one run of a fresh
    /// session (memory patterns off), including `runtime_baseline_bytes`.
    #[serde(default)]
    pub runtime_peak_bytes: Option<u64>,
    /// Bytes the session held before the run: initializers under
    /// [`UNCOUNTED_INITIALIZER_MIN_BYTES`] and weights ONNX Runtime prepacked for its CPU
    /// MatMul/Gemm kernels (larger initializers are never counted).
    #[serde(default)]
    pub runtime_baseline_bytes: Option<u64>,
    /// Bytes of all initializers (parameters and constants).
    pub parameter_bytes: u64,
    /// Bytes of all graph inputs (data and labels).
    #[serde(default)]
    pub input_bytes: u64,
    /// Median wall-clock time of one `Session::Run` (profiling off, optimizations disabled),
    /// in seconds.
    pub step_time_s: f64,
    /// Sum of the per-node median times, in seconds.
    #[serde(default)]
    pub kernel_time_s: f64,
    /// Non-fatal notes: nodes missing from ONNX Runtime's profile, a peak not measured, ...
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Profile {
    /// Writes the profile as pretty-printed JSON (through a temporary renamed into place).
    pub fn save(&self, path: &Path) -> Result<(), ProfileError> {
        let mut text = self.to_json();
        text.push('\n');
        let mut staging = crate::output::Staging::new();
        staging.write(path, text.as_bytes())?;
        Ok(staging.commit()?)
    }

    /// The profile as pretty-printed JSON (keys in a fixed order).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a profile always serializes")
    }

    /// Reads a profile written by [`Profile::save`], checking its format and version.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = crate::safefs::read_input_text(path, crate::safefs::JSON_LIMIT_BYTES).map_err(
            |source| ProfileError::Io {
                path: path.to_path_buf(),
                source,
            },
        )?;
        Profile::from_json(&text).map_err(|reason| ProfileError::Format {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses a profile; the error says what is wrong and how to get a good file.
    pub fn from_json(text: &str) -> Result<Profile, String> {
        let doc: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("not a JSON file ({e}); expected an onnx-ac profile"))?;
        let format = doc.get("format").and_then(|f| f.as_str());
        if format != Some(FORMAT) {
            return Err(format!(
                "not an onnx-ac profile (\"format\" is {}, expected \"{FORMAT}\"); write one with `onnx-ac profile MODEL -o FILE`",
                format.map_or("missing".to_string(), |f| format!("\"{f}\""))
            ));
        }
        match doc.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "profile format version {v} is not supported by this onnx-ac (it reads version {VERSION}); profile the model again with this onnx-ac"
                ))
            }
            None => return Err("the profile has no integer \"version\" field".to_string()),
        }
        let p: Profile =
            serde_json::from_value(doc).map_err(|e| format!("malformed onnx-ac profile: {e}"))?;
        p.check_times()?;
        Ok(p)
    }

    /// Every time must be a finite number of seconds, not negative: a NaN or negative
    /// time would make recomputation look free or profitable to every planner.
    fn check_times(&self) -> Result<(), String> {
        let bad = |t: f64| !t.is_finite() || t < 0.0;
        for (name, n) in &self.nodes {
            if bad(n.time_s) {
                return Err(format!(
                    "node '{name}' ({}) has time_s {}; times must be finite and not negative",
                    n.op, n.time_s
                ));
            }
        }
        for (field, t) in [
            ("step_time_s", self.step_time_s),
            ("kernel_time_s", self.kernel_time_s),
        ] {
            if bad(t) {
                return Err(format!(
                    "{field} is {t}; times must be finite and not negative"
                ));
            }
        }
        Ok(())
    }

    /// A profile is of this training graph: every node it times is a node of `g` (it may
    /// miss some, listed in its warnings). Lists up to 5 names it has that `g` does not.
    pub fn check_graph(&self, g: &Graph) -> Result<(), String> {
        let names: std::collections::HashSet<&str> =
            g.nodes.iter().map(|n| n.name.as_str()).collect();
        let extra: Vec<&str> = self
            .nodes
            .keys()
            .map(String::as_str)
            .filter(|n| !names.contains(n))
            .collect();
        if extra.is_empty() {
            return Ok(());
        }
        let mut list: Vec<String> = extra.iter().take(5).map(|n| format!("'{n}'")).collect();
        if extra.len() > 5 {
            list.push(format!("and {} more", extra.len() - 5));
        }
        Err(format!(
            "the profile times {} node(s) the training graph does not have (a profile of another model, or of other --loss/--dim options?): {}",
            extra.len(),
            list.join(", ")
        ))
    }

    /// The median time of the node named `name`, if the profile has it.
    pub fn time_of_name(&self, name: &str) -> Option<f64> {
        self.nodes.get(name).map(|n| n.time_s)
    }

    /// Names of `g`'s nodes the profile does not know (a profile of another graph, or nodes
    /// added after profiling, such as recompute copies).
    pub fn missing_nodes<'g>(&self, g: &'g Graph) -> Vec<&'g str> {
        g.nodes
            .iter()
            .map(|n| n.name.as_str())
            .filter(|n| !self.nodes.contains_key(*n))
            .collect()
    }
}

/// How to profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileOptions {
    /// Measured runs; per-node times and the step time are medians over them.
    pub runs: usize,
    /// Unmeasured runs before them (page faults, kernel selection, thread-pool start).
    pub warmup: usize,
    pub ep: Ep,
    /// The libonnxruntime to load (`--ort-lib`).
    pub ort_lib: Option<PathBuf>,
    /// Seed of the random inputs ([`random_inputs`]).
    pub seed: u64,
    /// Intra-op threads of ONNX Runtime; `None` keeps its default (one per physical core).
    pub intra_threads: Option<usize>,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions {
            runs: 5,
            warmup: 1,
            ep: Ep::Cpu,
            ort_lib: None,
            seed: 0,
            intra_threads: None,
            progress: true,
        }
    }
}

/// Checks that every node has a unique, non-empty name (needed to map ONNX Runtime's
/// per-node times back to our nodes).
pub fn check_node_names(g: &Graph, model_path: &Path) -> Result<(), ProfileError> {
    let empty = g.nodes.iter().filter(|n| n.name.is_empty()).count();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for n in g.nodes.iter().filter(|n| !n.name.is_empty()) {
        *seen.entry(&n.name).or_default() += 1;
    }
    let mut dups: Vec<&str> = seen
        .iter()
        .filter(|(_, &c)| c > 1)
        .map(|(n, _)| *n)
        .collect();
    dups.sort_unstable();
    if empty == 0 && dups.is_empty() {
        return Ok(());
    }
    let mut parts = Vec::new();
    if empty > 0 {
        parts.push(format!("{empty} node(s) have no name"));
    }
    if !dups.is_empty() {
        let shown: Vec<String> = dups.iter().take(5).map(|d| format!("'{d}'")).collect();
        let more = if dups.len() > 5 {
            format!(" and {} more", dups.len() - 5)
        } else {
            String::new()
        };
        parts.push(format!(
            "node names used more than once: {}{more}",
            shown.join(", ")
        ));
    }
    Err(ProfileError::NodeNames {
        model: model_path.to_path_buf(),
        problem: format!(
            "{} (name the nodes, e.g. re-export the model, or run onnx's `onnx.utils` name fixers)",
            parts.join("; ")
        ),
    })
}

fn ep_name(ep: Ep) -> &'static str {
    match ep {
        Ep::Cpu => "cpu",
        Ep::Cuda => "cuda",
    }
}

fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

/// Bytes per value: graph inputs, initializers and node outputs with a static shape.
pub fn value_bytes(g: &Graph) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut add = |v| {
        if let Some(b) = g.value_bytes(v) {
            out.insert(g.value(v).name.clone(), b);
        }
    };
    for &v in g.inputs.iter().chain(&g.initializers) {
        add(v);
    }
    for n in &g.nodes {
        for &o in n.outputs.iter().flatten() {
            add(o);
        }
    }
    out
}

/// Bytes of all initializers.
pub fn initializer_bytes(g: &Graph) -> u64 {
    g.initializers
        .iter()
        .map(|&i| {
            let v = g.value(i);
            v.initializer
                .as_ref()
                .and_then(|t| t.size_bytes())
                .or_else(|| g.value_bytes(i))
                .unwrap_or(0)
        })
        .sum()
}

struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(show: bool, len: u64) -> Progress {
        if !show || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new(len);
        let style = indicatif::ProgressStyle::with_template(
            "profiling [{bar:30}] {pos}/{len} {msg} ({elapsed})",
        )
        .map(|s| s.progress_chars("=> "));
        if let Ok(style) = style {
            bar.set_style(style);
        }
        Progress(Some(bar))
    }
    fn step(&self, msg: String) {
        if let Some(b) = &self.0 {
            b.set_message(msg);
        }
    }
    fn inc(&self) {
        if let Some(b) = &self.0 {
            b.inc(1);
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// Wall-clock seconds of `runs` runs of `session` after `warmup` unmeasured ones.
pub fn time_runs(
    session: &mut ModelSession,
    inputs: &[HostTensor],
    warmup: usize,
    runs: usize,
) -> Result<Vec<f64>, ProfileError> {
    for _ in 0..warmup {
        session.run(inputs)?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        session.run(inputs)?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(times)
}

/// Median step time of the model at `model_path` under `opts` (profiling off), in seconds.
/// Used to compare optimization levels (`docs/profiling.md`).
pub fn median_step_time(
    model_path: &Path,
    inputs: &[HostTensor],
    opts: &RunOptions,
    warmup: usize,
    runs: usize,
) -> Result<f64, ProfileError> {
    let mut session = ModelSession::prepare(model_path, opts)?;
    let mut t = time_runs(&mut session, inputs, warmup, runs)?;
    Ok(median(&mut t))
}

/// A training graph written to a temporary folder for ONNX Runtime (deleted on drop).
pub struct SavedGraph {
    dir: tempfile::TempDir,
    path: PathBuf,
    /// Removes the folder on Ctrl-C too (a saved training graph may be hundreds of MB).
    _guard: crate::output::TempGuard,
}

impl SavedGraph {
    pub fn new(model: &Model) -> Result<SavedGraph, ProfileError> {
        let dir = tempfile::Builder::new()
            .prefix("onnx-ac-profile-")
            .tempdir()
            .map_err(|source| ProfileError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let guard = crate::output::TempGuard::new(dir.path());
        let path = dir.path().join("training.onnx");
        crate::onnx::save(model, &path, &crate::onnx::SaveOptions::default())?;
        Ok(SavedGraph {
            dir,
            path,
            _guard: guard,
        })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// ONNX Runtime inlines the body of function ops it has no kernel for (`CastLike` is the one
/// our fixtures use), and the inlined nodes carry generated names (`Cast_426`) that no longer
/// map to ours. The copy given to ONNX Runtime therefore has each `CastLike` replaced by the
/// equivalent `Cast` under the same name (the target type is the second input's, known
/// statically). `None` when nothing needs replacing.
pub fn prepare_for_ort(model: &Model) -> Option<Model> {
    let g = &model.graph;
    let castlike = |n: &onnx_ac_passes::ir::Node| {
        n.op_type == "CastLike"
            && n.is_standard_domain()
            && n.input(1).is_some_and(|t| g.value(t).dtype.is_some())
    };
    if !g.nodes.iter().any(castlike) {
        return None;
    }
    let mut m = model.clone();
    for i in 0..m.graph.nodes.len() {
        if !castlike(&g.nodes[i]) {
            continue;
        }
        let to = g.nodes[i]
            .input(1)
            .and_then(|t| g.value(t).dtype)
            .expect("checked above");
        let n = &mut m.graph.nodes[i];
        n.op_type = "Cast".to_string();
        n.inputs.truncate(1);
        n.attrs.retain(|a| a.name != "to");
        n.attrs.push(onnx_ac_passes::ir::Attribute::int(
            "to",
            i64::from(to.to_onnx()),
        ));
    }
    Some(m)
}

/// Profiles the training graph `graph_model` (static shapes everywhere) with ONNX Runtime.
/// `model_path` is the model it was built from; it names the model in the profile and in errors.
pub fn profile_training_graph(
    graph_model: &Model,
    model_path: &Path,
    opts: &ProfileOptions,
) -> Result<Profile, ProfileError> {
    if opts.runs == 0 {
        return Err(ProfileError::Options(
            "--runs must be at least 1".to_string(),
        ));
    }
    let g = &graph_model.graph;
    check_node_names(g, model_path)?;
    let inputs = random_inputs(g, opts.seed)?;
    let library = runtime::init(opts.ort_lib.as_deref())?;
    let for_ort = prepare_for_ort(graph_model);
    let saved = SavedGraph::new(for_ort.as_ref().unwrap_or(graph_model))?;
    let mut warnings = Vec::new();

    let progress = Progress::new(opts.progress, 2 * (opts.warmup + opts.runs) as u64 + 1);
    let base_opts = RunOptions {
        ep: opts.ep,
        graph_opt: GraphOpt::Disabled,
        intra_threads: opts.intra_threads,
        ort_lib: opts.ort_lib.clone(),
        ..RunOptions::default()
    };

    // Step time: profiling off (writing the per-run trace costs far more than the run).
    progress.step("creating the session".into());
    let mut session = ModelSession::prepare(saved.path(), &base_opts)?;
    let mut steps = Vec::with_capacity(opts.runs);
    for i in 0..opts.warmup + opts.runs {
        progress.step(format!("timing run {}/{}", i + 1, opts.warmup + opts.runs));
        let t = Instant::now();
        session.run(&inputs)?;
        if i >= opts.warmup {
            steps.push(t.elapsed().as_nanos() as f64);
        }
        progress.inc();
    }
    drop(session);

    // Per-node times: per-run profiling on.
    let run_opts = RunOptions {
        profile: true,
        ..base_opts.clone()
    };
    let mut session = ModelSession::prepare(saved.path(), &run_opts)?;
    for i in 0..opts.warmup {
        progress.step(format!("profiled warm-up {}/{}", i + 1, opts.warmup));
        session.run(&inputs)?;
        progress.inc();
    }
    let mut per_node: HashMap<String, Vec<f64>> = HashMap::new();
    let mut unknown: Vec<String> = Vec::new();
    let names: HashMap<&str, &str> = g
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.op_type.as_str()))
        .collect();
    for i in 0..opts.runs {
        progress.step(format!("profiled run {}/{}", i + 1, opts.runs));
        let result = session.run(&inputs)?;
        let mut this_run: HashMap<&str, f64> = HashMap::new();
        for nt in &result.node_times {
            if !names.contains_key(nt.node_name.as_str()) {
                if !unknown.contains(&nt.node_name) {
                    unknown.push(nt.node_name.clone());
                }
                continue;
            }
            *this_run.entry(nt.node_name.as_str()).or_default() += nt.duration_us;
        }
        for (name, t) in this_run {
            per_node.entry(name.to_string()).or_default().push(t);
        }
        progress.inc();
    }
    drop(session);

    // Times are kept in whole microseconds (ONNX Runtime's unit) until the end, so the
    // seconds written are short decimals that read back bit-exactly.
    let mut nodes = BTreeMap::new();
    let mut missing = Vec::new();
    let mut kernel_us = 0.0;
    for n in &g.nodes {
        let time_s = match per_node.get_mut(&n.name) {
            Some(ts) => {
                let us = median(ts);
                kernel_us += us;
                us / 1e6
            }
            None if n.op_type == "Constant" => 0.0,
            None => {
                // Left out: cost models fall back to an estimate for it.
                missing.push(n.name.clone());
                continue;
            }
        };
        nodes.insert(
            n.name.clone(),
            NodeProfile {
                op: n.op_type.clone(),
                time_s,
            },
        );
    }
    if !missing.is_empty() {
        warnings.push(format!(
            "{} node(s) did not appear in ONNX Runtime's profile and have no time (cost models estimate them): {}",
            missing.len(),
            missing
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !unknown.is_empty() {
        warnings.push(format!(
            "ONNX Runtime timed {} kernel(s) that are not nodes of the graph (ignored): {}",
            unknown.len(),
            unknown
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // Peak memory: one run of a fresh session, memory patterns off, counting allocator.
    progress.step("measuring peak memory".into());
    let peak_opts = RunOptions {
        measure_peak: true,
        ..base_opts
    };
    let mut peak_session = ModelSession::prepare(saved.path(), &peak_opts)?;
    let peak_run = peak_session.run(&inputs)?;
    drop(peak_session);
    progress.inc();
    progress.finish();
    for w in peak_run.warnings {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }

    let parameter_bytes = initializer_bytes(g);
    let run_bytes = match (peak_run.peak_bytes, peak_run.baseline_bytes) {
        (Some(p), Some(b)) => Some(p.saturating_sub(b)),
        _ => None,
    };
    let input_bytes: u64 = inputs.iter().map(|t| t.data.len() as u64).sum();
    Ok(Profile {
        format: FORMAT.to_string(),
        version: VERSION,
        model: model_path.display().to_string(),
        ep: ep_name(opts.ep).to_string(),
        ort_version: library.version.clone(),
        graph_optimization: "disabled".to_string(),
        runs: opts.runs,
        warmup: opts.warmup,
        seed: opts.seed,
        nodes,
        values: value_bytes(g),
        measured_peak_bytes: run_bytes.map(|r| r + parameter_bytes + input_bytes),
        runtime_peak_bytes: peak_run.peak_bytes,
        runtime_baseline_bytes: peak_run.baseline_bytes,
        parameter_bytes,
        input_bytes,
        step_time_s: median(&mut steps) / 1e9,
        kernel_time_s: kernel_us / 1e6,
        warnings,
    })
}
