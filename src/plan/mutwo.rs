//! μ-TWO's recompute selection (Purandare et al., MLSys 2023, Algorithm B without
//! swapping): repeatedly drop the candidate with the best recompute ratio (bytes freed per
//! second of recomputation, chains charged through their dropped sources), re-simulate, and
//! stop as soon as the simulated peak fits the budget.

use super::candidates::{candidates, recompute_time};
use super::{evaluate, PlanError, PlanInput, Planner, RecomputePlan};
use std::collections::HashSet;

pub struct MuTwo;

impl Planner for MuTwo {
    fn name(&self) -> &'static str {
        "mutwo"
    }

    fn plan(&self, input: &PlanInput) -> Result<RecomputePlan, PlanError> {
        let g = input.graph;
        let mut remaining = candidates(g, input.info);
        let mut dropped: HashSet<_> = HashSet::new();
        let mut chosen = Vec::new();
        let (_, mut eval) = evaluate(g, input.info, &chosen, input.cost)?;
        while eval.peak_bytes > input.budget_bytes && !remaining.is_empty() {
            let (k, _) = remaining
                .iter()
                .enumerate()
                .map(|(k, &v)| {
                    let bytes = g.value_bytes(v).unwrap_or(0) as f64;
                    let t = recompute_time(g, v, &dropped, input.cost).max(1e-12);
                    (k, bytes / t)
                })
                .fold((0, f64::MIN), |best, x| if x.1 > best.1 { x } else { best });
            let v = remaining.swap_remove(k);
            dropped.insert(v);
            chosen.push(v);
            eval = evaluate(g, input.info, &chosen, input.cost)?.1;
        }
        Ok(RecomputePlan::new(
            self.name(),
            input.budget_bytes,
            g,
            chosen,
        ))
    }
}
