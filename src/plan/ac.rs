//! onnx-ac's default planner, `ac`: the cheapest plan that fits, chosen from a pool of
//! simulated plans.
//!
//! Greedy ratio rules (μ-TWO) stop at the first plan that fits and pay for memory that was
//! never at the peak; presets ignore the budget; the exact program (`optimal`) models ONNX
//! Runtime's allocator only approximately and is slow on large graphs. `ac` simulates plans
//! from all of them and keeps the one with the least added compute whose simulated peak
//! fits:
//!
//! 1. a **peak-aware sweep**: from no recomputation down to the lowest peak it can reach,
//!    each step drops the candidates held idle across the current peak step (dropped there,
//!    needed later) with the most bytes per second of recomputation (chains charged through
//!    their dropped sources); every step is a plan of the pool;
//! 2. **μ-TWO's order**: prefixes of the global bytes-per-second ranking;
//! 3. the **presets** (none, selective, full);
//! 4. **segment plans** (`segments.rs`): stretches between checkpoints recomputed whole,
//!    segment by segment, at three levels of cost (pointwise and normalizations, then
//!    attention's MatMuls, then everything), then the checkpoints inside each layer;
//! 5. on graphs small enough, the **exact program** at a fixed grid of budget levels.
//!
//! None of these depend on the budget, so the choice among them is monotone: a larger
//! budget never selects more added time, nor a smaller peak. (Pruning a chosen plan against
//! the budget would save a little more but would break that: it is not done.)

use super::candidates::{candidates, mutwo_order};
use super::simulate::simulate_ort_default;
use super::{PlanError, PlanInput, Planner, RecomputePlan};
use onnx_ac_passes::autodiff::saved_activations;
use onnx_ac_passes::ir::{Graph, NodeId, ValueId};
use onnx_ac_passes::recompute::{apply_recompute, RewriteOptions};
use onnx_ac_passes::runtime_shapes::is_alias;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};

pub struct Ac;

/// Graphs up to this many nodes also get the exact program's plan (every fixture does; its
/// program grows much faster than the graph).
const EXACT_MAX_NODES: usize = 1_500;
/// Work limit for each solve of the exact program inside `ac`: branch-and-bound nodes, not
/// seconds, so that where the search stops (and so the pool of plans) is the same on every
/// machine however loaded (docs/cli.md, *Determinism*). A level not solved within it is left
/// out of the pool.
const EXACT_NODE_LIMIT: u64 = 2_000;

/// The exact program as `ac` runs it.
fn exact_planner() -> super::optimal::Optimal {
    super::optimal::Optimal {
        limit: super::optimal::SolveLimit::Nodes(EXACT_NODE_LIMIT),
    }
}
/// Candidates tried by simulation when none is idle across the peak.
const TRIALS: usize = 8;
/// Each simulation rewrites and simulates the whole graph, so the parts of the pool that
/// grow with the number of candidates (the sweep, μ-TWO's prefixes) get about this many
/// simulated nodes each: every step of their own on graphs with few candidates, batched
/// steps on large graphs, so planning time grows linearly with the graph.
const SIMULATED_NODES_PER_PART: usize = 150_000;
/// The most segment plans simulated (`segments.rs`: about 3 per segment and one per layer).
const MAX_SEGMENT_PLANS: usize = 96;
/// The fewest steps a part takes, however large the graph.
const MIN_STEPS: usize = 8;

/// A simulated plan: peak bytes and added seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Score {
    peak: u64,
    time: f64,
}

/// The full outcome of simulating one plan, for the sweep.
struct Detail {
    score: Score,
    /// Not-dropped candidates held idle across the peak step: (value, bytes).
    idle_at_peak: Vec<(ValueId, u64)>,
}

#[derive(Clone)]
struct Pool<'a, 'b> {
    input: &'a PlanInput<'b>,
    cands: Vec<ValueId>,
    /// Per value: read by the backward when nothing is recomputed.
    saved: Vec<bool>,
    scores: HashMap<Vec<ValueId>, Score>,
    /// Plans in the order they were added (the pool), keyed like `scores`.
    plans: Vec<Vec<ValueId>>,
}

impl<'a, 'b> Pool<'a, 'b> {
    fn key(values: &[ValueId]) -> Vec<ValueId> {
        let mut k = values.to_vec();
        k.sort_unstable();
        k.dedup();
        k
    }

