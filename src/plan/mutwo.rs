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
