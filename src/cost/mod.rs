//! Cost models: how long one node of a graph takes, in seconds. Planners see node costs only
//! through [`CostModel`].
//!
//! * [`CalibratedCost`]: what a profile (`onnx-ac profile`, [`crate::profile`]) gives the
//!   planners: the analytic model with one quantised factor per op type fitted from the
//!   measured medians, so that timing noise does not change plans (`calibrate.rs`).
//! * [`MeasuredCost`]: the raw per-node medians of a profile; nodes the profile does not know
//!   (recompute copies `<orig>/recompute…` take their original's time) fall back to the
//!   analytic model, scaled to the profile. For comparisons, not for planning.
//! * [`AnalyticCost`]: FLOPs and bytes per op over a roofline for a [`Device`].
//! * [`FixedCost`]: a fixed time per op type, for deterministic tests.
//!
//! `docs/profiling.md` documents the formulas and the device table.

mod analytic;
mod calibrate;
mod fixed;
mod measured;

pub use analytic::{
    is_matmul_class, matmul_flops, node_bytes, node_flops, AnalyticCost, Device, DeviceSpec,
};
pub use calibrate::{CalibratedCost, Calibration, OpRate, STEPS_PER_OCTAVE};
pub use fixed::{fixed_time, FixedCost};
pub use measured::MeasuredCost;

use crate::profile::Profile;
use onnx_ac_passes::ir::{Graph, NodeId};

/// Seconds one node takes.
pub trait CostModel: Sync {
    /// Time of node `n` of `g`, in seconds (never negative, never NaN).
    fn node_time(&self, g: &Graph, n: NodeId) -> f64;
    /// Short name for reports, e.g. "measured", "analytic(a100)", "fixed".
    fn name(&self) -> &str;
}

impl<C: CostModel + ?Sized> CostModel for Box<C> {
    fn node_time(&self, g: &Graph, n: NodeId) -> f64 {
        (**self).node_time(g, n)
    }
    fn name(&self) -> &str {
        (**self).name()
    }
}

/// Sum of the node times of the whole graph (one training step without recomputation).
pub fn graph_time(model: &dyn CostModel, g: &Graph) -> f64 {
    g.node_ids().map(|n| model.node_time(g, n)).sum()
}

/// Picks the cost model: the analytic model for `device` calibrated with the profile of `g`
/// when one is given, else the analytic model alone. Returns it with a one-line explanation
/// for the user.
pub fn select_cost_model(
    profile: Option<Profile>,
    g: &Graph,
    runtime_available: bool,
    device: Device,
) -> (Box<dyn CostModel>, String) {
    let spec = DeviceSpec::from(device);
    match profile {
        Some(p) => {
            let cost = CalibratedCost::new(&p, g, AnalyticCost::new(spec));
            let why = format!(
                "cost model: analytic {} roofline calibrated per op type with the profile of {} ({} runs on {}, ONNX Runtime {}), factors rounded to powers of 2: {}",
                cost.analytic.device.name,
                p.model,
                p.runs,
                p.ep,
                if p.ort_version.is_empty() { "?" } else { &p.ort_version },
                cost.calibration.describe()
            );
            (Box::new(cost), why)
        }
        None => {
            let why = if runtime_available {
                format!(
                    "cost model: analytic roofline for {} (no profile given; `onnx-ac profile MODEL -o FILE` measures per-node times with ONNX Runtime, then pass it with --profile FILE)",
                    spec.describe()
                )
            } else {
                format!(
                    "cost model: analytic roofline for {} (ONNX Runtime not available to measure per-node times)",
                    spec.describe()
                )
            };
            (Box::new(AnalyticCost::new(spec)), why)
        }
    }
}

/// Spearman's rank correlation of two equally long samples (average ranks for ties).
/// `None` when fewer than two points or a sample is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let mut cov = 0.0;
    let (mut va, mut vb) = (0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - ma) * (y - mb);
        va += (x - ma) * (x - ma);
        vb += (y - mb) * (y - mb);
    }
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// 1-based ranks, ties sharing their average rank.
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_basics() {
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), Some(1.0));
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), None);
        assert_eq!(ranks(&[5.0, 1.0, 5.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        let r = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 1.0, 4.0, 3.0, 5.0]).unwrap();
        assert!((r - 0.8).abs() < 1e-12);
    }
}