    /// Rewrites and simulates `chosen`; remembers the plan in the pool.
    fn detail(&mut self, chosen: &[ValueId]) -> Result<Detail, PlanError> {
        let d = self.simulate(chosen)?;
        self.remember(chosen, d.score);
        Ok(d)
    }

    /// Rewrites and simulates `chosen`.
    fn simulate(&self, chosen: &[ValueId]) -> Result<Detail, PlanError> {
        let (g, info) = (self.input.graph, self.input.info);
        let (rg, _) = apply_recompute(g, info, chosen, RewriteOptions::default())?;
        let (order, sim) = simulate_ort_default(&rg, Some(info));
        let time = super::recompute_time(&rg, self.input.cost);
        let score = Score {
            peak: sim.peak_bytes,
            time,
        };
        let mut pos = vec![usize::MAX; rg.nodes.len()];
        for (k, n) in order.iter().enumerate() {
            pos[n.index()] = k;
        }
        let consumers = rg.consumers();
        let dropped: HashSet<ValueId> = chosen.iter().copied().collect();
        let mut idle = Vec::new();
        for &v in &self.cands {
            if dropped.contains(&v) {
                continue;
            }
            let readers = &consumers[v.index()];
            let last_fw = readers
                .iter()
                .filter(|&&r| !rg.in_backward(r))
                .map(|r| pos[r.index()])
                .max();
            let made = rg.value(v).producer.map(|p| pos[p.index()]);
            let first_bw = first_backward_read(&rg, &consumers, &pos, v);
            let (Some(made), Some(first_bw)) = (made, first_bw) else {
                continue;
            };
            let idle_from = last_fw.unwrap_or(made).max(made);
            if idle_from < sim.peak_step && sim.peak_step < first_bw {
                idle.push((v, rg.value_bytes(v).unwrap_or(0)));
            }
        }
        Ok(Detail {
            score,
            idle_at_peak: idle,
        })
    }

    /// Scores every plan of `plans` not scored yet, in parallel (each simulation is
    /// independent); they join the pool in the order given.
    fn score_all(&mut self, plans: &[Vec<ValueId>]) -> Result<Vec<Score>, PlanError> {
        let mut todo: Vec<&Vec<ValueId>> = Vec::new();
        let mut seen = HashSet::new();
        for p in plans {
            let k = Self::key(p);
            if !self.scores.contains_key(&k) && seen.insert(k) {
                todo.push(p);
            }
        }
        let done: Vec<Result<Score, PlanError>> = todo
            .par_iter()
            .map(|p| self.simulate(p).map(|d| d.score))
            .collect();
        for (p, s) in todo.into_iter().zip(done) {
            self.remember(p, s?);
        }
        Ok(plans.iter().map(|p| self.scores[&Self::key(p)]).collect())
    }

    /// Adds the plans of `other` this pool lacks, in `other`'s order.
    fn absorb(&mut self, other: Pool) {
        for p in other.plans {
            let s = other.scores[&p];
            self.remember(&p, s);
        }
    }

    fn remember(&mut self, chosen: &[ValueId], score: Score) {
        let k = Self::key(chosen);
        if self.scores.insert(k.clone(), score).is_none() {
            self.plans.push(k);
        }
    }

    /// The score of `chosen` (simulated once per distinct plan).
    fn score(&mut self, chosen: &[ValueId]) -> Result<Score, PlanError> {
        if let Some(s) = self.scores.get(&Self::key(chosen)) {
            return Ok(*s);
        }
        Ok(self.detail(chosen)?.score)
    }

    /// How many simulations the sweep, and μ-TWO's prefixes, may each use.
    fn steps(&self) -> usize {
        (SIMULATED_NODES_PER_PART / self.input.graph.nodes.len().max(1)).max(MIN_STEPS)
    }

    /// Whether there are more candidates than steps (then steps take several candidates).
    fn large(&self) -> bool {
        self.cands.len() > self.steps()
    }

