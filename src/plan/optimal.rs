//! `optimal`: the quality reference. An integer program over the fixed schedule (the
//! training graph in ONNX Runtime's order, each recomputation placed just before the first
//! backward reader of its value), solved exactly by microlp's branch and bound (a pure-Rust
//! MILP solver: HiGHS was tried first, but building its C++ from source took over 15 minutes
//! per profile on the 2-core CI machine).
//!
//! Variables: x_v = 1 when candidate v is dropped and recomputed. Memory at step t is the
//! simulated live memory without recomputation, minus b_v for every dropped v idle across t
//! (after its last forward reader, before its first backward reader), plus two corrections
//! for recompute sources:
//! - a kept activation u read by a dropped v's producer must live until v is recomputed:
//!   z_{u,k} ≥ x_v − x_u, with the extensions of u nested (they all start at u's last use)
//!   so one chain of variables per u counts u once;
//! - a dropped u read by a dropped v whose recomputation comes first is recomputed with
//!   it: w_{u,k} ≥ x_u + x_v − 1 over the nested intervals [b_v, b_u).
//!
//! Objective: Σ x_v · time(producer of v). A memory row per step keeps every step under
//! the budget. The model is then checked with the simulator on the real rewrite; when the
//! rewrite's transients push it over, the budget given to the program is lowered by the
//! excess and it is solved again (a few rounds). When no round fits (or the program is
//! infeasible under its model, which overestimates some steps: on GPT-2 at 8 × 64 it finds
//! no plan under 20 MiB while recomputing every candidate peaks at 18 MiB), the plans that do
//! not depend on the budget are tried — every candidate, and nothing — and the lowest-peak
//! plan found is the best effort. Because those two are tried at every budget, a budget that
//! covers the lower of them is always met; the main command checks its suggested budget by
//! planning again (`pipeline`), as this planner is not monotone in the budget.

use super::candidates::candidates;
use super::simulate::{ort_default_order, simulate};
use super::{evaluate, PlanError, PlanInput, Planner, RecomputePlan};
use microlp::{ComparisonOp, OptimizationDirection, Problem, SolveOptions, Variable};
use onnx_ac_passes::ir::ValueId;
use std::collections::HashMap;

/// Seconds the solver may take per solve (`--planner optimal`, documented in docs/cli.md).
pub const TIME_LIMIT_S: f64 = 60.0;
const ROUNDS: usize = 6;

/// When a solve gives up without proving optimality.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SolveLimit {
    /// Wall-clock seconds per solve: where the search stops depends on the machine and its
    /// load, so the plan may too (the `optimal` planner's documented limit).
    Seconds(f64),
    /// Branch-and-bound nodes per solve (the root relaxation not counted): the same work,
    /// so the same outcome, on every machine (`ac`'s exact stage).
    Nodes(u64),
}

impl std::fmt::Display for SolveLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SolveLimit::Seconds(s) => write!(f, "{s} s"),
            SolveLimit::Nodes(n) => write!(f, "{n} branch-and-bound nodes"),
        }
    }
}

pub struct Optimal {
    pub limit: SolveLimit,
}

impl Default for Optimal {
    fn default() -> Self {
        Optimal {
            limit: SolveLimit::Seconds(TIME_LIMIT_S),
        }
    }
}

impl Optimal {
    /// microlp's options for each solve: the limit, nothing else changed.
    pub fn solve_options(&self) -> SolveOptions {
        let mut o = SolveOptions::default();
        match self.limit {
            SolveLimit::Seconds(s) => o.time_limit = Some(std::time::Duration::from_secs_f64(s)),
            SolveLimit::Nodes(n) => o.node_limit = Some(n),
        }
        o
    }
}

