//! What the main command reports: the per-activation decisions (CSV, the seed's columns
//! plus ours) and the summary (text table or JSON).

use crate::plan::candidates::recompute_time;
use crate::plan::NodeCost;
use crate::size::human_bytes;
use onnx_ac_passes::autodiff::{saved_activations, TrainingInfo};
use onnx_ac_passes::ir::{Graph, NodeId, ValueId};
use onnx_ac_passes::recompute::{is_view, viewed, with_view_bases};
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

/// The buffer `v` shares: the forward activation it is a view of (through any chain of
/// views), else `v` itself.
fn buffer_of(g: &Graph, info: &TrainingInfo, v: ValueId) -> ValueId {
    let mut cur = v;
    while let Some(b) = viewed(g, info, cur) {
        cur = b;
    }
    cur
}

/// The forward buffers the backward of `g` keeps: the forward values it reads, views
/// resolved to the values whose buffers they share, once each, in id order. For a rewritten
/// graph this is what the plan really keeps (recompute sources included).
pub fn kept_buffers(g: &Graph, info: &TrainingInfo) -> Vec<ValueId> {
    let mut kept: Vec<ValueId> = saved_activations(g, info)
        .into_iter()
        .map(|v| buffer_of(g, info, v))
        .collect();
    kept.sort_unstable();
    kept.dedup();
    kept
}

/// What a plan keeps, from the rewritten graph: buffers and bytes before and after.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    pub before: Vec<ValueId>,
    pub after: Vec<ValueId>,
    pub before_bytes: u64,
    pub after_bytes: u64,
}

impl Kept {
    /// `g` the training graph, `rg` its rewrite (the values of `g` keep their ids in it).
    pub fn new(g: &Graph, rg: &Graph, info: &TrainingInfo) -> Kept {
        let before = kept_buffers(g, info);
        let after: Vec<ValueId> = kept_buffers(rg, info)
            .into_iter()
            .filter(|v| v.index() < g.values.len())
            .collect();
        let bytes = |vs: &[ValueId]| vs.iter().filter_map(|&v| g.value_bytes(v)).sum::<u64>();
        Kept {
            before_bytes: bytes(&before),
            after_bytes: bytes(&after),
            before,
            after,
        }
    }
}

/// Decisions for every forward buffer the backward keeps before or after the rewrite
/// (views resolved, [`Kept`]), ranked by the execution order `order` of `g` (before the
/// rewrite): RETAINED (kept by both), RECOMPUTE (kept before, recomputed after), SOURCE
/// (kept only after: a recompute reads it).
pub fn decisions(
    g: &Graph,
    info: &TrainingInfo,
    order: &[NodeId],
    kept: &Kept,
    dropped: &[ValueId],
    cost: NodeCost,
) -> Vec<Decision> {
    let mut rank = vec![usize::MAX; g.nodes.len()];
    for (k, n) in order.iter().enumerate() {
        rank[n.index()] = k;
    }
    let dropped_set: HashSet<ValueId> = with_view_bases(g, info, dropped).into_iter().collect();
    let before: HashSet<ValueId> = kept.before.iter().copied().collect();
    let after: HashSet<ValueId> = kept.after.iter().copied().collect();
    let mut all: Vec<ValueId> = before.union(&after).copied().collect();
    all.sort_unstable();
    let consumers = g.consumers();
    // A buffer's readers: its own and its views' (the backward may read only a view).
    let mut readers_of = vec![Vec::new(); g.values.len()];
    for v in g.value_ids() {
        if g.value(v)
            .producer
            .is_some_and(|p| p.index() < info.forward_end)
        {
            let b = buffer_of(g, info, v);
            readers_of[b.index()].extend(consumers[v.index()].iter().copied());
        }
    }
    let mut rows = Vec::new();
    for v in all {
        let val = g.value(v);
        let Some(p) = val.producer else { continue };
        let readers = &readers_of[v.index()];
        let first_bw = readers
            .iter()
            .filter(|r| r.index() >= info.forward_end)
            .map(|r| rank[r.index()])
            .min()
            .unwrap_or(usize::MAX);
        let last_fw = readers
            .iter()
            .filter(|r| r.index() < info.forward_end && !is_view(g.node(**r)))
            .map(|r| rank[r.index()])
            .max()
            .unwrap_or(rank[p.index()]);
        let decision = match (before.contains(&v), after.contains(&v)) {
            (true, true) => "RETAINED",
            (true, false) => "RECOMPUTE",
            _ => "SOURCE",
        };
        let recompute = decision == "RECOMPUTE";
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
            decision,
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
    /// Forward buffers the rewritten backward keeps (views resolved, recompute sources
    /// included: [`Kept`]).
    pub retained_activations: usize,
    /// Buffers the plain backward keeps that the rewritten one recomputes.
    pub recomputed_activations: usize,
    /// Kept bytes after the rewrite, as a share of the plain graph's kept bytes.
    pub retained_percent: f64,
    /// Bytes of the recomputed buffers, as a share of the plain graph's kept bytes.
    pub recomputed_percent: f64,
    /// Bytes the rewritten backward keeps from the forward.
    pub retained_memory_bytes: u64,
    /// Kept bytes before minus after.
    pub saved_memory_bytes: u64,
    pub simulated_initial_peak_bytes: u64,
    pub simulated_final_peak_bytes: u64,
    /// Weights and graph inputs ONNX Runtime uses in place (not through its allocator): a
    /// measured peak is the allocator's peak plus these, comparable with the budget.
    pub unallocated_bytes: u64,
    /// The final peak (measured with `--verify`, else simulated) is at most the budget.
    pub within_budget: bool,
    /// FLOPs of the plain training step's MatMul-class ops (MatMul, Gemm, Conv, ...).
    pub step_matmul_flops: f64,
    /// FLOPs of the MatMul-class ops the plan recomputes.
    pub added_matmul_flops: f64,
    /// `added_matmul_flops` as a share of `step_matmul_flops` (the measure of PyTorch's
    /// published trade-off).
    pub added_matmul_flops_percent: f64,
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
                "added matmul FLOPs",
                format!(
                    "{:.3} GFLOP, {} of the step's",
                    self.added_matmul_flops / 1e9,
                    pct(self.added_matmul_flops_percent)
                ),
            ),
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