    /// Bytes per second of recomputation of `v` given what is already dropped, with chains
    /// charged through their dropped sources. Only net bytes count: a recompute reads forward
    /// values the backward would otherwise not keep (a Softmax recomputed from its input
    /// keeps that input, as large as itself, alive until the backward), and those are
    /// subtracted. Returns (ratio, seconds); the ratio is 0 when nothing would be freed.
    fn ratio(&self, v: ValueId, dropped: &HashSet<ValueId>) -> (f64, f64) {
        let g = self.input.graph;
        let mut seen = HashSet::new();
        let mut kept_instead = HashSet::new();
        let mut stack = vec![v];
        let (mut t, mut extra) = (0.0, 0u64);
        while let Some(x) = stack.pop() {
            let Some(p) = g.value(x).producer else {
                continue;
            };
            if !seen.insert(p) {
                continue;
            }
            t += (self.input.cost)(g, p);
            for &i in g.node(p).inputs.iter().flatten() {
                let iv = g.value(i);
                if dropped.contains(&i) {
                    stack.push(i);
                } else if i != v
                    && !self.saved[i.index()]
                    && iv.producer.is_some()
                    && iv.initializer.is_none()
                    && iv.constant.is_none()
                    && kept_instead.insert(i)
                {
                    extra += g.value_bytes(i).unwrap_or(0);
                }
            }
        }
        let t = t.max(1e-12);
        let net = g.value_bytes(v).unwrap_or(0).saturating_sub(extra);
        (net as f64 / t, t)
    }

    /// Part 1: the peak-aware sweep from no recomputation to the lowest peak it reaches.
    /// On large graphs each step drops a batch of candidates and the sweep stops after
    /// [`Pool::steps`] simulations.
    fn sweep(&mut self) -> Result<(), PlanError> {
        let (large, steps) = (self.large(), self.steps());
        let full_batch = if large {
            self.cands.len().div_ceil(steps).max(1)
        } else {
            1
        };
        // Batches start at one candidate and double up to the full batch, so that budgets
        // just under the peak without recomputation still find small plans; the ramp gets
        // its own simulations.
        let ramp = full_batch.next_power_of_two().trailing_zeros() as usize;
        let mut batch = 1;
        let mut chosen: Vec<ValueId> = Vec::new();
        let mut dropped: HashSet<ValueId> = HashSet::new();
        let mut cur = self.detail(&chosen)?;
        let mut simulations = 1;
        while !large || simulations < steps + ramp {
            let mut ranked: Vec<(ValueId, f64)> = cur
                .idle_at_peak
                .iter()
                .filter(|(_, b)| *b > 0)
                .map(|&(v, _)| (v, self.ratio(v, &dropped).0))
                .filter(|&(_, r)| r > 0.0)
                .collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let next: Vec<ValueId> = if !ranked.is_empty() {
                ranked.iter().take(batch).map(|x| x.0).collect()
            } else {
                // Nothing idle across the peak (it sits where values are in use): try the
                // best-ratio candidates and keep the best reduction per second (on large
                // graphs, one trial: the next batch of them).
                let mut ranked: Vec<(ValueId, f64, f64)> = self
                    .cands
                    .iter()
                    .filter(|v| !dropped.contains(v))
                    .map(|&v| {
                        let (r, t) = self.ratio(v, &dropped);
                        (v, r, t)
                    })
                    .collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                let trials: Vec<Vec<ValueId>> = if large {
                    vec![ranked.iter().take(batch).map(|x| x.0).collect()]
                } else {
                    ranked.iter().take(TRIALS).map(|x| vec![x.0]).collect()
                };
                let times: Vec<f64> = if large {
                    vec![ranked.iter().take(batch).map(|x| x.2).sum()]
                } else {
                    ranked.iter().take(TRIALS).map(|x| x.2).collect()
                };
                let plans: Vec<Vec<ValueId>> = trials
                    .iter()
                    .map(|t| chosen.iter().chain(t).copied().collect())
                    .collect();
                let scores = self.score_all(&plans)?;
                simulations += plans.len();
                let mut best: Option<(usize, f64)> = None;
                for (k, s) in scores.iter().enumerate() {
                    if s.peak < cur.score.peak {
                        let gain = (cur.score.peak - s.peak) as f64 / times[k];
                        if best.is_none_or(|b| gain > b.1) {
                            best = Some((k, gain));
                        }
                    }
                }
                match best {
                    Some((k, _)) => trials[k].clone(),
                    None => break,
                }
            };
            if next.is_empty() {
                break;
            }
            for v in next {
                dropped.insert(v);
                chosen.push(v);
            }
            batch = (batch * 2).min(full_batch);
            cur = self.detail(&chosen)?;
            simulations += 1;
        }
        Ok(())
    }

