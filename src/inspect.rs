//! `onnx-ac inspect`: what is in a model, and what a training step would keep in memory
//! without recomputation.

use onnx_ac_passes::autodiff::{self, Loss, TrainOptions};
use onnx_ac_passes::ir::{shape_string, Model, TensorData};
use serde::Serialize;
use std::collections::BTreeMap;

/// Machine output of `inspect --json`; field names and meanings are documented in
/// docs/cli.md and kept stable.
#[derive(Debug, Serialize)]
pub struct InspectReport {
    pub format_version: u32,
    pub ir_version: i64,
    pub opsets: BTreeMap<String, i64>,
    pub producer: String,
    pub nodes: usize,
    pub op_histogram: BTreeMap<String, usize>,
    /// The initializers the training graph trains.
    pub parameters: Initializers,
    /// Every other initializer: shape and index constants, frozen or unused weights.
    pub constants: Initializers,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    pub activations: Activations,
}

/// A set of initializers.
#[derive(Debug, Default, Serialize)]
pub struct Initializers {
    pub tensors: usize,
    pub elements: u64,
    pub bytes: u64,
    pub external_tensors: usize,
    /// Tensors per element type (`f32`, `i64`, ...).
    pub dtypes: BTreeMap<String, usize>,
}

impl Initializers {
    fn add(&mut self, m: &Model, v: onnx_ac_passes::ir::ValueId) {
        let val = m.graph.value(v);
        let t = val.initializer.as_ref().expect("initializer");
        self.tensors += 1;
        self.elements += t.numel();
        self.bytes += t.size_bytes().unwrap_or(0);
        if matches!(t.data, TensorData::External(_)) {
            self.external_tensors += 1;
        }
        let dtype = val
            .dtype
            .map(|d| d.to_string())
            .unwrap_or_else(|| "?".into());
        *self.dtypes.entry(dtype).or_insert(0) += 1;
    }
}

#[derive(Debug, Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: String,
    pub bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Activations {
    /// How the loss was chosen for the estimate.
    pub loss: String,
    /// Forward values the backward reads (kept from forward to backward).
    pub saved_values: Option<usize>,
    pub saved_bytes: Option<u64>,
    /// The training step's simulated peak without recomputation (the host profile's).
    pub plain_peak_bytes: Option<u64>,
    /// The lowest budget the default planner (`ac`, analytic cpu costs) reaches; every
    /// budget from it up to `plain_peak_bytes` is reachable, and above it nothing is
    /// recomputed.
    pub lowest_budget_bytes: Option<u64>,
    /// With `--optimizer`: the optimizer state inputs (momenta, AdamW's moments and step
    /// count), their count and bytes; like the trained parameters, inputs of the step alive
    /// through it, and updated as outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer_state: Option<OptimizerState>,
    /// Why no estimate could be made, if so.
    pub unavailable: Option<String>,
}

/// The optimizer state inputs of a training step.
#[derive(Debug, Serialize)]
pub struct OptimizerState {
    pub tensors: usize,
    pub bytes: u64,
}

fn tensor_info(m: &Model, v: onnx_ac_passes::ir::ValueId) -> TensorInfo {
    let val = m.graph.value(v);
    TensorInfo {
        name: val.name.clone(),
        dtype: val
            .dtype
            .map(|d| d.to_string())
            .unwrap_or_else(|| "?".into()),
        shape: shape_string(val.shape.as_ref()),
        bytes: m.graph.value_bytes(v),
    }
}

/// The loss used for the estimate: the one the user chose, else the model's scalar output,
/// else cross-entropy on the first float output.
pub fn default_loss(m: &Model) -> Loss {
    let g = &m.graph;
    if let [o] = g.outputs.as_slice() {
        let v = g.value(*o);
        if v.shape
            .as_ref()
            .is_some_and(|s| s.iter().all(|d| d.known() == Some(1)))
        {
            return Loss::Auto;
        }
    }
    let first_float = g
        .outputs
        .iter()
        .find(|&&o| g.value(o).dtype.is_some_and(|d| d.is_float()));
    match first_float {
        Some(&o) => Loss::CrossEntropy {
            logits: g.value(o).name.clone(),
            labels: "labels".into(),
        },
        None => Loss::Auto,
    }
}

