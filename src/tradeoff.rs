//! The trade-off curve (issue #16): added compute against peak memory, from the lowest peak a
//! planner reaches up to recomputing nothing, with the presets and μ-TWO as single points.
//!
//! Every point is a plan the main command would write (`pipeline::plan_and_rewrite` with an
//! absolute budget), simulated, so the curve is deterministic and costs no ONNX Runtime run.
//! The Pareto front is the points no other point beats on both axes; sorted by peak, its
//! added compute falls strictly, which is what "monotone" means here. The curve planner's
//! own points are reported too, with whether they are monotone themselves: a larger budget
//! never making it recompute more.

use crate::error::Result;
use crate::pipeline::{budget_for_peak, plan_and_rewrite, reachable_peaks, PlanOptions};
use crate::plan::NodeCost;
use crate::size::Budget;
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::Model;
use onnx_ac_passes::recompute::RewriteOptions;
use serde::Serialize;

/// What a curve is asked for.
#[derive(Clone, Debug)]
pub struct TradeoffOptions {
    /// The planner whose curve it is (`ac`, `optimal`, `mutwo`).
    pub planner: String,
    /// Budgets on the curve, evenly spaced in peak from the lowest reachable to the plain
    /// graph's (at least 2: both ends).
    pub points: usize,
    /// Add `none`, `selective`, `full` and μ-TWO's lowest-peak plan as single points.
    pub references: bool,
    pub rewrite: RewriteOptions,
}

/// One plan on (or beside) the curve.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Point {
    /// `ac` (a point of the curve), or the reference it is: `none`, `selective`, `full`,
    /// `mutwo`.
    pub source: String,
    /// The absolute budget the plan was made for (none for the references: the presets ignore
    /// it, μ-TWO's point is its lowest-peak plan).
    pub budget_bytes: Option<u64>,
    /// The rewritten graph's simulated peak.
    pub peak_bytes: u64,
    /// Whether the plan meets its budget (none for the references, made without one).
    pub fits: Option<bool>,
    /// Bytes of forward buffers the backward keeps, as a share of the plain graph's.
    pub kept_fraction: f64,
    /// Buffers recomputed.
    pub recomputed: usize,
    /// The cost model's time of the recomputed nodes.
    pub recompute_time_s: f64,
    /// FLOPs of the recomputed MatMul-class ops, % of the step's.
    pub added_matmul_flops_percent: f64,
    /// On the Pareto front of all points (peak, recompute time).
    pub on_front: bool,
}

/// A model's curve.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Tradeoff {
    pub planner: String,
    pub cost_model: String,
    /// The training graph's simulated peak without recomputation.
    pub plain_peak_bytes: u64,
    /// The lowest peak the planner reaches.
    pub lowest_peak_bytes: u64,
    /// The planner's points by budget, then the references.
    pub points: Vec<Point>,
    /// The planner's own points never recompute more (in time) for a larger budget, and
    /// never peak higher.
    pub planner_monotone: bool,
}

impl Tradeoff {
    /// The front, by ascending peak.
    pub fn front(&self) -> Vec<&Point> {
        let mut f: Vec<&Point> = self.points.iter().filter(|p| p.on_front).collect();
        f.sort_by(|a, b| {
            (a.peak_bytes, a.recompute_time_s.to_bits())
                .cmp(&(b.peak_bytes, b.recompute_time_s.to_bits()))
        });
        f
    }
}

/// The curve of `opts.planner` on a training graph. `progress` is told each plan as it
/// starts (`k` of `n`).
pub fn tradeoff(
    tm: &Model,
    info: &TrainingInfo,
    cost: NodeCost,
    cost_name: &str,
    opts: &TradeoffOptions,
    progress: &dyn Fn(usize, usize, &str),
) -> Result<Tradeoff> {
    let (lowest, plain) = reachable_peaks(&tm.graph, info, &opts.planner, cost)?;
    let n = opts.points.max(2);
    let mut budgets: Vec<u64> = (0..n)
        .map(|k| {
            let peak = lowest + ((plain - lowest) as u128 * k as u128 / (n - 1) as u128) as u64;
            budget_for_peak(peak, plain)
        })
        .collect();
    budgets.dedup();
    let refs: Vec<&str> = ["none", "selective", "full", "mutwo"]
        .into_iter()
        .filter(|r| opts.references && *r != opts.planner)
        .collect();
    let total = budgets.len() + refs.len();
    let mut points = Vec::with_capacity(total);
    for (k, &b) in budgets.iter().enumerate() {
        progress(k + 1, total, &opts.planner);
        points.push(point(
            tm,
            info,
            cost,
            cost_name,
            &opts.planner,
            Some(b),
            opts,
        )?);
    }
    for (k, r) in refs.iter().enumerate() {
        progress(budgets.len() + k + 1, total, r);
        // μ-TWO at a budget of zero gives its lowest-peak plan (best effort).
        let budget = (*r == "mutwo").then_some(0);
        points.push(point(tm, info, cost, cost_name, r, budget, opts)?);
    }
    mark_front(&mut points);
    let own: Vec<&Point> = points.iter().take(budgets.len()).collect();
    let planner_monotone = own.windows(2).all(|w| {
        w[1].peak_bytes >= w[0].peak_bytes && w[1].recompute_time_s <= w[0].recompute_time_s
    });
    Ok(Tradeoff {
        planner: opts.planner.clone(),
        cost_model: cost_name.to_string(),
        plain_peak_bytes: plain,
        lowest_peak_bytes: lowest,
        points,
        planner_monotone,
    })
}