    /// Part 2: prefixes of μ-TWO's bytes-per-second order (all of them on small graphs,
    /// [`Pool::steps`] evenly spaced ones on large graphs).
    /// Returns the prefix lengths simulated.
    fn mutwo_prefixes(&mut self, order: &[ValueId]) -> Result<Vec<usize>, PlanError> {
        let n = order.len();
        let steps = self.steps();
        let mut sizes: Vec<usize> = if self.large() {
            (1..=steps).map(|i| (n * i).div_ceil(steps)).collect()
        } else {
            (1..=n).collect()
        };
        sizes.dedup();
        let plans: Vec<Vec<ValueId>> = sizes.iter().map(|&s| order[..s].to_vec()).collect();
        self.score_all(&plans)?;
        Ok(sizes)
    }

    /// Part 2b, large graphs only: μ-TWO's own plan for `budget` (its shortest prefix that
    /// fits), which the sampled prefixes can miss by up to one batch, found by bisection
    /// between the last sampled prefix that does not fit and the first that does. The
    /// probes stay out of the pool; only the prefix found joins it.
    ///
    /// This is the one budget-dependent member of the pool. The choice stays monotone in
    /// added time: a larger budget finds the same or an earlier prefix, and a prefix's added
    /// time grows with its length.
    fn refine_mutwo(
        &mut self,
        order: &[ValueId],
        sizes: &[usize],
        budget: u64,
    ) -> Result<(), PlanError> {
        let peak = |pool: &Self, k: usize| pool.scores[&Self::key(&order[..k])].peak;
        let Some(j) = sizes.iter().position(|&k| peak(self, k) <= budget) else {
            return Ok(());
        };
        let (mut lo, mut hi) = (if j == 0 { 0 } else { sizes[j - 1] }, sizes[j]);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let fits = match self.scores.get(&Self::key(&order[..mid])) {
                Some(s) => s.peak <= budget,
                None => self.simulate(&order[..mid])?.score.peak <= budget,
            };
            if fits {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        self.score(&order[..hi])?;
        Ok(())
    }

    /// Part 4: the exact program's plans at budget levels that do not depend on the user's
    /// budget (a grid from 70% to 100% of the peak without recomputation, and the peaks of
    /// the pool's cheapest-for-their-peak plans), so that the choice stays monotone.
    fn exact_plans(&mut self) -> Result<(), PlanError> {
        let base = self.score(&[])?.peak;
        let mut levels: Vec<u64> = (35..=50).map(|k| base / 50 * k).collect();
        let mut frontier: Vec<Score> = self.plans.iter().map(|p| self.scores[p]).collect();
        frontier.sort_by(|a, b| a.peak.cmp(&b.peak).then(a.time.total_cmp(&b.time)));
        let mut best_time = f64::INFINITY;
        for s in frontier {
            if s.time < best_time {
                best_time = s.time;
                levels.push(s.peak);
            }
        }
        levels.sort_unstable();
        levels.dedup();
        let exact = exact_planner();
        let mut plans = Vec::new();
        for budget in levels {
            let input = PlanInput {
                graph: self.input.graph,
                info: self.input.info,
                cost: self.input.cost,
                budget_bytes: budget,
            };
            // The program may find a level infeasible or reach its node limit: the pool then
            // lacks that plan.
            if let Ok(p) = exact.plan(&input) {
                plans.push(p.resolve(self.input.graph)?);
            }
        }
        self.score_all(&plans)?;
        Ok(())
    }

    /// The pool's cheapest plan that fits `budget` (ties: lower peak, fewer values), or
    /// the lowest-peak plan when none fits.
    fn best(&self, budget: u64) -> (Vec<ValueId>, Score) {
        let mut fit: Option<(&Vec<ValueId>, Score)> = None;
        let mut lowest: Option<(&Vec<ValueId>, Score)> = None;
        for p in &self.plans {
            let s = self.scores[p];
            let better = |cur: &Option<(&Vec<ValueId>, Score)>, time_first: bool| match cur {
                None => true,
                Some((q, c)) => {
                    let a = if time_first {
                        (s.time, s.peak as f64)
                    } else {
                        (s.peak as f64, s.time)
                    };
                    let b = if time_first {
                        (c.time, c.peak as f64)
                    } else {
                        (c.peak as f64, c.time)
                    };
                    a.0.total_cmp(&b.0)
                        .then(a.1.total_cmp(&b.1))
                        .then(p.len().cmp(&q.len()))
                        .then(p.cmp(q))
                        .is_lt()
                }
            };
            if s.peak <= budget && better(&fit, true) {
                fit = Some((p, s));
            }
            if better(&lowest, false) {
                lowest = Some((p, s));
            }
        }
        let (p, s) = fit
            .or(lowest)
            .expect("the pool holds at least the empty plan");
        (p.clone(), s)
    }
}

/// Where the backward first reads `v` in ONNX Runtime's order (`pos`), looking through the
/// in-place aliases that read it (the shape-hiding Reshapes run early but share `v`'s
/// buffer: the data is read where the alias is).
fn first_backward_read(
    rg: &Graph,
    consumers: &[Vec<NodeId>],
    pos: &[usize],
    v: ValueId,
) -> Option<usize> {
    let mut first: Option<usize> = None;
    let mut stack = vec![v];
    let mut seen = HashSet::new();
    while let Some(x) = stack.pop() {
        if !seen.insert(x) {
            continue;
        }
        for &r in &consumers[x.index()] {
            if !rg.in_backward(r) {
                continue;
            }
            let n = rg.node(r);
            if is_alias(&n.op_type) && n.inputs.first().copied().flatten() == Some(x) {
                stack.extend(n.outputs.iter().flatten().copied());
            } else {
                first = Some(first.map_or(pos[r.index()], |f| f.min(pos[r.index()])));
            }
        }
    }
    first
}

impl Planner for Ac {
    fn name(&self) -> &'static str {
        "ac"
    }

