//! Choosing the cost model from the user's options: analytic by default, calibrated with a
//! profile measured now (at a shape that fits the machine) or read from a file on request.

use crate::cost::{select_cost_model, CostModel, Device, FixedCost};
use crate::error::{Error, Result};
use crate::plan;
use crate::profile::{profile_training_graph, Profile, ProfileError, ProfileOptions};
use crate::runtime::RuntimeChoice;
use crate::size::{human_bytes, human_bytes_up, Budget};
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, Model, NodeId};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The chosen cost model: what it is (named once in the summary) and, when it is a fallback
/// the user did not ask for, a one-line note saying why (printed on stderr).
pub struct Costs {
    pub description: String,
    pub note: Option<String>,
    pub model: Box<dyn CostModel>,
}

/// [`select_cost_model`]'s explanation without its `cost model: ` lead (the summary labels it).
fn measured(profile: crate::profile::Profile, g: &Graph, device: Device) -> Costs {
    let (model, why) = select_cost_model(Some(profile), g, true, device);
    let description = why.strip_prefix("cost model: ").unwrap_or(&why).to_string();
    Costs {
        description,
        note: None,
        model,
    }
}

/// The analytic model for `device`, chosen (`note` None) or fallen back to.
fn analytic(device: Device, note: Option<String>) -> Costs {
    let spec = crate::cost::DeviceSpec::from(device);
    Costs {
        description: format!("analytic roofline for {}", spec.describe()),
        note,
        model: Box::new(crate::cost::AnalyticCost::new(spec)),
    }
}

impl Costs {
    pub fn node_time(&self, g: &Graph, n: NodeId) -> f64 {
        self.model.node_time(g, n)
    }
}

/// What default profiling may run: the training graph at smaller values of the model's
/// symbolic dims, and the memory a profiled step may need.
pub struct ProfileShape<'a> {
    /// The `--dim` values the training graph was built with.
    pub dims: BTreeMap<String, i64>,
    /// The budget as asked for (resolved against the training graph).
    pub budget: Budget,
    /// `--profile-limit`, in bytes: replaces the budget as the limit.
    pub limit: Option<u64>,
    /// `--verify`: the step without recomputation runs anyway, so without `--profile-limit`
    /// it is profiled as it is.
    pub verify: bool,
    /// Builds the training graph at other dim values.
    pub build: &'a BuildAt<'a>,
}

/// Builds the training graph at the given `--dim` values.
pub type BuildAt<'a> = dyn Fn(&BTreeMap<String, i64>) -> Result<(Model, TrainingInfo)> + 'a;

/// Where the step is profiled.
enum ProfileAt {
    /// At the requested dims: it fits the limit.
    Requested,
    /// At smaller dims (`dims`), whose training graph is `model`.
    Reduced {
        dims: BTreeMap<String, i64>,
        model: Box<Model>,
    },
    /// Nowhere: the reason, for the note or the error.
    Nowhere(String),
}

/// `--cost`/`--profile`/`--device`: a given profile calibrates the analytic model as is;
/// `fixed` is the constant table; `measured` profiles the training graph now (ONNX Runtime
/// required) and calibrates the analytic model with it; otherwise (the default) the analytic
/// model alone, so that the same command gives the same outputs on every run. A library named
/// by `--ort-lib` or `ORT_DYLIB_PATH` must exist even when this cost model does not load it.
///
/// `measured` never runs a step whose simulated peak is above the limit (the budget, or
/// `--profile-limit`; none with `--verify`, which runs that step anyway): such a step is
/// profiled at the largest halving of its dims (batch first) that fits, its per-node times
/// scaled back to the requested dims by the analytic model. Without a smaller step to profile
/// (no `--dim`), or when ONNX Runtime runs out of memory, it falls back to the analytic model
/// with a note saying why (and which `--profile-limit` would profile the step).
/// Which cost model a command asks for (its `--cost`, `--profile` and `--device`).
#[derive(Clone, Debug, Default)]
pub struct CostChoice {
    /// `measured`, `analytic` (also when absent) or `fixed`.
    pub cost: Option<String>,
    /// A profile file to take node times from (measured, not profiled now).
    pub profile: Option<std::path::PathBuf>,
    /// The device the analytic model describes: `cpu`, `a100`, `h100`.
    pub device: String,
}

