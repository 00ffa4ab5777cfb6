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
    pub parameters: ParameterSummary,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    pub activations: Activations,
}

#[derive(Debug, Serialize)]
pub struct ParameterSummary {
    pub tensors: usize,
    pub elements: u64,
    pub bytes: u64,
    pub external_tensors: usize,
    /// Float initializers that reach the loss (the training graph's parameters).
    pub trainable_tensors: Option<usize>,
    pub trainable_bytes: Option<u64>,
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
    /// Why no estimate could be made, if so.
    pub unavailable: Option<String>,
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
    let mut params = ParameterSummary {
        tensors: 0,
        elements: 0,
        bytes: 0,
        external_tensors: 0,
        trainable_tensors: None,
        trainable_bytes: None,
    };
    for &i in &g.initializers {
        let t = g.value(i).initializer.as_ref().expect("initializer");
        params.tensors += 1;
        params.elements += t.numel();
        params.bytes += t.size_bytes().unwrap_or(0);
        if matches!(t.data, TensorData::External(_)) {
            params.external_tensors += 1;
        }
    }
    let activations = match autodiff::build_training_graph(m, opts) {
        Ok((tm, info)) => {
            let saved = autodiff::saved_activations(&tm.graph, &info);
            params.trainable_tensors = Some(info.params.len());
            params.trainable_bytes = Some(
                info.params
                    .iter()
                    .filter_map(|&p| tm.graph.value_bytes(p))
                    .sum(),
            );
            Activations {
                loss: opts.loss.describe(),
                saved_values: Some(saved.len()),
                saved_bytes: Some(saved.iter().filter_map(|&v| tm.graph.value_bytes(v)).sum()),
                unavailable: None,
            }
        }
        Err(e) => Activations {
            loss: opts.loss.describe(),
            saved_values: None,
            saved_bytes: None,
            unavailable: Some(e.to_string()),
        },
    };
    InspectReport {
        format_version: 1,
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
        parameters: params,
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
        let p = &self.parameters;
        let _ = writeln!(
            s,
            "parameters {} tensors, {} elements, {}{}",
            p.tensors,
            p.elements,
            human_bytes(p.bytes),
            if p.external_tensors > 0 {
                format!(" ({} in external data)", p.external_tensors)
            } else {
                String::new()
            }
        );
        if let (Some(t), Some(b)) = (p.trainable_tensors, p.trainable_bytes) {
            let _ = writeln!(s, "trainable  {t} tensors, {}", human_bytes(b));
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
            "\nactivation memory without recomputation (loss: {})",
            a.loss
        );
        match (&a.saved_values, &a.saved_bytes, &a.unavailable) {
            (Some(n), Some(b), _) => {
                let _ = writeln!(
                    s,
                    "  {n} forward values kept for the backward, {}",
                    human_bytes(*b)
                );
            }
            (_, _, Some(why)) => {
                let _ = writeln!(s, "  unavailable: {why}");
            }
            _ => {}
        }
        s
    }
}
