//! μ-TWO's recompute selection (Purandare et al., MLSys 2023, Algorithm B without
//! swapping): repeatedly drop the candidate with the best recompute ratio (bytes freed per
//! second of recomputation, chains charged through their dropped sources), re-simulate, and
//! stop as soon as the simulated peak fits the budget.

use super::candidates::{candidates, mutwo_order};
use super::{evaluate, PlanError, PlanInput, Planner, RecomputePlan};
use rayon::prelude::*;

pub struct MuTwo;

impl Planner for MuTwo {
    fn name(&self) -> &'static str {
        "mutwo"
    }

    fn plan(&self, input: &PlanInput) -> Result<RecomputePlan, PlanError> {
        let g = input.graph;
        // The ratios depend only on what is dropped before, so the whole ranking can be
        // made first; the plan is its shortest prefix that fits.
        let order = mutwo_order(g, &candidates(g), input.cost);
        let mut taken = 0;
        let (_, mut eval) = evaluate(g, input.info, &[], input.cost)?;
        // When no prefix fits, the lowest peak any prefix reached (the shortest on ties):
        // dropping more can raise the peak, so the whole ranking is not the best effort.
        let mut lowest = (eval.peak_bytes, 0);
        // Prefixes are simulated a few at a time, one per thread, and read in order: the
        // plan is the one the one-at-a-time loop finds (a batch's prefixes past the first
        // that fits are wasted work). `tradeoff` asks for the lowest peak, which simulates
        // every prefix: quadratic in the candidates, so the threads count.
        let batch = rayon::current_num_threads().max(1);
        'prefixes: while eval.peak_bytes > input.budget_bytes && taken < order.len() {
            let lengths = taken + 1..=(taken + batch).min(order.len());
            let evals: Vec<_> = lengths
                .clone()
                .into_par_iter()
                .map(|k| evaluate(g, input.info, &order[..k], input.cost).map(|(_, e)| e))
                .collect();
            for (k, e) in lengths.zip(evals) {
                (taken, eval) = (k, e?);
                if eval.peak_bytes < lowest.0 {
                    lowest = (eval.peak_bytes, taken);
                }
                if eval.peak_bytes <= input.budget_bytes {
                    break 'prefixes;
                }
            }
        }
        if eval.peak_bytes > input.budget_bytes {
            taken = lowest.1;
        }
        Ok(RecomputePlan::new(
            self.name(),
            input.budget_bytes,
            g,
            order[..taken].to_vec(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::candidates::tests::cost;
    use onnx_ac_passes::autodiff::build_training_graph;
    use onnx_ac_passes::ir::ValueId;
    use onnx_ac_passes::synth;

    /// μ-TWO's loop as written: one prefix at a time, the first that fits, else the
    /// shortest of the lowest peak.
    fn one_at_a_time(input: &PlanInput) -> Vec<ValueId> {
        let g = input.graph;
        let order = mutwo_order(g, &candidates(g), input.cost);
        let peak = |k: usize| {
            evaluate(g, input.info, &order[..k], input.cost)
                .unwrap()
                .1
                .peak_bytes
        };
        let mut lowest = (peak(0), 0);
        for k in 0..=order.len() {
            let p = peak(k);
            if p <= input.budget_bytes {
                return order[..k].to_vec();
            }
            if p < lowest.0 {
                lowest = (p, k);
            }
        }
        order[..lowest.1].to_vec()
    }

    /// Simulating prefixes a batch at a time (on two threads and on one) finds the plan the
    /// one-at-a-time loop finds, whether the first fit falls at a batch's start, inside it,
    /// or nowhere (budget 0: the lowest peak).
    #[test]
    fn batched_prefixes_find_the_one_at_a_time_plan() {
        let m = synth::transformer(2, 16, 2, 8, 4, 12);
        let (tm, info) = build_training_graph(&m, &synth::cross_entropy()).unwrap();
        let g = &tm.graph;
        // Budgets at the peaks of several prefixes: the first fit falls at every position
        // of a batch.
        let order = mutwo_order(g, &candidates(g), &cost);
        let budgets: Vec<u64> = std::iter::once(0)
            .chain(
                (1..order.len())
                    .step_by(3)
                    .take(6)
                    .map(|k| evaluate(g, &info, &order[..k], &cost).unwrap().1.peak_bytes),
            )
            .collect();
        let mut lengths = std::collections::BTreeSet::new();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for &budget in &budgets {
                let input = PlanInput {
                    graph: g,
                    info: &info,
                    cost: &cost,
                    budget_bytes: budget,
                };
                let plan = pool.install(|| MuTwo.plan(&input)).unwrap();
                // (A plan lists its values in id order.)
                let got = plan.resolve(g).unwrap();
                let mut want = one_at_a_time(&input);
                want.sort_unstable();
                assert_eq!(got, want, "{threads} threads, budget {budget}");
                lengths.insert(got.len());
            }
        }
        // The budgets exercise plans of several lengths, not one.
        assert!(lengths.len() >= 4, "{lengths:?}");
    }
}
