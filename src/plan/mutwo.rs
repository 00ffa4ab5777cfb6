//! μ-TWO's recompute selection (Purandare et al., MLSys 2023, Algorithm B without
//! swapping): repeatedly drop the candidate with the best recompute ratio (bytes freed per
//! second of recomputation, chains charged through their dropped sources), re-simulate, and
//! stop as soon as the simulated peak fits the budget.

use super::candidates::{candidates, mutwo_order};
use super::{evaluate, PlanError, PlanInput, Planner, RecomputePlan};

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
        while eval.peak_bytes > input.budget_bytes && taken < order.len() {
            taken += 1;
            eval = evaluate(g, input.info, &order[..taken], input.cost)?.1;
            if eval.peak_bytes < lowest.0 {
                lowest = (eval.peak_bytes, taken);
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
