//! What the main command reports: the per-activation decisions (CSV, the seed's columns
//! plus ours) and the summary (text table or JSON).

use crate::plan::candidates::recompute_time;
use crate::plan::NodeCost;
use crate::size::human_bytes;
use onnx_ac_passes::autodiff::{saved_activations, TrainingInfo};
use onnx_ac_passes::ir::{Graph, NodeId, ValueId};
use serde::Serialize;
use std::collections::HashSet;
use std::fmt::Write;

/// One row of decisions.csv.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub activation_name: String,
    pub decision: &'static str,
    pub median_mem_size_bytes: u64,
    pub recomp_time_s: f64,
    pub creation_rank: usize,
    pub first_bw_use_rank: usize,
    pub last_fw_use_rank: usize,
    /// Kept values the recomputation reads (`;`-separated), for RECOMPUTE rows.
    pub recompute_sources: String,
}

/// Decisions for every saved activation of the training graph `g` (before the rewrite),
/// ranked by the execution order `order`.
pub fn decisions(
    g: &Graph,
    info: &TrainingInfo,
    order: &[NodeId],
    dropped: &[ValueId],
    cost: NodeCost,
) -> Vec<Decision> {
    let mut rank = vec![usize::MAX; g.nodes.len()];
    for (k, n) in order.iter().enumerate() {
        rank[n.index()] = k;
    }
    let dropped_set: HashSet<ValueId> = dropped.iter().copied().collect();
    let consumers = g.consumers();
    let mut rows = Vec::new();
    for v in saved_activations(g, info) {
        let val = g.value(v);
        let Some(p) = val.producer else { continue };
        let readers = &consumers[v.index()];
        let first_bw = readers
            .iter()
            .filter(|r| r.index() >= info.forward_end)
            .map(|r| rank[r.index()])
            .min()
            .unwrap_or(usize::MAX);
        let last_fw = readers
            .iter()
            .filter(|r| r.index() < info.forward_end)
            .map(|r| rank[r.index()])
            .max()
            .unwrap_or(rank[p.index()]);
        let recompute = dropped_set.contains(&v);
        let sources = if recompute {
            let mut src: Vec<String> = Vec::new();
            let mut stack = vec![v];
            let mut seen = HashSet::new();
            while let Some(x) = stack.pop() {
                let Some(p) = g.value(x).producer else {
                    continue;
                };
                if !seen.insert(p) {
                    continue;
                }
                for i in g.node(p).inputs.iter().flatten() {
                    if dropped_set.contains(i) {
                        stack.push(*i);
                    } else if g.value(*i).constant.is_none() {
                        src.push(g.value(*i).name.clone());
                    }
                }
            }
            src.sort();
            src.dedup();
            src.join(";")
        } else {
            String::new()
        };
        let t = if recompute {
            recompute_time(g, v, &dropped_set, cost)
        } else {
            cost(g, p)
        };
        rows.push(Decision {
            activation_name: val.name.clone(),
            decision: if recompute { "RECOMPUTE" } else { "RETAINED" },
            median_mem_size_bytes: g.value_bytes(v).unwrap_or(0),
            recomp_time_s: t,
            creation_rank: rank[p.index()],
            first_bw_use_rank: first_bw,
            last_fw_use_rank: last_fw,
            recompute_sources: sources,
        });
    }
    rows.sort_by_key(|r| (r.creation_rank, r.activation_name.clone()));
    rows
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn decisions_csv(rows: &[Decision]) -> String {
    let mut s = String::from("activation_name,decision,median_mem_size_bytes,recomp_time_s,creation_rank,first_bw_use_rank,last_fw_use_rank,recompute_sources\n");
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{:.9},{},{},{},{}",
            csv_field(&r.activation_name),
            r.decision,
            r.median_mem_size_bytes,
            r.recomp_time_s,
            r.creation_rank,
            r.first_bw_use_rank,
            r.last_fw_use_rank,
            csv_field(&r.recompute_sources)
        );
    }
    s
}

/// The summary, with the seed's columns.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub format: &'static str,
    pub version: u32,
    pub planner: String,
    pub cost_model: String,
    pub budget_bytes: u64,
    pub initial_peak_bytes: u64,
    pub final_peak_bytes: u64,
    /// Where the peaks come from: "simulated" or "measured".
    pub peak_source: String,
    pub reduction_bytes: i64,
    pub reduction_percent: f64,
    pub initial_step_time_s: f64,
    pub final_step_time_s: f64,
    pub step_time_source: String,
    pub overhead_s: f64,
    pub overhead_percent: f64,
    pub recompute_time_s: f64,
    pub retained_activations: usize,
    pub recomputed_activations: usize,
    pub retained_percent: f64,
    pub recomputed_percent: f64,
    pub retained_memory_bytes: u64,
    pub saved_memory_bytes: u64,
    pub simulated_initial_peak_bytes: u64,
    pub simulated_final_peak_bytes: u64,
    /// Weights and graph inputs ONNX Runtime uses in place (not through its allocator): a
    /// measured peak is the allocator's peak plus these, comparable with the budget.
    pub unallocated_bytes: u64,
    /// The final peak (measured with `--verify`, else simulated) is at most the budget.
    pub within_budget: bool,
    pub verify: Option<crate::verify::VerifyReport>,
}

impl Summary {
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let pct = |x: f64| format!("{x:.1}%");
        let gb = |b: u64| format!("{:.3} GB", b as f64 / 1e9);
        let rows: Vec<(&str, String)> = vec![
            (
                "planner",
                format!("{} (costs: {})", self.planner, self.cost_model),
            ),
            (
                "budget",
                format!(
                    "{} ({})",
                    human_bytes(self.budget_bytes),
                    gb(self.budget_bytes)
                ),
            ),
            (
                "initial peak",
                format!(
                    "{} ({}, {})",
                    human_bytes(self.initial_peak_bytes),
                    gb(self.initial_peak_bytes),
                    self.peak_source
                ),
            ),
            (
                "final peak",
                format!(
                    "{} ({}, {})",
                    human_bytes(self.final_peak_bytes),
                    gb(self.final_peak_bytes),
                    self.peak_source
                ),
            ),
            (
                "within budget",
                format!(
                    "{} ({})",
                    if self.within_budget { "yes" } else { "NO" },
                    self.peak_source
                ),
            ),
            (
                "reduction",
                format!(
                    "{:.6} GB, {}",
                    self.reduction_bytes as f64 / 1e9,
                    pct(self.reduction_percent)
                ),
            ),
            (
                "initial step time",
                format!(
                    "{:.6} s ({})",
                    self.initial_step_time_s, self.step_time_source
                ),
            ),
            (
                "final step time",
                format!("{:.6} s", self.final_step_time_s),
            ),
            (
                "overhead",
                format!("{:.6} s, {}", self.overhead_s, pct(self.overhead_percent)),
            ),
            ("recompute time", format!("{:.6} s", self.recompute_time_s)),
            (
                "retained activations",
                format!(
                    "{} ({})",
                    self.retained_activations,
                    pct(self.retained_percent)
                ),
            ),
            (
                "recomputed activations",
                format!(
                    "{} ({})",
                    self.recomputed_activations,
                    pct(self.recomputed_percent)
                ),
            ),
            ("retained memory", human_bytes(self.retained_memory_bytes)),
            ("saved memory", human_bytes(self.saved_memory_bytes)),
        ];
        for (k, v) in rows {
            let _ = writeln!(s, "{k:<24} {v}");
        }
        if let Some(v) = &self.verify {
            let _ = writeln!(s, "{:<24} {}", "verify", v.one_line());
        }
        s
    }
}
