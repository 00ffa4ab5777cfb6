//! Comparing the step times of two graphs measured in alternated rounds (`verify`, the main
//! command's `--verify`): the medians, the overhead, its spread, and whether the spread covers
//! it. One step time is not a fact on a shared machine (the same empty plan once read +253%,
//! +26%, −10% and −39%); the same logic as `scripts/zoo/bench_deep.py`.

use serde::Serialize;

/// Two graphs' step times over the same rounds (round i ran both, one after the other).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StepComparison {
    /// Median step time of the original graph, seconds (0 when not timed).
    pub original_step_time_s: f64,
    /// Median step time of the rewritten graph, seconds (0 when not timed).
    pub rewritten_step_time_s: f64,
    /// Rounds timed: each ran both graphs once, in alternating order.
    pub step_time_rounds: usize,
    /// 100 × (rewritten median / original median − 1).
    pub overhead_percent: f64,
    /// Half the interquartile range of the per-round overheads 100 × (rewritten_i /
    /// original_i − 1), in percentage points; `None` below 2 rounds.
    pub overhead_spread_percent: Option<f64>,
    /// The spread covers the overhead (|overhead| ≤ spread): the two graphs' step times are
    /// not told apart by this measurement.
    pub overhead_within_noise: bool,
}

/// The median (mean of the middle two for an even count); 0 when empty.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[m],
        _ => (v[m - 1] + v[m]) / 2.0,
    }
}

/// Half the interquartile range of `xs` (quartiles at ⌊n/4⌋ from each end, as
/// `scripts/zoo/bench_deep.py`); `None` below 2 values.
pub fn half_iqr(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let q = v.len() / 4;
    Some((v[v.len() - 1 - q] - v[q]) / 2.0)
}

impl StepComparison {
    /// From the per-round times of the two graphs (equally long; extra rounds of either
    /// are ignored).
    pub fn from_rounds(original: &[f64], rewritten: &[f64]) -> StepComparison {
        let n = original.len().min(rewritten.len());
        let (a, b) = (&original[..n], &rewritten[..n]);
        let (ma, mb) = (median(a), median(b));
        let overhead_percent = if ma > 0.0 {
            100.0 * (mb / ma - 1.0)
        } else {
            0.0
        };
        let per_round: Vec<f64> = a
            .iter()
            .zip(b)
            .filter(|(x, _)| **x > 0.0)
            .map(|(x, y)| 100.0 * (y / x - 1.0))
            .collect();
        let spread = half_iqr(&per_round);
        StepComparison {
            original_step_time_s: ma,
            rewritten_step_time_s: mb,
            step_time_rounds: n,
            overhead_percent,
            overhead_spread_percent: spread,
            overhead_within_noise: spread.is_some_and(|s| overhead_percent.abs() <= s),
        }
    }

    /// The overhead with its spread: `+3.2% ± 4.1, within noise`, `+25.0% ± 3.0`, or
    /// `+3.2%, no spread` (one round).
    pub fn overhead_text(&self) -> String {
        match self.overhead_spread_percent {
            Some(s) => format!(
                "{:+.1}% ± {s:.1}{}",
                self.overhead_percent,
                if self.overhead_within_noise {
                    ", within noise"
                } else {
                    ""
                }
            ),
            None => format!("{:+.1}%, no spread", self.overhead_percent),
        }
    }

    /// How the medians were taken: `median of 5 alternated rounds`.
    pub fn method_text(&self) -> String {
        match self.step_time_rounds {
            1 => "1 round".to_string(),
            n => format!("median of {n} alternated rounds"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spread_like_bench_deep() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(half_iqr(&[1.0]), None);
        // n = 5: quartiles are the 2nd and 4th smallest.
        assert_eq!(half_iqr(&[50.0, 1.0, 2.0, 4.0, -30.0]), Some(1.5));
        // n = 2: half the range.
        assert_eq!(half_iqr(&[1.0, 5.0]), Some(2.0));
    }

    #[test]
    fn an_overhead_the_spread_covers_is_within_noise() {
        // Five rounds on a noisy machine: per-round overheads +100%, +25%, -10%, -40% and
        // -12.5%; the medians differ by 5% (10 ms -> 10.5 ms).
        let a = [10e-3, 8e-3, 10e-3, 20e-3, 12e-3];
        let b = [20e-3, 10e-3, 9e-3, 12e-3, 10.5e-3];
        let c = StepComparison::from_rounds(&a, &b);
        assert_eq!(c.step_time_rounds, 5);
        assert_eq!(c.original_step_time_s, 10e-3);
        assert_eq!(c.rewritten_step_time_s, 10.5e-3);
        assert!((c.overhead_percent - 5.0).abs() < 1e-9);
        // Sorted: -40, -12.5, -10, 25, 100; half of (25 - (-12.5)) = 18.75.
        let s = c.overhead_spread_percent.unwrap();
        assert!((s - 18.75).abs() < 1e-9, "{s}");
        assert!(c.overhead_within_noise);
        assert_eq!(c.overhead_text(), "+5.0% ± 18.8, within noise");
        assert_eq!(c.method_text(), "median of 5 alternated rounds");
    }

    #[test]
    fn a_steady_overhead_beyond_the_spread_is_reported_as_such() {
        let a = [10e-3, 10.2e-3, 9.9e-3, 10.1e-3, 10e-3];
        let b = [12e-3, 12.3e-3, 11.8e-3, 12.1e-3, 12e-3];
        let c = StepComparison::from_rounds(&a, &b);
        assert!((c.overhead_percent - 20.0).abs() < 1e-9);
        assert!(!c.overhead_within_noise);
        assert!(c.overhead_spread_percent.unwrap() < 1.0);
        assert!(
            !c.overhead_text().contains("noise"),
            "{}",
            c.overhead_text()
        );
        assert!(c.overhead_text().starts_with("+20.0% ± 0."));
    }

    #[test]
    fn one_round_has_no_spread_and_is_never_called_noise() {
        let c = StepComparison::from_rounds(&[10e-3], &[10.1e-3]);
        assert_eq!(c.overhead_spread_percent, None);
        assert!(!c.overhead_within_noise);
        assert_eq!(c.overhead_text(), "+1.0%, no spread");
        assert_eq!(c.method_text(), "1 round");
        let c = StepComparison::from_rounds(&[], &[]);
        assert_eq!(c.step_time_rounds, 0);
        assert_eq!(c.overhead_percent, 0.0);
    }
}