impl Planner for Optimal {
    fn name(&self) -> &'static str {
        "optimal"
    }

    fn plan(&self, input: &PlanInput) -> Result<RecomputePlan, PlanError> {
        let (g, info) = (input.graph, input.info);
        let order = ort_default_order(g);
        let base = simulate(g, &order, Some(info));
        let fixed = base.peak_bytes - base.activation_peak_bytes;
        if base.peak_bytes <= input.budget_bytes {
            return Ok(RecomputePlan::new(
                self.name(),
                input.budget_bytes,
                g,
                Vec::new(),
            ));
        }
        let steps = base.timeline.len();
        let mut pos = vec![usize::MAX; g.nodes.len()];
        for (k, n) in order.iter().enumerate() {
            pos[n.index()] = k;
        }
        let consumers = g.consumers();
        let cands = candidates(g);
        let index: HashMap<ValueId, usize> =
            cands.iter().enumerate().map(|(i, &v)| (v, i)).collect();
        let bytes = |v: ValueId| g.value_bytes(v).unwrap_or(0) as f64 / 1024.0;
        // first backward reader, last forward reader (or producer), last reader.
        let span = |v: ValueId| {
            let rs = &consumers[v.index()];
            let made = g.value(v).producer.map(|p| pos[p.index()]).unwrap_or(0);
            let fb = rs
                .iter()
                .filter(|&&r| g.in_backward(r))
                .map(|r| pos[r.index()])
                .min();
            let lf = rs
                .iter()
                .filter(|&&r| !g.in_backward(r))
                .map(|r| pos[r.index()])
                .max()
                .unwrap_or(made)
                .max(made);
            let last = rs.iter().map(|r| pos[r.index()]).max().unwrap_or(made);
            (made, lf, fb, last)
        };
        let mut budget_act = input.budget_bytes.saturating_sub(fixed) as f64;
        let mut best: Option<(Vec<ValueId>, u64)> = None;
        for _round in 0..ROUNDS {
            let mut pb = Problem::new(OptimizationDirection::Minimize);
            // Objective in microseconds keeps coefficients well scaled for the solver.
            let xs: Vec<Variable> = cands
                .iter()
                .map(|&v| {
                    let p = g.value(v).producer.expect("candidates have producers");
                    pb.add_binary_var(((input.cost)(g, p) * 1e6).max(1e-3))
                })
                .collect();
            // Per-step memory terms: (variable, coefficient) lists, in KiB for scaling.
            let mut terms: Vec<Vec<(Variable, f64)>> = vec![Vec::new(); steps];
            for (i, &v) in cands.iter().enumerate() {
                let (_, lf, fb, _) = span(v);
                let Some(fb) = fb else { continue };
                for row in terms.iter_mut().take(fb.min(steps)).skip(lf + 1) {
                    row.push((xs[i], -bytes(v)));
                }
            }
            // Sources of each dropped candidate.
            let mut ext: HashMap<ValueId, Vec<(usize, usize)>> = HashMap::new(); // kept u -> (fb_v, i_v)
            let mut chain: HashMap<ValueId, Vec<(usize, usize)>> = HashMap::new(); // dropped u -> (fb_v, i_v)
            for (i, &v) in cands.iter().enumerate() {
                let (_, _, Some(fb_v), _) = span(v) else {
                    continue;
                };
                let p = g.value(v).producer.expect("producer");
                for &u in g.node(p).inputs.iter().flatten() {
                    let uv = g.value(u);
                    if uv.producer.is_none() || uv.constant.is_some() {
                        continue;
                    }
                    if index.contains_key(&u) {
                        chain.entry(u).or_default().push((fb_v, i));
                    }
                    ext.entry(u).or_default().push((fb_v, i));
                }
            }
            // Kept-source extensions: u alive from its last use to fb_v when x_v and not x_u.
            for (u, mut deps) in ext {
                let (_, _, _, last_u) = span(u);
                deps.retain(|&(fb, _)| fb > last_u + 1);
                if deps.is_empty() {
                    continue;
                }
                deps.sort_by_key(|d| std::cmp::Reverse(d.0)); // longest extension first
                let xu = index.get(&u).map(|&k| xs[k]);
                let mut prev: Option<Variable> = None;
                for (k, &(fb, i)) in deps.iter().enumerate() {
                    let z = pb.add_var(0.0, (0.0, 1.0));
                    // z_k ≥ x_v − x_u ; z_k ≥ z_{k−1}
                    let mut row = vec![(z, 1.0), (xs[i], -1.0)];
                    if let Some(xu) = xu {
                        row.push((xu, 1.0));
                    }
                    pb.add_constraint(row, ComparisonOp::Ge, 0.0);
                    if let Some(p) = prev {
                        pb.add_constraint([(z, 1.0), (p, -1.0)], ComparisonOp::Ge, 0.0);
                    }
                    prev = Some(z);
                    let next_fb = deps.get(k + 1).map(|d| d.0).unwrap_or(last_u + 1);
                    // z_k covers the steps only it reaches: [next_fb, fb).
                    let first = next_fb.max(last_u + 1);
                    for row in terms.iter_mut().take(fb.min(steps)).skip(first) {
                        row.push((z, bytes(u)));
                    }
                }
            }
            // Dropped sources recomputed early with an earlier dependent.
            for (u, mut deps) in chain {
                let (_, _, Some(fb_u), _) = span(u) else {
                    continue;
                };
                deps.retain(|&(fb, _)| fb < fb_u);
                if deps.is_empty() {
                    continue;
                }
                deps.sort_by_key(|d| d.0); // earliest first
                let xu = xs[index[&u]];
                let mut prev: Option<Variable> = None;
                for (k, &(fb, i)) in deps.iter().enumerate() {
                    let w = pb.add_var(0.0, (0.0, 1.0));
                    pb.add_constraint(
                        [(w, 1.0), (xu, -1.0), (xs[i], -1.0)],
                        ComparisonOp::Ge,
                        -1.0,
                    );
                    if let Some(p) = prev {
                        pb.add_constraint([(w, 1.0), (p, -1.0)], ComparisonOp::Ge, 0.0);
                    }
                    prev = Some(w);
                    let next_fb = deps.get(k + 1).map(|d| d.0).unwrap_or(fb_u);
                    for row in terms.iter_mut().take(next_fb.min(steps)).skip(fb) {
                        row.push((w, bytes(u)));
                    }
                }
            }
            for (t, row) in terms.iter().enumerate() {
                let cap = (budget_act - base.timeline[t] as f64) / 1024.0;
                if row.is_empty() {
                    continue;
                }
                if cap >= 0.0 && row.iter().all(|&(_, c)| c <= 0.0) {
                    continue; // already under the budget and can only go down
                }
                pb.add_constraint(row.iter().copied(), ComparisonOp::Le, cap);
            }
            let outcome = match pb.solve_with(self.solve_options()) {
                Ok(o) => o,
                Err(microlp::Error::Infeasible) => break,
                Err(e) => return Err(PlanError::Solver(format!("the solver failed: {e}"))),
            };
            if !outcome.is_optimal() {
                return Err(PlanError::Solver(format!(
                    "the integer program was not solved to optimality within {}; use a larger budget or another planner",
                    self.limit
                )));
            }
            let sol = outcome
                .solution()
                .expect("an optimal outcome has a solution");
            let chosen: Vec<ValueId> = cands
                .iter()
                .enumerate()
                .filter(|&(i, _)| sol.var_value(xs[i]) > 0.5)
                .map(|(_, &v)| v)
                .collect();
            let (_, eval) = evaluate(g, info, &chosen, input.cost)?;
            if best.as_ref().is_none_or(|b| eval.peak_bytes < b.1) {
                best = Some((chosen.clone(), eval.peak_bytes));
            }
            if eval.peak_bytes <= input.budget_bytes {
                return Ok(RecomputePlan::new(
                    self.name(),
                    input.budget_bytes,
                    g,
                    chosen,
                ));
            }
            budget_act -= (eval.peak_bytes - input.budget_bytes) as f64;
        }
        // Nothing the program chose fits. Its memory model is approximate (transients of
        // the rewrite, ONNX Runtime's reuse), so the plans that do not depend on the budget
        // are tried too: recomputing every candidate, and nothing. The lowest-peak plan
        // found is the best effort; since those two are tried at every budget, a budget
        // covering the lower of them always gets a plan that fits.
        for values in [cands.clone(), Vec::new()] {
            // Recomputing nothing is written as the lower-peak of the plain graph and the
            // empty plan's rewrite (`pipeline`).
            let peak = match evaluate(g, info, &values, input.cost) {
                Ok((_, e)) if values.is_empty() => e.peak_bytes.min(base.peak_bytes),
                Ok((_, e)) => e.peak_bytes,
                Err(_) => continue,
            };
            if peak <= input.budget_bytes {
                return Ok(RecomputePlan::new(
                    self.name(),
                    input.budget_bytes,
                    g,
                    values,
                ));
            }
            if best.as_ref().is_none_or(|b| peak < b.1) {
                best = Some((values, peak));
            }
        }
        let chosen = best.map(|b| b.0).unwrap_or_default();
        Ok(RecomputePlan::new(
            self.name(),
            input.budget_bytes,
            g,
            chosen,
        ))
    }

    fn monotone(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_sets_only_its_own_option() {
        let seconds = Optimal::default().solve_options();
        assert_eq!(
            seconds.time_limit,
            Some(std::time::Duration::from_secs_f64(TIME_LIMIT_S))
        );
        assert_eq!(seconds.node_limit, None);
        let nodes = Optimal {
            limit: SolveLimit::Nodes(7),
        }
        .solve_options();
        assert_eq!(nodes.time_limit, None);
        assert_eq!(nodes.node_limit, Some(7));
        assert_eq!(SolveLimit::Seconds(60.0).to_string(), "60 s");
        assert_eq!(SolveLimit::Nodes(7).to_string(), "7 branch-and-bound nodes");
    }
}
