//! onnx-ac's default planner: peak-aware greedy with pruning.
//!
//! μ-TWO ranks every candidate by bytes per second of recomputation, wherever the candidate
//! lives, and stops at the first plan that fits. Memory is only won where the peak is, so
//! this planner re-simulates after each choice and only considers activations that are held
//! idle across the current peak step (dropped there, needed later): among those it takes
//! the one freeing the most bytes per second of recomputation (chains charged through their
//! dropped sources). When the plan fits it prunes: each choice, latest first, is undone if
//! the plan still fits without it — so no recomputation is paid for memory that was not at
//! the peak.

use super::candidates::{candidates, recompute_time};
use super::simulate::{ort_default_order, simulate};
use super::{PlanError, PlanInput, Planner, RecomputePlan};
use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::{Graph, ValueId};
use onnx_ac_passes::recompute::{apply_recompute, RewriteOptions};
use std::collections::HashSet;

pub struct PeakGreedy;

/// Candidates tried by simulation when none is idle across the peak.
const TRIALS: usize = 8;

struct Sim {
    peak: u64,
    /// Candidates idle across the peak step: (value, bytes).
    idle_at_peak: Vec<(ValueId, u64)>,
}

fn simulate_plan(
    g: &Graph,
    info: &TrainingInfo,
    chosen: &[ValueId],
    cands: &[ValueId],
) -> Result<Sim, PlanError> {
    let (rg, _) = apply_recompute(g, info, chosen, RewriteOptions::default())?;
    let order = ort_default_order(&rg);
    let sim = simulate(&rg, &order, Some(info));
    let mut pos = vec![usize::MAX; rg.nodes.len()];
    for (k, n) in order.iter().enumerate() {
        pos[n.index()] = k;
    }
    let consumers = rg.consumers();
    let dropped: HashSet<ValueId> = chosen.iter().copied().collect();
    let peak_step = sim.peak_step;
    let mut idle = Vec::new();
    for &v in cands {
        if dropped.contains(&v) {
            continue;
        }
        let readers = &consumers[v.index()];
        let last_fw = readers
            .iter()
            .filter(|r| r.index() < info.forward_end)
            .map(|r| pos[r.index()])
            .max();
        let made = rg.value(v).producer.map(|p| pos[p.index()]);
        let first_bw = readers
            .iter()
            .filter(|r| r.index() >= info.forward_end)
            .map(|r| pos[r.index()])
            .min();
        let (Some(made), Some(first_bw)) = (made, first_bw) else {
            continue;
        };
        let idle_from = last_fw.unwrap_or(made).max(made);
        if idle_from < peak_step && peak_step < first_bw {
            idle.push((v, rg.value_bytes(v).unwrap_or(0)));
        }
    }
    Ok(Sim {
        peak: sim.peak_bytes,
        idle_at_peak: idle,
    })
}

impl Planner for PeakGreedy {
    fn name(&self) -> &'static str {
        "ac"
    }

    fn plan(&self, input: &PlanInput) -> Result<RecomputePlan, PlanError> {
        let (g, info, budget) = (input.graph, input.info, input.budget_bytes);
        let cands = candidates(g, info);
        let mut chosen: Vec<ValueId> = Vec::new();
        let mut dropped: HashSet<ValueId> = HashSet::new();
        let mut sim = simulate_plan(g, info, &chosen, &cands)?;
        let mut best = (sim.peak, chosen.clone());
        while sim.peak > budget {
            let pick = sim
                .idle_at_peak
                .iter()
                .filter(|(_, b)| *b > 0)
                .map(|&(v, b)| {
                    let t = recompute_time(g, v, &dropped, input.cost).max(1e-12);
                    (v, b as f64 / t)
                })
                .fold(None, |acc: Option<(ValueId, f64)>, x| match acc {
                    Some(a) if a.1 >= x.1 => Some(a),
                    _ => Some(x),
                });
            let (v, next) = match pick {
                Some((v, _)) => {
                    let mut trial = chosen.clone();
                    trial.push(v);
                    (v, simulate_plan(g, info, &trial, &cands)?)
                }
                None => {
                    // Nothing idle across the peak (it sits where values are in use): try the
                    // best-ratio candidates by simulation and take the best reduction per
                    // second.
                    let mut ranked: Vec<(ValueId, f64, f64)> = cands
                        .iter()
                        .filter(|v| !dropped.contains(v))
                        .map(|&v| {
                            let t = recompute_time(g, v, &dropped, input.cost).max(1e-12);
                            (v, g.value_bytes(v).unwrap_or(0) as f64 / t, t)
                        })
                        .collect();
                    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                    let mut best_try: Option<(ValueId, Sim, f64)> = None;
                    for &(v, _, t) in ranked.iter().take(TRIALS) {
                        let mut trial = chosen.clone();
                        trial.push(v);
                        let s2 = simulate_plan(g, info, &trial, &cands)?;
                        if s2.peak < sim.peak {
                            let score = (sim.peak - s2.peak) as f64 / t;
                            if best_try.as_ref().is_none_or(|b| score > b.2) {
                                best_try = Some((v, s2, score));
                            }
                        }
                    }
                    match best_try {
                        Some((v, s2, _)) => (v, s2),
                        None => break,
                    }
                }
            };
            chosen.push(v);
            dropped.insert(v);
            sim = next;
            if sim.peak < best.0 {
                best = (sim.peak, chosen.clone());
            }
        }
        // Unreachable: return the lowest-peak plan seen (the caller reports it).
        if sim.peak > budget {
            return Ok(RecomputePlan::new(self.name(), budget, g, best.1));
        }
        // Prune choices the fitting plan does not need, latest first.
        let mut k = chosen.len();
        while k > 0 {
            k -= 1;
            let mut trial = chosen.clone();
            trial.remove(k);
            if simulate_plan(g, info, &trial, &cands)?.peak <= budget {
                chosen = trial;
            }
        }
        Ok(RecomputePlan::new(self.name(), budget, g, chosen))
    }
}
