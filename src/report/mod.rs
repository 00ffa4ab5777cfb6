//! What the main command reports: the per-activation decisions (CSV, the seed's columns
//! plus ours) and the summary (text table or JSON).

use crate::plan::candidates::RecomputeShares;
use crate::plan::NodeCost;
use crate::size::ByteScale;
use onnx_ac_passes::autodiff::saved_activations;
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
fn buffer_of(g: &Graph, v: ValueId) -> ValueId {
    let mut cur = v;
    while let Some(b) = viewed(g, cur) {
        cur = b;
    }
    cur
}

/// The forward buffers the backward of `g` keeps: the forward values it reads, views
/// resolved to the values whose buffers they share, once each, in id order. For a rewritten
/// graph this is what the plan really keeps (recompute sources included).
pub fn kept_buffers(g: &Graph) -> Vec<ValueId> {
    let mut kept: Vec<ValueId> = saved_activations(g)
        .into_iter()
        .map(|v| buffer_of(g, v))
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
    pub fn new(g: &Graph, rg: &Graph) -> Kept {
        let before = kept_buffers(g);
        let after: Vec<ValueId> = kept_buffers(rg)
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
/// (kept only after: a recompute reads it). A RECOMPUTE row's time and sources are its share
/// of the recomputation ([`RecomputeShares`]): what recomputing it adds to the rows created
/// before it.
pub fn decisions(
    g: &Graph,
    order: &[NodeId],
    kept: &Kept,
    dropped: &[ValueId],
    cost: NodeCost,
) -> Vec<Decision> {
    let mut rank = vec![usize::MAX; g.nodes.len()];
    for (k, n) in order.iter().enumerate() {
        rank[n.index()] = k;
    }
    let mut dropped_set = vec![false; g.values.len()];
    for v in with_view_bases(g, dropped) {
        dropped_set[v.index()] = true;
    }
    let before: HashSet<ValueId> = kept.before.iter().copied().collect();
    let after: HashSet<ValueId> = kept.after.iter().copied().collect();
    let mut all: Vec<ValueId> = before.union(&after).copied().collect();
    all.sort_unstable();
    let consumers = g.consumers();
    // A buffer's readers: its own and its views' (the backward may read only a view).
    let mut readers_of = vec![Vec::new(); g.values.len()];
    for v in g.value_ids() {
        if g.value(v).producer.is_some_and(|p| !g.in_backward(p)) {
            let b = buffer_of(g, v);
            readers_of[b.index()].extend(consumers[v.index()].iter().copied());
        }
    }
    let mut rows = Vec::new();
    // The value of each row.
    let mut values = Vec::new();
    for v in all {
        let val = g.value(v);
        let Some(p) = val.producer else { continue };
        let readers = &readers_of[v.index()];
        let first_bw = readers
            .iter()
            .filter(|&&r| g.in_backward(r))
            .map(|r| rank[r.index()])
            .min()
            .unwrap_or(usize::MAX);
        let last_fw = readers
            .iter()
            .filter(|&&r| !g.in_backward(r) && !is_view(g.node(r)))
            .map(|r| rank[r.index()])
            .max()
            .unwrap_or(rank[p.index()]);
        let decision = match (before.contains(&v), after.contains(&v)) {
            (true, true) => "RETAINED",
            (true, false) => "RECOMPUTE",
            _ => "SOURCE",
        };
        rows.push(Decision {
            activation_name: val.name.clone(),
            decision,
            median_mem_size_bytes: g.value_bytes(v).unwrap_or(0),
            recomp_time_s: cost(g, p),
            creation_rank: rank[p.index()],
            first_bw_use_rank: first_bw,
            last_fw_use_rank: last_fw,
            recompute_sources: String::new(),
        });
        values.push(v);
    }
    let mut by_rank: Vec<usize> = (0..rows.len()).collect();
    by_rank.sort_by(|&a, &b| {
        (rows[a].creation_rank, &rows[a].activation_name)
            .cmp(&(rows[b].creation_rank, &rows[b].activation_name))
    });
    // Recomputations in creation order, each node counted once (by the first row that
    // needs it), so that the column adds up to the plan's recomputation and a plan dropping
    // a whole chain is not a walk of the chain per row.
    let is_dropped = |x: ValueId| dropped_set[x.index()];
    let mut shares = RecomputeShares::new(g, &is_dropped);
    for &k in &by_rank {
        if rows[k].decision != "RECOMPUTE" {
            continue;
        }
        let share = shares.share(values[k], cost);
        let mut names: Vec<&str> = share
            .sources
            .iter()
            .map(|&s| g.value(s).name.as_str())
            .collect();
        names.sort_unstable();
        rows[k].recomp_time_s = share.time_s;
        rows[k].recompute_sources = names.join(";");
    }
    let mut rows: Vec<Option<Decision>> = rows.into_iter().map(Some).collect();
    by_rank
        .into_iter()
        .map(|k| rows[k].take().expect("each row once"))
        .collect()
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

/// A file the main command wrote, for the summary's last lines.
#[derive(Debug, Clone, Serialize)]
pub struct WrittenFile {
    pub path: String,
    pub bytes: u64,
}

/// The summary, with the seed's columns.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub format: &'static str,
    pub version: u32,
    pub planner: String,
    pub cost_model: String,
    pub budget_bytes: u64,
    /// The budget as asked for on the command line: `2000000000B`, `60%`, `30%act`.
    pub budget_requested: String,
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
    /// With measured step times: half the interquartile range of the per-round overheads,
    /// in percentage points (`None` when estimated or timed in one round).
    pub overhead_spread_percent: Option<f64>,
    /// With measured step times: the spread covers the overhead (`None` when estimated).
    pub overhead_within_noise: Option<bool>,
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
    /// Bytes of constant weights the forward reads at run time (so ONNX Runtime folds and
    /// prepacks none of them), when the plan needed that to meet the budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_weights_bytes: Option<u64>,
    pub verify: Option<crate::compare::VerifyReport>,
    /// What the numbers above do not say by themselves ([`Summary::peak_warnings`]).
    pub warnings: Vec<String>,
    /// The files written, the model first.
    pub written: Vec<WrittenFile>,
}

/// A peak change smaller than this share of the initial peak (0.05%) is not worth a warning:
/// the rewrite's defences alone add a few bytes.
const NEGLIGIBLE_PEAK_CHANGE: f64 = 0.0005;

impl Summary {
    /// Replaces the simulated peaks and the cost model's step times by what `--verify`
    /// measured in ONNX Runtime (peaks include the weights ONNX Runtime uses in place, as
    /// the budget does), and keeps the report.
    pub fn record_verification(&mut self, report: crate::compare::VerifyReport) {
        self.peak_source = "measured".into();
        if let (Some(x), Some(y)) = (report.original_peak_bytes, report.rewritten_peak_bytes) {
            let (x, y) = (x + self.unallocated_bytes, y + self.unallocated_bytes);
            self.initial_peak_bytes = x;
            self.final_peak_bytes = y;
            self.within_budget = y <= self.budget_bytes;
            let red = x as i64 - y as i64;
            self.reduction_bytes = red;
            self.reduction_percent = 100.0 * red as f64 / x.max(1) as f64;
        }
        let step = &report.step;
        self.initial_step_time_s = step.original_step_time_s;
        self.final_step_time_s = step.rewritten_step_time_s;
        self.step_time_source = "measured".into();
        self.overhead_s = step.rewritten_step_time_s - step.original_step_time_s;
        self.overhead_percent = step.overhead_percent;
        self.overhead_spread_percent = step.overhead_spread_percent;
        self.overhead_within_noise = Some(step.overhead_within_noise);
        self.verify = Some(report);
    }

    /// The unit of every byte figure of the text summary, from the model's largest peak (not
    /// the budget: a generous `2GB` must not show a 30 MiB step in GiB).
    pub fn byte_scale(&self) -> ByteScale {
        ByteScale::for_largest(
            self.initial_peak_bytes
                .max(self.final_peak_bytes)
                .max(self.simulated_initial_peak_bytes)
                .max(self.simulated_final_peak_bytes),
        )
    }

    /// Warnings about the result: a peak above the budget, a peak that rose, a peak change
    /// with nothing recomputed (the rewritten graph's execution order alone moved it).
    pub fn peak_warnings(&self) -> Vec<String> {
        let b = self.byte_scale();
        let mut w = Vec::new();
        let (x, y) = (self.initial_peak_bytes, self.final_peak_bytes);
        let change = y as i64 - x as i64;
        let notable = change.unsigned_abs() as f64 > NEGLIGIBLE_PEAK_CHANGE * x.max(1) as f64;
        let pct = 100.0 * change as f64 / x.max(1) as f64;
        if !self.within_budget {
            w.push(format!(
                "warning: the final step peak ({}) is {} over the budget",
                self.peak_source,
                b.format(y.saturating_sub(self.budget_bytes))
            ));
        }
        if notable && self.recomputed_activations == 0 && self.runtime_weights_bytes.is_none() {
            w.push(format!(
                "warning: nothing is recomputed, yet the step peak {} by {} ({pct:+.1}%): \
                 the rewritten graph's execution order alone changed it, not recomputation",
                if change < 0 { "fell" } else { "rose" },
                b.format(change.unsigned_abs()),
            ));
        } else if notable && change > 0 {
            w.push(format!(
                "warning: the final step peak is {} ({pct:+.1}%) above the initial one: \
                 this plan does not reduce the peak",
                b.format(change.unsigned_abs()),
            ));
        }
        w
    }

    pub fn to_text(&self) -> String {
        let b = self.byte_scale();
        let mut s = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(s, "{k:<12} {v}");
        };
        row("cost model", self.cost_model.clone());
        row("planner", self.planner.clone());
        let requested =
            if self.budget_requested.ends_with('%') || self.budget_requested.ends_with("act") {
                format!(" ({})", self.budget_requested)
            } else {
                String::new()
            };
        row(
            "budget",
            format!(
                "{}{requested} for the step peak: weights, inputs, activations, gradients and \
                 transients, as ONNX Runtime allocates them",
                b.format(self.budget_bytes)
            ),
        );
        let (x, y) = (self.initial_peak_bytes, self.final_peak_bytes);
        let fit = if self.within_budget {
            format!(
                "within the budget ({} under)",
                b.format(self.budget_bytes - y)
            )
        } else {
            format!("OVER the budget by {}", b.format(y - self.budget_bytes))
        };
        row(
            "step peak",
            format!(
                "{} -> {} {}: {} ({:+.1}%), {fit}",
                b.format(x),
                b.format(y),
                self.peak_source,
                b.format_signed(-self.reduction_bytes),
                -self.reduction_percent
            ),
        );
        if self.peak_source == "measured" {
            row(
                "",
                format!(
                    "measured = ONNX Runtime's allocator peak + {} of weights and inputs it \
                     uses in place; simulated {} -> {}",
                    b.format(self.unallocated_bytes),
                    b.format(self.simulated_initial_peak_bytes),
                    b.format(self.simulated_final_peak_bytes)
                ),
            );
        }
        let kept_before = self.retained_memory_bytes + self.saved_memory_bytes;
        row(
            "activations",
            format!(
                "{} -> {} kept for the backward ({:.1}%): {} buffers recomputed ({:.1}%), {} kept \
                 (recompute sources included)",
                b.format(kept_before),
                b.format(self.retained_memory_bytes),
                self.retained_percent,
                self.recomputed_activations,
                self.recomputed_percent,
                self.retained_activations
            ),
        );
        // One time unit too: milliseconds below a second.
        let ms = self.initial_step_time_s < 1.0;
        let t = |x: f64| {
            if ms {
                format!("{:.2} ms", x * 1e3)
            } else {
                format!("{x:.3} s")
            }
        };
        let t_signed = |x: f64| format!("{}{}", if x < 0.0 { "-" } else { "+" }, t(x.abs()));
        let measured = self
            .verify
            .as_ref()
            .map(|v| &v.step)
            .filter(|_| self.step_time_source == "measured");
        let step_line = match measured {
            Some(m) if m.step_time_rounds == 0 => format!(
                "not measured (--runs 0); recomputation estimated {}",
                t(self.recompute_time_s)
            ),
            Some(m) => format!(
                "{} -> {} measured ({}): {} ({}); recomputation estimated {}",
                t(self.initial_step_time_s),
                t(self.final_step_time_s),
                m.method_text(),
                t_signed(self.overhead_s),
                m.overhead_text(),
                t(self.recompute_time_s)
            ),
            None => format!(
                "{} -> {} estimated: {} ({:+.1}%)",
                t(self.initial_step_time_s),
                t(self.final_step_time_s),
                t_signed(self.overhead_s),
                self.overhead_percent,
            ),
        };
        row("step time", step_line);
        let flops = |f: f64| {
            let (div, unit) = match self.step_matmul_flops {
                x if x >= 1e12 => (1e12, "TFLOP"),
                x if x >= 1e9 => (1e9, "GFLOP"),
                x if x >= 1e6 => (1e6, "MFLOP"),
                _ => (1e3, "kFLOP"),
            };
            format!("{:.2} {unit}", f / div)
        };
        row(
            "matmul FLOPs",
            format!(
                "{} recomputed, {:.1}% of the step's {}",
                flops(self.added_matmul_flops),
                self.added_matmul_flops_percent,
                flops(self.step_matmul_flops)
            ),
        );
        if let Some(w) = self.runtime_weights_bytes {
            row(
                "weights",
                format!(
                    "{} read at run time: ONNX Runtime folds and prepacks none of them (each step \
                     transposes and packs them instead)",
                    b.format(w)
                ),
            );
        }
        if let Some(v) = &self.verify {
            row("verify", v.result_line());
        }
        for w in &self.warnings {
            let _ = writeln!(s, "{w}");
        }
        for f in &self.written {
            let _ = writeln!(s, "wrote {} ({})", f.path, b.format(f.bytes));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn summary(initial: u64, fin: u64, budget: u64, recomputed: usize) -> Summary {
        let reduction = initial as i64 - fin as i64;
        let mut s = Summary {
            planner: "ac".into(),
            cost_model: "fixed table".into(),
            budget_bytes: budget,
            budget_requested: "30%act".into(),
            initial_peak_bytes: initial,
            final_peak_bytes: fin,
            simulated_initial_peak_bytes: initial,
            simulated_final_peak_bytes: fin,
            peak_source: "simulated".into(),
            reduction_bytes: reduction,
            reduction_percent: 100.0 * reduction as f64 / initial as f64,
            within_budget: fin <= budget,
            recomputed_activations: recomputed,
            unallocated_bytes: 65 * 1024,
            step_time_source: "estimated".into(),
            written: vec![WrittenFile {
                path: "out.onnx".into(),
                bytes: 3 * MIB,
            }],
            ..Summary::default()
        };
        s.warnings = s.peak_warnings();
        s
    }

    #[test]
    fn a_peak_change_without_recomputation_is_explained() {
        let s = summary(100 * MIB, 90 * MIB, 95 * MIB, 0);
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0]
            .contains("nothing is recomputed, yet the step peak fell by 10.00 MiB (-10.0%)"));
        assert!(s.warnings[0].contains("execution order alone"));
        let s = summary(100 * MIB, 110 * MIB, 200 * MIB, 0);
        assert!(
            s.warnings[0].contains("rose by 10.00 MiB (+10.0%)"),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn a_higher_or_over_budget_peak_is_a_warning() {
        let s = summary(100 * MIB, 110 * MIB, 105 * MIB, 3);
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("5.00 MiB over the budget"));
        assert!(s.warnings[1].contains("10.00 MiB (+10.0%) above the initial one"));
        // A reduction that recomputes something, or a change of a few bytes, is no warning.
        assert!(summary(100 * MIB, 60 * MIB, 70 * MIB, 3)
            .warnings
            .is_empty());
        assert!(summary(100 * MIB, 100 * MIB + 200, 200 * MIB, 0)
            .warnings
            .is_empty());
    }

    fn verified(
        peaks: Option<(u64, u64)>,
        step: crate::runtime::timing::StepComparison,
    ) -> crate::compare::VerifyReport {
        crate::compare::VerifyReport {
            outputs_compared: 3,
            bit_identical: true,
            max_abs_diff: 0.0,
            max_scaled_error: 0.0,
            worst_output: String::new(),
            passed: true,
            original_peak_bytes: peaks.map(|p| p.0),
            rewritten_peak_bytes: peaks.map(|p| p.1),
            step,
        }
    }

    /// Measured peaks replace the simulated ones, with the weights ONNX Runtime uses in
    /// place added (the budget counts them), and decide `within_budget` again.
    #[test]
    fn a_verification_replaces_simulated_peaks_by_measured_ones() {
        let step = crate::runtime::timing::StepComparison::from_rounds(&[1e-3], &[1.5e-3]);
        let mut s = summary(100 * MIB, 60 * MIB, 70 * MIB, 3);
        s.unallocated_bytes = 5 * MIB;
        s.record_verification(verified(Some((90 * MIB, 66 * MIB)), step));
        assert_eq!(s.initial_peak_bytes, 95 * MIB);
        assert_eq!(s.final_peak_bytes, 71 * MIB);
        assert!(
            !s.within_budget,
            "71 MiB measured is over the 70 MiB budget"
        );
        assert_eq!(s.reduction_bytes, 24 * MIB as i64);
        assert_eq!(s.step_time_source, "measured");
        assert!((s.overhead_s - 0.5e-3).abs() < 1e-12);
        assert!(s.verify.is_some());
    }

    /// `--verify`'s step line: medians of alternated rounds, the overhead with its spread,
    /// and "within noise" exactly when the spread covers it (fixed numbers, nothing timed).
    #[test]
    fn a_measured_step_time_says_when_it_is_within_noise() {
        let with_rounds = |a: &[f64], b: &[f64]| {
            let step = crate::runtime::timing::StepComparison::from_rounds(a, b);
            let mut s = summary(100 * MIB, 60 * MIB, 70 * MIB, 3);
            s.recompute_time_s = 0.4e-3;
            s.record_verification(verified(None, step));
            assert_eq!(s.peak_source, "measured");
            assert_eq!(
                s.final_peak_bytes,
                60 * MIB,
                "no measured peak: simulated kept"
            );
            let text = s.to_text();
            text.lines()
                .find(|l| l.starts_with("step time"))
                .unwrap()
                .to_string()
        };
        // The same plan on a noisy machine: rounds of +100%, +25%, -10%, -40%, -12.5%.
        let noisy = with_rounds(
            &[10e-3, 8e-3, 10e-3, 20e-3, 12e-3],
            &[20e-3, 10e-3, 9e-3, 12e-3, 10.5e-3],
        );
        assert_eq!(
            noisy,
            "step time    10.00 ms -> 10.50 ms measured (median of 5 alternated rounds): \
             +0.50 ms (+5.0% ± 18.8, within noise); recomputation estimated 0.40 ms"
        );
        // A steady 20% overhead is not noise.
        let steady = with_rounds(
            &[10e-3, 10.2e-3, 9.9e-3, 10.1e-3, 10e-3],
            &[12e-3, 12.3e-3, 11.8e-3, 12.1e-3, 12e-3],
        );
        assert!(steady.contains("+2.00 ms (+20.0% ± 0."), "{steady}");
        assert!(!steady.contains("noise"), "{steady}");
        // Estimated times have no spread.
        let estimated = summary(100 * MIB, 60 * MIB, 70 * MIB, 3).to_text();
        assert!(!estimated.contains('±'), "{estimated}");
    }

    #[test]
    fn the_text_has_one_unit_and_ends_with_the_files_written() {
        let text = summary(5 << 30, 3 << 30, 4 << 30, 3).to_text();
        assert!(
            text.contains("5.00 GiB -> 3.00 GiB simulated: -2.00 GiB (-40.0%)"),
            "{text}"
        );
        assert!(text.contains("wrote out.onnx (<0.01 GiB)"), "{text}");
        assert!(!text.contains("MiB") && !text.contains("GB"), "{text}");
        assert!(text.ends_with("wrote out.onnx (<0.01 GiB)\n"), "{text}");
        let text = summary(100 * MIB, 60 * MIB, 70 * MIB, 3).to_text();
        assert!(text.contains("100.00 MiB -> 60.00 MiB simulated: -40.00 MiB (-40.0%), within the budget (10.00 MiB under)"), "{text}");
        assert!(!text.contains("GiB") && !text.contains("KiB"), "{text}");
        assert_eq!(text.matches("fixed table").count(), 1, "{text}");
        // The model's size picks the unit, not a generous budget.
        let text = summary(30 * MIB, 29 * MIB, 2_000_000_000, 0).to_text();
        assert!(
            text.contains("budget       1907.35 MiB (30%act) for the step peak"),
            "{text}"
        );
        assert!(!text.contains("GiB"), "{text}");
    }
}
