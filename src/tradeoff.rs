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

/// "Nice" axis ticks from 0 to at least `max`: steps of 1, 2 or 5 times a power of ten.
fn ticks(max: f64) -> Vec<f64> {
    let max = if max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| max / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let n = (max / step).ceil() as usize;
    (0..=n).map(|k| k as f64 * step).collect()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Tradeoff {
    /// The curve as a self-contained SVG: simulated peak (x) against the recomputation's time
    /// (y, the cost model's), the planner's points joined in budget order, the Pareto front
    /// drawn as a step line, the references as labelled markers.
    pub fn to_svg(&self) -> String {
        let scale = crate::size::ByteScale::for_largest(self.plain_peak_bytes);
        let unit_bytes = match scale.unit() {
            "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            _ => 1024f64.powi(4),
        };
        let (w, h, left, right, top, bottom) = (720.0, 440.0, 80.0, 150.0, 56.0, 60.0);
        let (pw, ph) = (w - left - right, h - top - bottom);
        let xmax_v =
            self.points.iter().map(|p| p.peak_bytes).max().unwrap_or(1) as f64 / unit_bytes;
        let ymax_v = self
            .points
            .iter()
            .map(|p| p.recompute_time_s * 1e3)
            .fold(0.0, f64::max);
        let (xt, yt) = (ticks(xmax_v), ticks(ymax_v));
        let (xmax, ymax) = (*xt.last().unwrap_or(&1.0), *yt.last().unwrap_or(&1.0));
        let px = |b: u64| left + (b as f64 / unit_bytes) / xmax * pw;
        let py = |t: f64| top + ph - (t * 1e3) / ymax * ph;
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Trade-off: recomputation against peak ({})</text>\n<text x=\"10\" y=\"40\" fill=\"#555555\">{}</text>\n",
            xml_escape(&self.planner),
            xml_escape(&self.cost_model)
        );
        for &t in &xt {
            let x = left + t / xmax * pw;
            s.push_str(&format!(
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#eeeeee\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                top + ph,
                top + ph + 16.0,
                fmt_tick(t)
            ));
        }
        for &t in &yt {
            let y = top + ph - t / ymax * ph;
            s.push_str(&format!(
                "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#eeeeee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
                left + pw,
                left - 6.0,
                y + 4.0,
                fmt_tick(t)
            ));
        }
        s.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333333\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#333333\"/>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">simulated peak ({})</text>\n<text transform=\"translate(18 {}) rotate(-90)\" text-anchor=\"middle\">recompute time (ms, cost model)</text>\n",
            top + ph,
            left + pw,
            top + ph,
            top + ph,
            left + pw / 2.0,
            h - 18.0,
            scale.unit(),
            top + ph / 2.0
        ));
        // The front as a step line (by peak: the cost holds until the next point).
        let front = self.front();
        if front.len() > 1 {
            let mut d = format!(
                "M{:.1},{:.1}",
                px(front[0].peak_bytes),
                py(front[0].recompute_time_s)
            );
            for p in &front[1..] {
                d.push_str(&format!(
                    " H{:.1} V{:.1}",
                    px(p.peak_bytes),
                    py(p.recompute_time_s)
                ));
            }
            s.push_str(&format!(
                "<path d=\"{d}\" fill=\"none\" stroke=\"#9ecae1\" stroke-width=\"6\" stroke-opacity=\"0.6\"/>\n"
            ));
        }
        let own: Vec<&Point> = self
            .points
            .iter()
            .filter(|p| p.source == self.planner)
            .collect();
        if own.len() > 1 {
            let pts: Vec<String> = own
                .iter()
                .map(|p| format!("{:.1},{:.1}", px(p.peak_bytes), py(p.recompute_time_s)))
                .collect();
            s.push_str(&format!(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n",
                pts.join(" ")
            ));
        }
        for p in &own {
            s.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#1f77b4\"><title>{}: peak {}, {:.2} ms</title></circle>\n",
                px(p.peak_bytes),
                py(p.recompute_time_s),
                xml_escape(&p.source),
                scale.format(p.peak_bytes),
                p.recompute_time_s * 1e3
            ));
        }
        // References: a marker each, named in the legend on the right (labels beside the
        // markers would overlap where the points crowd).
        let colors = ["#2ca02c", "#ff7f0e", "#d62728", "#9467bd"];
        let refs: Vec<&Point> = self
            .points
            .iter()
            .filter(|p| p.source != self.planner)
            .collect();
        let lx = left + pw + 16.0;
        s.push_str(&format!(
            "<circle cx=\"{lx}\" cy=\"{top}\" r=\"4\" fill=\"#1f77b4\"/><text x=\"{}\" y=\"{}\">{} (curve)</text>\n<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"6\" fill=\"#9ecae1\"/><text x=\"{}\" y=\"{}\">Pareto front</text>\n",
            lx + 10.0,
            top + 4.0,
            xml_escape(&self.planner),
            lx - 6.0,
            top + 15.0,
            lx + 10.0,
            top + 22.0
        ));
        for (k, p) in refs.iter().enumerate() {
            let c = colors[k % colors.len()];
            let (x, y) = (px(p.peak_bytes), py(p.recompute_time_s));
            s.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"9\" height=\"9\" fill=\"{c}\"><title>{}: peak {}, {:.2} ms</title></rect>\n<rect x=\"{}\" y=\"{}\" width=\"9\" height=\"9\" fill=\"{c}\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
                x - 4.5,
                y - 4.5,
                xml_escape(&p.source),
                scale.format(p.peak_bytes),
                p.recompute_time_s * 1e3,
                lx - 4.5,
                top + 36.0 + k as f64 * 18.0,
                lx + 10.0,
                top + 44.0 + k as f64 * 18.0,
                xml_escape(&p.source)
            ));
        }
        s.push_str("</svg>\n");
        s
    }
}

fn fmt_tick(t: f64) -> String {
    if t == t.trunc() {
        format!("{t:.0}")
    } else if (t * 10.0) == (t * 10.0).trunc() {
        format!("{t:.1}")
    } else {
        format!("{t:.2}")
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