pub fn select(
    tm: &Model,
    info: &TrainingInfo,
    plan: &CostChoice,
    rt: &RuntimeChoice,
    model_path: &Path,
    shape: &ProfileShape,
) -> Result<Costs> {
    let device: Device = plan
        .device
        .parse()
        .map_err(|e: String| Error::Usage(format!("--device: {e}")))?;
    // `--ort-lib` and `ORT_DYLIB_PATH` are authoritative: naming nothing usable is an error
    // even when this cost model loads no library.
    if rt.ort_lib.is_some() || std::env::var_os("ORT_DYLIB_PATH").is_some_and(|v| !v.is_empty()) {
        crate::runtime::locate(rt.ort_lib.as_deref())?;
    }
    if let Some(path) = &plan.profile {
        let profile = Profile::load(path).map_err(crate::Error::from)?;
        profile
            .check_graph(&tm.graph)
            .map_err(|reason| Error::Output {
                path: path.clone(),
                reason,
            })?;
        return Ok(measured(profile, &tm.graph, device));
    }
    match plan.cost.as_deref() {
        Some("fixed") => Ok(Costs {
            description: "fixed table (1e-5 s per MatMul/Gemm/Conv, 1e-6 s per other node)".into(),
            note: None,
            model: Box::new(FixedCost::default()),
        }),
        Some("measured") => {
            crate::runtime::init(rt.ort_lib.as_deref())?;
            profile_what_fits(tm, info, rt, model_path, shape, device)
        }
        _ => Ok(analytic(device, None)),
    }
}

