//! Measured costs that timing noise cannot move: the analytic model calibrated per op type
//! with a profile, the calibration quantised.
//!
//! Per-node medians differ from run to run by 10–20 % on a loaded machine, and the nodes of
//! identical layers tie: planned with raw per-node times, the same command picked a different
//! plan nearly every run (GPT-2 at `--budget 60%act`: 4 plans in 5 runs). Here a profile
//! moves costs only through one number per op type:
//!
//! 1. each timed node's ratio `measured / analytic` (analytic: [`AnalyticCost`] for the
//!    device);
//! 2. `pooled`: the median ratio over all timed nodes; per op type with at least
//!    [`MIN_CLASS_NODES`] timed nodes, its median ratio over `pooled` (robust to outliers
//!    and to a uniform slow-down of the machine);
//! 3. that relative factor rounded to a power of two ([`STEPS_PER_OCTAVE`] = 1 step per
//!    octave: 1/4, 1/2, 1, 2, 4, ... with the boundaries at 2^(k ± 1/2)); other op types 1;
//! 4. a node's cost: its analytic time × its op type's factor. The absolute scale stays the
//!    analytic model's (the device table), so reported times depend on the profile through
//!    the same factors alone.
//!
//! Identical nodes therefore cost the same whatever the noise (ties are broken by graph
//! order), and a plan changes only when an op type's factor crosses a boundary.

use super::{AnalyticCost, CostModel};
use crate::profile::Profile;
use onnx_ac_passes::ir::{Graph, NodeId};
use serde::Serialize;
use std::collections::BTreeMap;

/// Grid steps per octave of the quantised factors (1: powers of two).
pub const STEPS_PER_OCTAVE: i32 = 1;
/// Op types with fewer timed nodes keep factor 1: a median of a few nodes is noise.
pub const MIN_CLASS_NODES: usize = 8;
/// Factors are clamped to 2^±MAX_OCTAVES (a broken profile must not make any op free).
pub const MAX_OCTAVES: i32 = 10;

/// One op type's calibration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpRate {
    /// Timed nodes of this op type.
    pub nodes: usize,
    /// Median `measured / analytic` over them, divided by the pooled median (unquantised).
    pub relative: f64,
    /// The quantised factor as an exponent: factor = 2^(steps / [`STEPS_PER_OCTAVE`]).
    pub steps: i32,
}

/// The per-op-type factors fitted from a profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Calibration {
    /// Median `measured / analytic` over every timed node (not quantised; not used for
    /// costs, reported only).
    pub pooled: f64,
    /// Timed nodes the fit used.
    pub nodes: usize,
    /// Per op type with at least [`MIN_CLASS_NODES`] timed nodes.
    pub ops: BTreeMap<String, OpRate>,
}

/// The median of `xs` (mean of the middle two for an even count); `None` when empty.
pub fn median(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    Some(if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    })
}

/// `x` on the grid: round(log2(x) × [`STEPS_PER_OCTAVE`]), clamped; 0 for a non-positive or
/// non-finite `x`.
pub fn quantise(x: f64) -> i32 {
    if !(x.is_finite() && x > 0.0) {
        return 0;
    }
    let limit = MAX_OCTAVES * STEPS_PER_OCTAVE;
    ((x.log2() * f64::from(STEPS_PER_OCTAVE)).round() as i64).clamp(-limit as i64, limit as i64)
        as i32
}

/// 2^(steps / [`STEPS_PER_OCTAVE`]), exactly (a power of two for one step per octave).
pub fn factor_of(steps: i32) -> f64 {
    (f64::from(steps) / f64::from(STEPS_PER_OCTAVE)).exp2()
}

impl Calibration {
    /// Fits the factors from the nodes of `g` that `profile` times (Constant nodes and nodes
    /// the analytic model gives no time are left out).
    pub fn fit(profile: &Profile, g: &Graph, analytic: &AnalyticCost) -> Calibration {
        let mut by_op: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut all = Vec::new();
        for n in g.node_ids() {
            let node = g.node(n);
            let Some(measured) = profile.time_of_name(&node.name) else {
                continue;
            };
            let estimate = analytic.node_time(g, n);
            if node.op_type == "Constant"
                || estimate.is_nan()
                || estimate <= 0.0
                || !measured.is_finite()
            {
                continue;
            }
            let r = measured / estimate;
            by_op.entry(node.op_type.as_str()).or_default().push(r);
            all.push(r);
        }
        let nodes = all.len();
        let pooled = median(&mut all).unwrap_or(1.0);
        let ops = by_op
            .into_iter()
            .filter(|(_, rs)| rs.len() >= MIN_CLASS_NODES)
            .map(|(op, mut rs)| {
                let n = rs.len();
                let relative = median(&mut rs).unwrap_or(pooled) / pooled;
                let rate = OpRate {
                    nodes: n,
                    relative,
                    steps: quantise(relative),
                };
                (op.to_string(), rate)
            })
            .collect();
        Calibration { pooled, nodes, ops }
    }

    /// The factor of op type `op` (1 for op types without a rate).
    pub fn factor(&self, op: &str) -> f64 {
        self.ops.get(op).map_or(1.0, |r| factor_of(r.steps))
    }

    /// The op types whose factor is not 1, e.g. `Gemm ×1/4, Slice ×2`.
    pub fn describe(&self) -> String {
        let moved: Vec<String> = self
            .ops
            .iter()
            .filter(|(_, r)| r.steps != 0)
            .map(|(op, r)| {
                let f = factor_of(r.steps);
                if f >= 1.0 {
                    format!("{op} ×{f}")
                } else {
                    format!("{op} ×1/{}", 1.0 / f)
                }
            })
            .collect();
        if moved.is_empty() {
            "none".to_string()
        } else {
            moved.join(", ")
        }
    }
}

/// The analytic model with per-op-type factors from a profile ([`Calibration`]).
#[derive(Clone, Debug)]
pub struct CalibratedCost {
    pub analytic: AnalyticCost,
    pub calibration: Calibration,
}

impl CalibratedCost {
    /// Calibrates `analytic` with the nodes of `g` that `profile` times.
    pub fn new(profile: &Profile, g: &Graph, analytic: AnalyticCost) -> CalibratedCost {
        let calibration = Calibration::fit(profile, g, &analytic);
        CalibratedCost {
            analytic,
            calibration,
        }
    }
}

impl CostModel for CalibratedCost {
    fn node_time(&self, g: &Graph, n: NodeId) -> f64 {
        self.analytic.node_time(g, n) * self.calibration.factor(&g.node(n).op_type)
    }
    fn name(&self) -> &str {
        "calibrated"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantise_rounds_to_powers_of_two() {
        assert_eq!(quantise(1.0), 0);
        assert_eq!(quantise(1.40), 0); // below 2^0.5 = 1.414
        assert_eq!(quantise(1.42), 1);
        assert_eq!(quantise(0.26), -2);
        assert_eq!(quantise(3.9), 2);
        assert_eq!(quantise(0.0), 0);
        assert_eq!(quantise(f64::NAN), 0);
        assert_eq!(quantise(1e300), MAX_OCTAVES * STEPS_PER_OCTAVE);
        assert_eq!(factor_of(-2), 0.25);
        assert_eq!(factor_of(3), 8.0);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
