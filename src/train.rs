//! `onnx-ac train`: runs a training step (a graph from `train-graph --optimizer` or the main
//! command with `--optimizer`) in a loop on ONNX Runtime, feeding each step's `X.next`
//! outputs back as its `X` inputs, and writes the trained step: the same graph with the final
//! parameters and optimizer state as its defaults, so training resumes from it.

use crate::runtime::{HostTensor, ModelSession, RunOptions};
use crate::{Error, Result};
use onnx_ac_passes::ir::{Model, Tensor};
use std::path::Path;
use std::time::Instant;

/// What a training run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainReport {
    /// The loss of each step, before its update.
    pub losses: Vec<f64>,
    /// Wall time of each step, seconds.
    pub step_times_s: Vec<f64>,
    /// ONNX Runtime's allocator peak over all steps plus the weights it uses in place, as the
    /// summary's measured step peak (`None` when the counting allocator was unavailable).
    pub peak_bytes: Option<u64>,
}

/// The state a step carries: each graph input `X` with a default and an output `X.next`.
pub fn state_names(m: &Model) -> Vec<String> {
    let g = &m.graph;
    let outputs: std::collections::HashSet<&str> = g
        .outputs
        .iter()
        .map(|&o| g.value(o).name.as_str())
        .collect();
    g.inputs
        .iter()
        .map(|&i| g.value(i))
        .filter(|v| {
            v.initializer.is_some() && outputs.contains(format!("{}.next", v.name).as_str())
        })
        .map(|v| v.name.clone())
        .collect()
}

/// Where a run's batches come from.
#[derive(Debug, Clone)]
pub enum Data {
    /// Random batches drawn from `seed` (one per step, or the same one every step).
    Random { seed: u64, same_batch: bool },
    /// The batches of a file (`--data`), cycled.
    File(crate::batches::Batches),
}

impl Data {
    fn batch(&self, m: &Model, k: usize) -> Result<Vec<HostTensor>> {
        match self {
            Data::Random { seed, same_batch } => crate::profile::random_inputs(
                &m.graph,
                if *same_batch {
                    *seed
                } else {
                    seed.wrapping_add(k as u64)
                },
            )
            .map_err(crate::Error::from),
            Data::File(b) => Ok(b.batch(k)),
        }
    }
}

/// How [`train`] runs.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub steps: usize,
    pub data: Data,
    /// The state to start from (`--state`), named as the inputs; `None`: the step's defaults.
    pub initial: Option<Vec<HostTensor>>,
    /// Keep the state in ONNX Runtime's buffers between steps (ping-pong IO binding) instead
    /// of copying it out and back in through host tensors every step.
    pub io_binding: bool,
}

/// Runs the training step at `path` (loaded as `m`) as `t` says. `on_step(k, loss, seconds,
/// peak)` is called after each step (`peak`: the measured step peak so far). Returns the report and the final state (named as the inputs).
pub fn train(
    m: &Model,
    path: &Path,
    t: &TrainOptions,
    opts: &RunOptions,
    on_step: &mut dyn FnMut(usize, f64, f64, Option<u64>),
) -> Result<(TrainReport, Vec<HostTensor>)> {
    let state = state_names(m);
    if state.is_empty() {
        return Err(Error::Usage(format!(
            "{} is not a training step: it has no parameter input X with an output X.next; \
             write one with `onnx-ac train-graph MODEL --optimizer sgd|momentum|adamw -o STEP.onnx` \
             (or the main command with --optimizer)",
            path.display()
        )));
    }
    let mut session = ModelSession::prepare(path, opts)?;
    let mut report = TrainReport {
        losses: Vec::with_capacity(t.steps),
        step_times_s: Vec::with_capacity(t.steps),
        peak_bytes: None,
    };
    // Weights and inputs ONNX Runtime uses in place, outside its allocator (as the summary).
    let in_place = {
        let (_, sim) = crate::plan::simulate::simulate_ort_default(&m.graph, None);
        sim.peak_bytes.saturating_sub(sim.counted_peak_bytes)
    };
    let mut carried: Vec<HostTensor> = t.initial.clone().unwrap_or_default();
    let mut bound = None;
    if t.io_binding {
        let start = match t.initial.clone() {
            Some(s) => s,
            None => crate::state::defaults(m, path, &state)?,
        };
        bound = Some(session.ping_pong(&start)?);
        carried.clear();
    }
    for k in 0..t.steps {
        let batch = t.data.batch(m, k)?;
        let t0 = Instant::now();
        let result = match bound.as_mut() {
            Some(pp) => session.run_ping_pong(pp, &batch)?,
            None => {
                let feeds: Vec<HostTensor> = batch.into_iter().chain(carried.drain(..)).collect();
                session.run(&feeds)?
            }
        };
        let seconds = t0.elapsed().as_secs_f64();
        report.step_times_s.push(seconds);
        if let Some(p) = result.peak_bytes {
            let p = p + in_place;
            report.peak_bytes = Some(report.peak_bytes.map_or(p, |q| q.max(p)));
        }
        let mut loss = f64::NAN;
        for mut out in result.outputs {
            if out.name == "loss" {
                loss = out.to_f64()?.first().copied().unwrap_or(f64::NAN);
            } else if let Some(input) = out.name.strip_suffix(".next") {
                if state.iter().any(|s| s == input) {
                    out.name = input.to_string();
                    carried.push(out);
                }
            }
        }
        if !loss.is_finite() {
            return Err(Error::Usage(format!(
                "step {}: the loss is {loss}: training diverged (lower --lr when writing the step)",
                k + 1
            )));
        }
        report.losses.push(loss);
        on_step(k, loss, seconds, report.peak_bytes);
    }
    if let Some(pp) = &bound {
        carried = pp.state()?;
    }
    Ok((report, carried))
}

/// `m` with `state` as its inputs' defaults.
pub fn with_state(m: &Model, state: &[HostTensor]) -> Result<Model> {
    let mut out = m.clone();
    let by_name = out.graph.value_by_name();
    let ids: Vec<_> = state
        .iter()
        .map(|t| {
            by_name.get(t.name.as_str()).copied().ok_or_else(|| {
                Error::Internal(format!("no input {} to store the state in", t.name))
            })
        })
        .collect::<Result<_>>()?;
    for (t, id) in state.iter().zip(ids) {
        out.graph.value_mut(id).initializer =
            Some(Tensor::raw(t.dtype, t.dims.clone(), t.data.clone()));
    }
    Ok(out)
}