/// The measured cost model from a profile of the step at the requested dims, or of a smaller
/// one that fits the limit (times scaled), or else the analytic model with a note saying why.
fn profile_what_fits(
    tm: &Model,
    info: &TrainingInfo,
    rt: &RuntimeChoice,
    model_path: &Path,
    shape: &ProfileShape,
    device: Device,
) -> Result<Costs> {
    let stage = crate::console::Stage::start("simulating the step to profile");
    let base = plan::simulate::simulate_ort_default(&tm.graph, Some(info)).1;
    let (limit, limit_name) = match (shape.limit, shape.verify) {
        (Some(l), _) => (l, "--profile-limit"),
        // --verify runs the step as it is anyway.
        (None, true) => (u64::MAX, "--verify"),
        (None, false) => (
            crate::pipeline::budget_bytes(&tm.graph, info, &base, shape.budget),
            "the budget",
        ),
    };
    let limit_name = format!("{limit_name} ({})", human_bytes(limit));
    let at = choose_shape(base.peak_bytes, limit, &limit_name, shape);
    drop(stage);
    let fall_back = |why: String| -> Result<Costs> {
        Ok(analytic(
            device,
            Some(format!(
                "note: node times are estimated (analytic cost model), not measured: {why}"
            )),
        ))
    };
    let reduced = match at {
        ProfileAt::Requested => None,
        ProfileAt::Reduced { dims, model } => Some((dims, model)),
        ProfileAt::Nowhere(why) => return fall_back(why),
    };
    let profiled = reduced.as_ref().map_or(tm, |(_, m)| &**m);
    let opts = ProfileOptions {
        runs: rt.runs,
        ep: rt.run_options().ep,
        ort_lib: rt.ort_lib.clone(),
        progress: true,
        ..ProfileOptions::default()
    };
    let profile = match profile_training_graph(profiled, model_path, &opts) {
        Ok(p) => p,
        Err(ProfileError::Runtime(e)) if out_of_memory(&e).is_some() => {
            let what = out_of_memory(&e).unwrap_or_default();
            let at = reduced
                .as_ref()
                .map(|(d, _)| format!(" at {}", dims_text(d, &shape.dims).0))
                .unwrap_or_default();
            let hint = if shape.dims.is_empty() {
                String::new()
            } else {
                "; a lower --profile-limit profiles a smaller step".to_string()
            };
            return fall_back(format!(
                "ONNX Runtime ran out of memory profiling the step{at} ({what}){hint}"
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let Some((dims, small)) = reduced else {
        return Ok(measured(profile, &tm.graph, device));
    };
    let spec = crate::cost::DeviceSpec::from(device);
    let (at, requested) = dims_text(&dims, &shape.dims);
    let scaled = scale_profile(
        profile,
        &small.graph,
        &tm.graph,
        &crate::cost::AnalyticCost::new(spec.clone()),
    );
    let model = scaled.model.clone();
    let mut costs = measured(scaled, &tm.graph, device);
    // "… with the profile of M at batch=32 (5 runs …), scaled to batch=64 by the analytic cpu
    // model, factors …"
    costs.description = costs
        .description
        .replacen(
            &format!("profile of {model} ("),
            &format!("profile of {model} at {at} ("),
            1,
        )
        .replacen(
            "), factors",
            &format!(
                "), scaled to {requested} by the analytic {} model, factors",
                spec.name
            ),
            1,
        );
    costs.note = Some(format!(
        "note: profiling at {at}, not {requested}: the step without recomputation needs {} (simulated), more than {limit_name}",
        human_bytes(base.peak_bytes)
    ));
    Ok(costs)
}

/// The most halvings of the dims tried before giving up (each halves one dim; 64 halvings
/// bring any i64 dim to 1).
const MAX_HALVINGS: usize = 256;

/// Where to profile a step whose simulated peak without recomputation is `peak`: at the
/// requested dims if that fits `limit`, else at the first halving of the dims (batch-named
/// dims first, then the largest) whose step fits. Halvings that the trend of the peaks
/// already simulated along the dim puts over the limit are skipped (not built).
fn choose_shape(peak: u64, limit: u64, limit_name: &str, shape: &ProfileShape) -> ProfileAt {
    if peak <= limit {
        return ProfileAt::Requested;
    }
    let over = format!(
        "the step without recomputation needs {} (simulated), more than {limit_name}",
        human_bytes(peak)
    );
    let allow = format!(
        "--profile-limit {} profiles it as it is",
        human_bytes_up(peak).replace(' ', "")
    );
    if shape.dims.is_empty() {
        return ProfileAt::Nowhere(format!(
            "{over}, and the model has no symbolic dim (--dim) to profile a smaller step; {allow}"
        ));
    }
    let mut dims = shape.dims.clone();
    let mut last_peak = peak;
    // The dim halved last, its value before, and the peak then.
    let mut before: Option<(String, i64, u64)> = None;
    for _ in 0..MAX_HALVINGS {
        let Some(name) = dim_to_halve(&dims) else {
            return ProfileAt::Nowhere(format!(
                "{over}, and at {} still {}; {allow}",
                dims_text(&dims, &shape.dims).0,
                human_bytes(last_peak)
            ));
        };
        let v = dims[&name];
        let mut next = v / 2;
        // Two peaks along this dim give its trend (affine: fixed + slope × value); the
        // halvings it puts over the limit are skipped without building their graphs.
        if let Some((d, pv, pp)) = &before {
            if *d == name && *pv > v && *pp > last_peak {
                let slope = (*pp - last_peak) as f64 / (*pv - v) as f64;
                let fixed = last_peak as f64 - slope * v as f64;
                while next > 1 && fixed + slope * next as f64 > limit as f64 {
                    next /= 2;
                }
            }
        }
        before = Some((name.clone(), v, last_peak));
        dims.insert(name, next);
        let (model, info) = match (shape.build)(&dims) {
            Ok(built) => built,
            Err(e) => {
                return ProfileAt::Nowhere(format!(
                    "{over}, and the training graph at {} cannot be built ({e}); {allow}",
                    dims_text(&dims, &shape.dims).0
                ))
            }
        };
        last_peak = plan::simulate::simulate_ort_default(&model.graph, Some(&info))
            .1
            .peak_bytes;
        if last_peak <= limit {
            return ProfileAt::Reduced {
                dims,
                model: Box::new(model),
            };
        }
    }
    ProfileAt::Nowhere(format!("{over}; {allow}"))
}

/// The dim to halve next: a dim named like a batch (`batch`, `batch_size`, ...) while it is
/// above 1, else the largest dim above 1 (the first by name on ties).
fn dim_to_halve(dims: &BTreeMap<String, i64>) -> Option<String> {
    let batch = dims
        .iter()
        .find(|(k, &v)| v > 1 && k.to_ascii_lowercase().contains("batch"));
    let largest = || {
        dims.iter()
            .filter(|(_, &v)| v > 1)
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
    };
    batch.or_else(largest).map(|(k, _)| k.clone())
}

/// The dims that differ: (`batch=64, seq=32`, `batch=512, seq=64`).
fn dims_text(at: &BTreeMap<String, i64>, requested: &BTreeMap<String, i64>) -> (String, String) {
    let changed: Vec<&String> = at
        .keys()
        .filter(|k| requested.get(*k) != at.get(*k))
        .collect();
    let show = |d: &BTreeMap<String, i64>| {
        changed
            .iter()
            .map(|k| format!("{k}={}", d.get(*k).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    (show(at), show(requested))
}

/// `profile` (of the training graph `small`) with each node's time scaled to the training
/// graph `full` (the same graph at larger dims): measured × analytic(full) / analytic(small),
/// per node (unscaled where the analytic model gives the small node no time). Byte figures
/// are `full`'s; the measured peaks, which were the small step's, are dropped.
fn scale_profile(
    mut profile: Profile,
    small: &Graph,
    full: &Graph,
    analytic: &crate::cost::AnalyticCost,
) -> Profile {
    let ids = |g: &Graph| -> HashMap<String, NodeId> {
        g.node_ids().map(|n| (g.node(n).name.clone(), n)).collect()
    };
    let (small_ids, full_ids) = (ids(small), ids(full));
    let (mut before, mut after) = (0.0, 0.0);
    profile.nodes.retain(|name, n| {
        let (Some(&s), Some(&f)) = (small_ids.get(name), full_ids.get(name)) else {
            return false;
        };
        let (a_small, a_full) = (analytic.node_time(small, s), analytic.node_time(full, f));
        before += n.time_s;
        if a_small > 0.0 {
            n.time_s *= a_full / a_small;
        }
        after += n.time_s;
        true
    });
    let ratio = if before > 0.0 { after / before } else { 1.0 };
    profile.step_time_s *= ratio;
    profile.kernel_time_s = after;
    profile.values = crate::profile::value_bytes(full);
    profile.parameter_bytes = crate::profile::initializer_bytes(full);
    profile.input_bytes = full
        .inputs
        .iter()
        .filter(|&&i| full.value(i).initializer.is_none())
        .filter_map(|&i| full.value_bytes(i))
        .sum();
    profile.measured_peak_bytes = None;
    profile.runtime_peak_bytes = None;
    profile.runtime_baseline_bytes = None;
    profile
}

/// A failed allocation in ONNX Runtime, said briefly (`failed to allocate 32.00 MiB in node
/// '/h.1/mlp/Mul_3'`); `None` for any other failure.
fn out_of_memory(e: &crate::runtime::RuntimeError) -> Option<String> {
    use crate::runtime::RuntimeError as R;
    let reason = match e {
        R::Run { reason, .. } | R::ModelLoad { reason, .. } => reason,
        _ => return None,
    };
    let lower = reason.to_ascii_lowercase();
    if !(lower.contains("failed to allocate") || lower.contains("bad_alloc")) {
        return None;
    }
    let size = reason
        .split("requested buffer of size ")
        .nth(1)
        .and_then(|s| {
            s.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .map(|b| format!(" {}", human_bytes(b)))
        .unwrap_or_default();
    let node = reason
        .split("Name:'")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .map(|n| format!(" in node '{n}'"))
        .unwrap_or_default();
    Some(format!("failed to allocate{size}{node}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{AnalyticCost, CostModel};

    fn dims(d: &[(&str, i64)]) -> BTreeMap<String, i64> {
        d.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn batch_dims_are_halved_first_then_the_largest() {
        let d = dims(&[("batch_size", 2), ("seq", 512), ("heads", 8)]);
        assert_eq!(dim_to_halve(&d).as_deref(), Some("batch_size"));
        let d = dims(&[("Batch", 1), ("seq", 512), ("width", 512)]);
        assert_eq!(
            dim_to_halve(&d).as_deref(),
            Some("seq"),
            "ties: first by name"
        );
        assert_eq!(dim_to_halve(&dims(&[("batch", 1), ("seq", 1)])), None);
        assert_eq!(dim_to_halve(&dims(&[])), None);
    }

    #[test]
    fn dims_text_names_only_the_changed_dims() {
        let (at, was) = dims_text(
            &dims(&[("batch", 4), ("seq", 16)]),
            &dims(&[("batch", 8), ("seq", 16)]),
        );
        assert_eq!((at.as_str(), was.as_str()), ("batch=4", "batch=8"));
        let (at, was) = dims_text(
            &dims(&[("batch", 1), ("seq", 8)]),
            &dims(&[("batch", 8), ("seq", 16)]),
        );
        assert_eq!(
            (at.as_str(), was.as_str()),
            ("batch=1, seq=8", "batch=8, seq=16")
        );
    }

    #[test]
    fn out_of_memory_is_recognized_from_onnx_runtime_messages() {
        // As ONNX Runtime 1.31.1 reports a failed arena allocation.
        let reason = "Non-zero status code returned while running Mul node. Name:'/transformer/h.1/mlp/act/Mul_3' Status Message: /onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:360 void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, onnxruntime::Stream*) Failed to allocate memory for requested buffer of size 33554432";
        let run = crate::runtime::RuntimeError::Run {
            path: "t.onnx".into(),
            reason: reason.into(),
        };
        assert_eq!(
            out_of_memory(&run).as_deref(),
            Some("failed to allocate 32.00 MiB in node '/transformer/h.1/mlp/act/Mul_3'")
        );
        let load = crate::runtime::RuntimeError::ModelLoad {
            path: "t.onnx".into(),
            reason: "std::bad_alloc".into(),
        };
        assert_eq!(out_of_memory(&load).as_deref(), Some("failed to allocate"));
        let other = crate::runtime::RuntimeError::Run {
            path: "t.onnx".into(),
            reason: "Non-zero status code returned while running Reshape node".into(),
        };
        assert_eq!(out_of_memory(&other), None);
    }

    /// Each node's time is scaled by its analytic ratio (full / small); byte figures become
    /// the full graph's and the small step's measured peaks are dropped.
    #[test]
    fn a_small_profile_is_scaled_to_the_full_graph_per_node() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/models/mlp_dynbatch.ts17.onnx");
        let opts = onnx_ac_passes::synth::cross_entropy();
        let at = |b| {
            crate::load_training_graph(&path, &dims(&[("batch", b)]), &opts)
                .unwrap()
                .0
        };
        let (small, full) = (at(2), at(64));
        let nodes: BTreeMap<String, crate::profile::NodeProfile> = small
            .graph
            .nodes
            .iter()
            .map(|n| {
                let p = crate::profile::NodeProfile {
                    op: n.op_type.clone(),
                    time_s: 1e-3,
                };
                (n.name.clone(), p)
            })
            .collect();
        let profile = Profile {
            format: crate::profile::FORMAT.into(),
            version: crate::profile::VERSION,
            model: "m".into(),
            ep: "cpu".into(),
            ort_version: String::new(),
            graph_optimization: "disabled".into(),
            runs: 1,
            warmup: 0,
            seed: 0,
            kernel_time_s: 1e-3 * nodes.len() as f64,
            step_time_s: 2e-3 * nodes.len() as f64,
            nodes,
            values: crate::profile::value_bytes(&small.graph),
            measured_peak_bytes: Some(1),
            runtime_peak_bytes: Some(1),
            runtime_baseline_bytes: Some(0),
            parameter_bytes: 0,
            input_bytes: 0,
            warnings: Vec::new(),
        };
        let analytic = AnalyticCost::new(Device::Cpu);
        let scaled = scale_profile(profile, &small.graph, &full.graph, &analytic);
        let (g, s) = (&full.graph, &small.graph);
        let mut grew = 0;
        assert_eq!(g.nodes.len(), s.nodes.len());
        for n in g.node_ids() {
            let name = &g.node(n).name;
            let sn = s.node_ids().find(|&x| &s.node(x).name == name).unwrap();
            let (a_full, a_small) = (analytic.node_time(g, n), analytic.node_time(s, sn));
            let want = if a_small > 0.0 {
                1e-3 * a_full / a_small
            } else {
                1e-3
            };
            let got = scaled.time_of_name(name).unwrap();
            assert!((got - want).abs() <= 1e-12 * want, "{name}");
            grew += usize::from(got > 1.5e-3);
        }
        assert!(grew > 0, "the batch-proportional nodes take longer");
        let sum: f64 = scaled.nodes.values().map(|n| n.time_s).sum();
        assert!((scaled.kernel_time_s - sum).abs() < 1e-12);
        assert!((scaled.step_time_s - 2.0 * sum).abs() < 1e-9);
        assert_eq!(scaled.values, crate::profile::value_bytes(g));
        assert_eq!(scaled.measured_peak_bytes, None);
        assert_eq!(scaled.runtime_peak_bytes, None);
    }

    /// The halvings land where halving one at a time would (the largest power-of-two
    /// fraction of the batch that fits), building fewer graphs than halvings.
    #[test]
    fn halvings_the_trend_rules_out_are_not_built() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/models/mlp_dynbatch.ts17.onnx");
        let opts = onnx_ac_passes::synth::cross_entropy();
        let built = std::cell::RefCell::new(Vec::new());
        let build = |d: &BTreeMap<String, i64>| {
            built.borrow_mut().push(d["batch"]);
            crate::load_training_graph(&path, d, &opts)
        };
        let peak_at = |b| {
            let (m, info) = build(&dims(&[("batch", b)])).unwrap();
            plan::simulate::simulate_ort_default(&m.graph, Some(&info))
                .1
                .peak_bytes
        };
        let (full, fits) = (peak_at(4096), peak_at(64));
        assert!(peak_at(128) > fits);
        built.borrow_mut().clear();
        let shape = ProfileShape {
            dims: dims(&[("batch", 4096)]),
            budget: Budget::Bytes(fits),
            limit: None,
            verify: false,
            build: &build,
        };
        match choose_shape(full, fits, "the budget", &shape) {
            ProfileAt::Reduced { dims: d, .. } => assert_eq!(d["batch"], 64),
            _ => panic!("not reduced"),
        }
        let built = built.borrow();
        assert_eq!(built.first(), Some(&2048), "the first halving is built");
        assert_eq!(built.last(), Some(&64));
        assert!(built.len() < 6, "6 halvings, built: {built:?}");
    }
}