    fn plan(&self, input: &PlanInput) -> Result<RecomputePlan, PlanError> {
        let (g, info, budget) = (input.graph, input.info, input.budget_bytes);
        let mut pool = Pool {
            input,
            cands: candidates(g),
            saved: {
                let mut saved = vec![false; g.values.len()];
                for v in saved_activations(g) {
                    saved[v.index()] = true;
                }
                saved
            },
            scores: HashMap::new(),
            plans: Vec::new(),
        };
        pool.score(&[])?;
        let presets = [
            super::presets::Preset::Selective,
            super::presets::Preset::Full,
        ]
        .iter()
        .map(|p| p.plan(input)?.resolve(g))
        .collect::<Result<Vec<_>, _>>()?;
        let segment_plans =
            super::segments::Segments::new(g, info).plans(pool.steps().min(MAX_SEGMENT_PLANS));
        let order = mutwo_order(g, &pool.cands, input.cost);
        // The sweep is sequential; the rest of the pool is simulated meanwhile.
        let (mut swept, mut others) = (pool.clone(), pool.clone());
        let (a, b) = rayon::join(
            || swept.sweep(),
            || {
                let sizes = others.mutwo_prefixes(&order)?;
                others.score_all(&presets)?;
                others.score_all(&segment_plans)?;
                Ok::<_, PlanError>(sizes)
            },
        );
        a?;
        let sizes = b?;
        pool.absorb(swept);
        pool.absorb(others);
        if pool.large() {
            pool.refine_mutwo(&order, &sizes, budget)?;
        }
        if g.nodes.len() <= EXACT_MAX_NODES {
            pool.exact_plans()?;
        }
        let (chosen, _) = pool.best(budget);
        Ok(RecomputePlan::new(self.name(), budget, g, chosen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ac`'s output must not depend on the machine's speed or load (docs/cli.md,
    /// *Determinism*): its exact stage stops after a number of branch-and-bound nodes, never
    /// after a wall-clock time.
    #[test]
    fn exact_stage_has_a_work_limit_not_a_time_limit() {
        let exact = exact_planner();
        assert_eq!(
            exact.limit,
            super::super::optimal::SolveLimit::Nodes(EXACT_NODE_LIMIT)
        );
        let options = exact.solve_options();
        assert_eq!(options.time_limit, None);
        assert_eq!(options.node_limit, Some(EXACT_NODE_LIMIT));
    }
}