impl Tradeoff {
    /// The curve as CSV: one row per point, bytes as integers (for plotting tools).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "source,budget_bytes,peak_bytes,fits,kept_fraction,recomputed_buffers,recompute_time_s,added_matmul_flops_percent,on_front\n",
        );
        for p in &self.points {
            out.push_str(&format!(
                "{},{},{},{},{:.4},{},{:.6},{:.2},{}\n",
                p.source,
                p.budget_bytes.map(|b| b.to_string()).unwrap_or_default(),
                p.peak_bytes,
                p.fits.map(|f| f.to_string()).unwrap_or_default(),
                p.kept_fraction,
                p.recomputed,
                p.recompute_time_s,
                p.added_matmul_flops_percent,
                p.on_front
            ));
        }
        out
    }

    /// A table for people: every point in one unit scale, the front marked.
    pub fn to_text(&self) -> String {
        let scale = crate::size::ByteScale::for_largest(self.plain_peak_bytes);
        let mut out = format!(
            "planner      {}\ncost model   {}\npeak         {} without recomputation, {} the lowest {} reaches (simulated)\n\n",
            self.planner,
            self.cost_model,
            scale.format(self.plain_peak_bytes),
            scale.format(self.lowest_peak_bytes),
            self.planner
        );
        if self.lowest_peak_bytes >= self.plain_peak_bytes {
            out.push_str(
                "no plan lowers this peak: recomputing activations does not reach below it (the peak is\nmade of weights, gradients and transients), so the curve is one point\n\n",
            );
        }
        out.push_str(&format!(
            "{:<10} {:>12} {:>12} {:>5} {:>6} {:>10} {:>14} {:>12} {:>6}\n",
            "source",
            "budget",
            "peak",
            "fits",
            "kept",
            "recomputed",
            "recompute time",
            "matmul FLOPs",
            "front"
        ));
        for p in &self.points {
            out.push_str(&format!(
                "{:<10} {:>12} {:>12} {:>5} {:>6.2} {:>10} {:>11.2} ms {:>11.1}% {:>6}\n",
                p.source,
                p.budget_bytes
                    .map(|b| scale.format(b))
                    .unwrap_or_else(|| "-".into()),
                scale.format(p.peak_bytes),
                match p.fits {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "-",
                },
                p.kept_fraction,
                p.recomputed,
                p.recompute_time_s * 1e3,
                p.added_matmul_flops_percent,
                if p.on_front { "*" } else { "" }
            ));
        }
        out.push_str(&format!(
            "\n* on the Pareto front (no other point has both a lower or equal peak and a lower or equal\n  recompute time); along it, a higher peak always costs strictly less recomputation.\n{}'s own points are {}monotone: a larger budget {} more recomputation or a higher peak.\n",
            self.planner,
            if self.planner_monotone { "" } else { "NOT " },
            if self.planner_monotone { "never gives" } else { "sometimes gives" }
        ));
        out
    }
}

/// One plan, as the main command makes it (best effort: a point that misses its budget is
/// still a point, marked).
fn point(
    tm: &Model,
    info: &TrainingInfo,
    cost: NodeCost,
    cost_name: &str,
    planner: &str,
    budget: Option<u64>,
    opts: &TradeoffOptions,
) -> Result<Point> {
    let plan_opts = PlanOptions {
        // The presets ignore the budget; the plain peak keeps the pipeline from searching.
        budget: Budget::Bytes(budget.unwrap_or(u64::MAX)),
        source: crate::pipeline::PlanSource::Planner(planner.to_string()),
        best_effort: true,
        rewrite: opts.rewrite,
        bound_dims: Vec::new(),
    };
    let p = plan_and_rewrite(tm, info, &plan_opts, cost, cost_name)?;
    let s = &p.summary;
    let on_curve = planner == opts.planner;
    Ok(Point {
        source: planner.to_string(),
        budget_bytes: if on_curve { budget } else { None },
        peak_bytes: s.simulated_final_peak_bytes,
        fits: on_curve.then_some(s.within_budget),
        kept_fraction: s.retained_percent / 100.0,
        recomputed: s.recomputed_activations,
        recompute_time_s: s.recompute_time_s,
        added_matmul_flops_percent: s.added_matmul_flops_percent,
        on_front: false,
    })
}

/// Marks the points no other point dominates (lower or equal peak and recompute time, one of
/// them strictly lower); of equal points, the first.
fn mark_front(points: &mut [Point]) {
    let dominated = |i: usize| {
        let p = &points[i];
        points.iter().enumerate().any(|(j, q)| {
            let le = q.peak_bytes <= p.peak_bytes && q.recompute_time_s <= p.recompute_time_s;
            let lt = q.peak_bytes < p.peak_bytes || q.recompute_time_s < p.recompute_time_s;
            let equal_earlier = !lt && j < i;
            j != i && le && (lt || equal_earlier)
        })
    };
    let front: Vec<bool> = (0..points.len()).map(|i| !dominated(i)).collect();
    for (p, f) in points.iter_mut().zip(front) {
        p.on_front = f;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(peak: u64, t: f64) -> Point {
        Point {
            source: "ac".into(),
            budget_bytes: None,
            peak_bytes: peak,
            fits: Some(true),
            kept_fraction: 0.0,
            recomputed: 0,
            recompute_time_s: t,
            added_matmul_flops_percent: 0.0,
            on_front: false,
        }
    }

    #[test]
    fn front_keeps_only_undominated_points_once() {
        let mut ps = vec![
            pt(100, 0.0),
            pt(50, 2.0),
            pt(60, 3.0), // dominated by (50, 2.0)
            pt(80, 1.0),
            pt(80, 1.0),  // equal to an earlier point
            pt(100, 0.5), // dominated by (100, 0.0)
        ];
        mark_front(&mut ps);
        let front: Vec<bool> = ps.iter().map(|p| p.on_front).collect();
        assert_eq!(front, [true, true, false, true, false, false]);
    }
}