pub fn inspect(m: &Model, opts: &TrainOptions) -> InspectReport {
    let g = &m.graph;
    let mut op_histogram = BTreeMap::new();
    for n in &g.nodes {
        let key = if n.is_standard_domain() {
            n.op_type.clone()
        } else {
            format!("{}::{}", n.domain, n.op_type)
        };
        *op_histogram.entry(key).or_insert(0) += 1;
    }
    let training = autodiff::build_training_graph(m, opts);
    // The parameters are the training graph's (float, not frozen, reaching the loss); when
    // it cannot be built, the initializers it could train (float, not frozen).
    let trained: std::collections::HashSet<String> = match &training {
        Ok((tm, info)) => info
            .params
            .iter()
            .map(|&p| tm.graph.value(p).name.clone())
            .collect(),
        Err(_) => autodiff::parameter_candidates(g, &opts.freeze)
            .iter()
            .map(|&p| g.value(p).name.clone())
            .collect(),
    };
    let (mut parameters, mut constants) = (Initializers::default(), Initializers::default());
    for &i in &g.initializers {
        if trained.contains(&g.value(i).name) {
            parameters.add(m, i);
        } else {
            constants.add(m, i);
        }
    }
    let activations = match &training {
        Ok((tm, info)) => {
            let saved = autodiff::saved_activations(&tm.graph);
            use crate::cost::CostModel;
            let cost = crate::cost::AnalyticCost::new(crate::cost::Device::Cpu);
            let node_time =
                |g: &onnx_ac_passes::ir::Graph, n: onnx_ac_passes::ir::NodeId| cost.node_time(g, n);
            let peaks = crate::pipeline::reachable_peaks(&tm.graph, info, "ac", &node_time);
            Activations {
                loss: opts.loss.describe(),
                saved_values: Some(saved.len()),
                saved_bytes: Some(saved.iter().filter_map(|&v| tm.graph.value_bytes(v)).sum()),
                plain_peak_bytes: peaks.as_ref().ok().map(|p| p.1),
                lowest_budget_bytes: peaks
                    .as_ref()
                    .ok()
                    .map(|&(low, plain)| crate::pipeline::budget_for_peak(low, plain)),
                unavailable: peaks.err().map(|e| format!("planning: {e}")),
                optimizer_state: info.optimizer.as_ref().map(|_| {
                    let g = &tm.graph;
                    let state: Vec<_> = g
                        .inputs
                        .iter()
                        .filter(|&&i| g.value(i).initializer.is_some() && !info.params.contains(&i))
                        .collect();
                    let bytes = state.iter().filter_map(|&&i| g.value_bytes(i)).sum();
                    OptimizerState {
                        tensors: state.len(),
                        bytes,
                    }
                }),
            }
        }
        Err(e) => Activations {
            loss: opts.loss.describe(),
            saved_values: None,
            saved_bytes: None,
            plain_peak_bytes: None,
            lowest_budget_bytes: None,
            optimizer_state: None,
            unavailable: Some(e.to_string()),
        },
    };
    InspectReport {
        format_version: 2,
        ir_version: m.ir_version,
        opsets: m
            .opset_imports
            .iter()
            .map(|(d, v)| {
                (
                    if d.is_empty() {
                        "ai.onnx".to_string()
                    } else {
                        d.clone()
                    },
                    *v,
                )
            })
            .collect(),
        producer: format!("{} {}", m.producer_name, m.producer_version)
            .trim()
            .to_string(),
        nodes: g.nodes.len(),
        op_histogram,
        parameters,
        constants,
        inputs: g
            .inputs
            .iter()
            .filter(|&&i| g.value(i).initializer.is_none())
            .map(|&i| tensor_info(m, i))
            .collect(),
        outputs: g.outputs.iter().map(|&o| tensor_info(m, o)).collect(),
        activations,
    }
}

impl InspectReport {
    /// The human-readable table.
    pub fn to_text(&self) -> String {
        use crate::size::human_bytes;
        use std::fmt::Write;
        let mut s = String::new();
        let opsets: Vec<String> = self
            .opsets
            .iter()
            .map(|(d, v)| format!("{d} {v}"))
            .collect();
        let _ = writeln!(
            s,
            "model      IR {}, opsets {}, producer '{}'",
            self.ir_version,
            opsets.join(", "),
            self.producer
        );
        let _ = writeln!(s, "nodes      {}", self.nodes);
        let dtypes = |i: &Initializers| {
            i.dtypes
                .iter()
                .map(|(d, n)| format!("{n} {d}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (label, i, what) in [
            ("parameters", &self.parameters, "trained"),
            ("constants ", &self.constants, "not trained"),
        ] {
            if i.tensors == 0 {
                let _ = writeln!(s, "{label} none");
                continue;
            }
            let _ = writeln!(
                s,
                "{label} {} tensors ({}), {} elements, {}, {what}{}",
                i.tensors,
                dtypes(i),
                i.elements,
                human_bytes(i.bytes),
                if i.external_tensors > 0 {
                    format!(" ({} in external data)", i.external_tensors)
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(s, "\ninputs");
        for t in &self.inputs {
            let _ = writeln!(s, "  {:<32} {:<6} {}", t.name, t.dtype, t.shape);
        }
        let _ = writeln!(s, "outputs");
        for t in &self.outputs {
            let _ = writeln!(s, "  {:<32} {:<6} {}", t.name, t.dtype, t.shape);
        }
        let _ = writeln!(s, "\nops");
        let mut ops: Vec<(&String, &usize)> = self.op_histogram.iter().collect();
        ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (op, n) in ops {
            let _ = writeln!(s, "  {op:<24} {n:>6}");
        }
        let a = &self.activations;
        let _ = writeln!(
            s,
            "\ntraining step without recomputation (loss: {})",
            a.loss
        );
        if let (Some(n), Some(b)) = (a.saved_values, a.saved_bytes) {
            let _ = writeln!(
                s,
                "  activations     {n} forward values kept for the backward, {}",
                human_bytes(b)
            );
        }
        if let Some(o) = &a.optimizer_state {
            if o.tensors == 0 {
                let _ = writeln!(s, "  optimizer state none (plain SGD keeps none)");
            } else {
                let _ = writeln!(
                    s,
                    "  optimizer state {} tensors, {}: inputs alive through the step, as the parameters",
                    o.tensors,
                    human_bytes(o.bytes)
                );
            }
        }
        if let Some(p) = a.plain_peak_bytes {
            let _ = writeln!(s, "  step peak       {} simulated", human_bytes(p));
        }
        match (a.lowest_budget_bytes, a.plain_peak_bytes) {
            (Some(low), Some(p)) if low < p => {
                let _ = writeln!(
                    s,
                    "  budgets         {} (the lowest planner ac reaches, analytic cpu costs) to {} (recomputing nothing)",
                    crate::size::human_bytes_up(low),
                    human_bytes(p)
                );
            }
            (Some(_), Some(p)) => {
                let _ = writeln!(
                    s,
                    "  budgets         {} and up: no plan lowers the step peak",
                    crate::size::human_bytes_up(p)
                );
            }
            _ => {}
        }
        if let Some(why) = &a.unavailable {
            let _ = writeln!(s, "  unavailable: {why}");
        }
        s
    }
}
