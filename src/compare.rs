//! `verify`: run the original and the rewritten training graphs in ONNX Runtime on the same
//! inputs; loss and every gradient must match, and each one's peak and step time are
//! measured. Step times are taken in alternated rounds (each round runs both graphs, in
//! alternating order) and compared by their medians with the spread of the per-round
//! overheads ([`StepComparison`]).
//!
//! Bit-identical results are expected with graph optimizations off. With ONNX Runtime's
//! default optimizations a recomputed copy may be fused differently from its original
//! (Gelu, LayerNorm, MatMul+Add fusions), which moves results by a few ulps that the
//! backward accumulates (1.7e-6 measured on GPT-2 at batch 8 × 64 tokens); such
//! differences pass when, per output, max|a − b| ≤ 1e-4 · (max|a| + 1e-3 · M) with M the
//! largest magnitude over all outputs (the scaled form keeps analytically-zero gradients
//! from failing on rounding noise).

use crate::error::Error;
use crate::profile::inputs_for;
use crate::runtime::timing::StepComparison;
use crate::runtime::RuntimeChoice;
use crate::runtime::{HostTensor, ModelSession, RunOptions, RuntimeError};
use onnx_ac_passes::ir::Model;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

pub const RELATIVE_TOLERANCE: f64 = 1e-4;

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub outputs_compared: usize,
    pub bit_identical: bool,
    pub max_abs_diff: f64,
    /// Largest error divided by its tolerance (≤ 1 passes).
    pub max_scaled_error: f64,
    pub worst_output: String,
    pub passed: bool,
    pub original_peak_bytes: Option<u64>,
    pub rewritten_peak_bytes: Option<u64>,
    /// Median step times over alternated rounds, the overhead and its spread.
    #[serde(flatten)]
    pub step: StepComparison,
}

impl VerifyReport {
    /// The comparison alone: `PASSED: 75 outputs, max |diff| 1.2e-6 (0.010 of tolerance)`.
    pub fn result_line(&self) -> String {
        format!(
            "{}: {} outputs, {}max |diff| {:.3e} ({:.3} of tolerance){}",
            self.verdict(),
            self.outputs_compared,
            self.identical_text(),
            self.max_abs_diff,
            self.max_scaled_error,
            if self.passed || self.worst_output.is_empty() {
                String::new()
            } else {
                format!(", worst: {}", self.worst_output)
            }
        )
    }

    /// The comparison, each graph's peak as ONNX Runtime's allocator measured it (without
    /// the weights and inputs it uses in place) and the median step times with the overhead
    /// and its spread.
    pub fn one_line(&self) -> String {
        let peaks = match (self.original_peak_bytes, self.rewritten_peak_bytes) {
            (Some(a), Some(b)) => format!(
                "; allocator peak {} -> {}",
                crate::size::human_bytes(a),
                crate::size::human_bytes(b)
            ),
            _ => String::new(),
        };
        let step = if self.step.step_time_rounds == 0 {
            "; step time not measured (--runs 0)".to_string()
        } else {
            // Milliseconds below a one-second step, else seconds.
            let (a, b) = (
                self.step.original_step_time_s,
                self.step.rewritten_step_time_s,
            );
            let t = |x: f64| {
                if a < 1.0 {
                    format!("{:.3} ms", x * 1e3)
                } else {
                    format!("{x:.3} s")
                }
            };
            format!(
                "; step {} -> {} ({}; {})",
                t(a),
                t(b),
                self.step.overhead_text(),
                self.step.method_text()
            )
        };
        format!(
            "{} ({} outputs, {}max |diff| {:.3e}, {:.3} of tolerance){peaks}{step}",
            self.verdict(),
            self.outputs_compared,
            self.identical_text(),
            self.max_abs_diff,
            self.max_scaled_error,
        )
    }

    fn verdict(&self) -> &'static str {
        if self.passed {
            "PASSED"
        } else {
            "FAILED"
        }
    }

    fn identical_text(&self) -> &'static str {
        if self.bit_identical {
            "bit-identical, "
        } else {
            ""
        }
    }

    /// Takes `other`'s comparison (outputs, differences, verdict), keeping this report's
    /// peaks and step times.
    pub fn take_comparison(&mut self, other: VerifyReport) {
        self.outputs_compared = other.outputs_compared;
        self.bit_identical = other.bit_identical;
        self.max_abs_diff = other.max_abs_diff;
        self.max_scaled_error = other.max_scaled_error;
        self.worst_output = other.worst_output;
        self.passed = other.passed;
    }
}

/// Measured peak of one run of `model` (fresh session, counting allocator).
fn measure_peak(
    model: &Path,
    inputs: &[HostTensor],
    base: &RunOptions,
) -> Result<Option<u64>, RuntimeError> {
    let opts = RunOptions {
        measure_peak: true,
        ..base.clone()
    };
    let mut s = ModelSession::prepare(model, &opts)?;
    Ok(s.run(inputs)?.peak_bytes)
}

/// Seconds of one run.
fn timed(s: &mut ModelSession, inputs: &[HostTensor]) -> Result<f64, RuntimeError> {
    let t = Instant::now();
    s.run(inputs)?;
    Ok(t.elapsed().as_secs_f64())
}

/// The outputs of a warm-up run of each graph, then `rounds` rounds that each time both
/// graphs once, the original first in even rounds and second in odd ones (so that neither
/// always runs on the caches the other left, and a slow spell of the machine hits both).
fn alternate(
    original: &Path,
    rewritten: &Path,
    inputs: &[HostTensor],
    base: &RunOptions,
    rounds: usize,
) -> Result<(Vec<HostTensor>, Vec<HostTensor>, StepComparison), RuntimeError> {
    let mut sa = ModelSession::prepare(original, base)?;
    let mut sb = ModelSession::prepare(rewritten, base)?;
    let oa = sa.run(inputs)?.outputs; // warm-up, also the outputs compared
    let ob = sb.run(inputs)?.outputs;
    let (mut ta, mut tb) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for round in 0..rounds {
        if round % 2 == 0 {
            ta.push(timed(&mut sa, inputs)?);
            tb.push(timed(&mut sb, inputs)?);
        } else {
            tb.push(timed(&mut sb, inputs)?);
            ta.push(timed(&mut sa, inputs)?);
        }
    }
    Ok((oa, ob, StepComparison::from_rounds(&ta, &tb)))
}

pub fn verify(
    original: &Path,
    rewritten: &Path,
    inputs: &[HostTensor],
    base: &RunOptions,
    runs: usize,
) -> Result<VerifyReport, RuntimeError> {
    let pa = measure_peak(original, inputs, base)?;
    let pb = measure_peak(rewritten, inputs, base)?;
    let (oa, ob, step) = alternate(original, rewritten, inputs, base, runs)?;
    let mut report = VerifyReport {
        outputs_compared: 0,
        bit_identical: true,
        max_abs_diff: 0.0,
        max_scaled_error: 0.0,
        worst_output: String::new(),
        passed: true,
        original_peak_bytes: pa,
        rewritten_peak_bytes: pb,
        step,
    };
    let as_f64 = |t: &HostTensor| t.to_f64().ok();
    let magnitude = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let all_max = oa
        .iter()
        .filter_map(as_f64)
        .map(|v| magnitude(&v))
        .fold(0.0f64, f64::max);
    for a in &oa {
        let Some(b) = ob.iter().find(|b| b.name == a.name) else {
            report.passed = false;
            report.worst_output = format!("{} (missing from the rewritten graph)", a.name);
            continue;
        };
        report.outputs_compared += 1;
        if a.data == b.data && a.dims == b.dims {
            continue;
        }
        report.bit_identical = false;
        let (Some(va), Some(vb)) = (as_f64(a), as_f64(b)) else {
            report.passed = false;
            report.worst_output = a.name.clone();
            continue;
        };
        if va.len() != vb.len() {
            report.passed = false;
            report.worst_output = format!("{} (shape differs)", a.name);
            continue;
        }
        let diff = va
            .iter()
            .zip(&vb)
            .map(|(x, y)| {
                if x.is_nan() && y.is_nan() {
                    0.0
                } else {
                    (x - y).abs()
                }
            })
            .fold(
                0.0f64,
                |m, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
            );
        let tol = RELATIVE_TOLERANCE * (magnitude(&va) + 1e-3 * all_max);
        let scaled = if tol > 0.0 {
            diff / tol
        } else if diff > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        report.max_abs_diff = report.max_abs_diff.max(diff);
        if scaled > report.max_scaled_error {
            report.max_scaled_error = scaled;
            report.worst_output = a.name.clone();
        }
        if scaled > 1.0 {
            report.passed = false;
        }
    }
    Ok(report)
}

/// Saves both graphs to a temporary folder and runs `verify` on them. ONNX Runtime refusing
/// to load or run `original` (the training graph before any recomputation) is an error of the
/// model at `model_path` (exit 2, as when profiling the same graph), not an internal one.
pub fn verify_models(
    model_path: &std::path::Path,
    original: &Model,
    rewritten: &Model,
    rt: &RuntimeChoice,
) -> crate::error::Result<VerifyReport> {
    let dir = tempfile::tempdir().map_err(|e| Error::Internal(e.to_string()))?;
    let _guard = crate::output::TempGuard::new(dir.path());
    let (a, b) = (
        dir.path().join("original.onnx"),
        dir.path().join("rewritten.onnx"),
    );
    crate::onnx::save(original, &a, &crate::onnx::SaveOptions::default())?;
    crate::onnx::save(rewritten, &b, &crate::onnx::SaveOptions::default())?;
    let inputs = inputs_for(&original.graph)?;
    let mut report = crate::compare::verify(&a, &b, &inputs, &rt.run_options(), rt.runs)
        .map_err(|e| original_refused(e, &a, model_path))?;
    // AdamW's update is about ±lr wherever a gradient is rounding noise (its sign decides),
    // so recomputation's different float rounding moves such weights by up to 2·lr although
    // every gradient agrees. Its step is checked on the gradients instead: copies of both
    // graphs that return the loss and the gradients (the peaks and times above stay the
    // emitted graphs').
    if is_adamw_step(original) {
        let (ga, gb) = (
            dir.path().join("original.grads.onnx"),
            dir.path().join("rewritten.grads.onnx"),
        );
        crate::onnx::save(&with_gradient_outputs(original), &ga, &Default::default())?;
        crate::onnx::save(&with_gradient_outputs(rewritten), &gb, &Default::default())?;
        report.take_comparison(crate::compare::verify(
            &ga,
            &gb,
            &inputs,
            &rt.run_options(),
            1,
        )?);
    }
    Ok(report)
}

/// ONNX Runtime's failure to load or run the plain training graph saved at `saved`, as an
/// error of the model it was built from; any other failure unchanged.
fn original_refused(
    e: RuntimeError,
    saved: &std::path::Path,
    model_path: &std::path::Path,
) -> Error {
    let (stage, reason) = match &e {
        RuntimeError::ModelLoad { path, reason } if path == saved => ("load", reason),
        RuntimeError::Run { path, reason } if path == saved => ("run", reason),
        _ => return Error::Runtime(e),
    };
    Error::RuntimeRefusesModel {
        path: model_path.to_path_buf(),
        stage,
        reason: reason.replace(&*saved.to_string_lossy(), "the training graph"),
    }
}

/// A training step with an AdamW update (`--optimizer adamw`), from its metadata.
fn is_adamw_step(m: &Model) -> bool {
    m.metadata
        .iter()
        .any(|(k, v)| k == "onnx_ac.training_graph" && v.contains("optimizer=adamw"))
}

/// `m` returning its loss and its gradients (`P.grad`) instead of the updates.
fn with_gradient_outputs(m: &Model) -> Model {
    let mut out = m.clone();
    let g = &mut out.graph;
    let loss = g
        .outputs
        .iter()
        .copied()
        .filter(|&o| g.value(o).name == "loss");
    let grads = g
        .values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.name.ends_with(".grad") && v.producer.is_some())
        .map(|(i, _)| onnx_ac_passes::ir::ValueId(i as u32));
    g.outputs = loss.chain(grads).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(a: &[f64], b: &[f64]) -> VerifyReport {
        VerifyReport {
            outputs_compared: 7,
            bit_identical: true,
            max_abs_diff: 0.0,
            max_scaled_error: 0.0,
            worst_output: String::new(),
            passed: true,
            original_peak_bytes: None,
            rewritten_peak_bytes: None,
            step: StepComparison::from_rounds(a, b),
        }
    }

    /// `verify`'s line gives the medians, the overhead with its spread and how it was
    /// measured (fixed numbers, nothing timed).
    #[test]
    fn the_line_says_when_the_step_times_are_within_noise() {
        let line = report(
            &[10e-3, 8e-3, 10e-3, 20e-3, 12e-3],
            &[20e-3, 10e-3, 9e-3, 12e-3, 10.5e-3],
        )
        .one_line();
        assert!(
            line.ends_with(
                "; step 10.000 ms -> 10.500 ms (+5.0% ± 18.8, within noise; median of 5 \
                 alternated rounds)"
            ),
            "{line}"
        );
        let line = report(&[2.0], &[2.5]).one_line();
        assert!(
            line.ends_with("; step 2.000 s -> 2.500 s (+25.0%, no spread; 1 round)"),
            "{line}"
        );
        assert!(report(&[], &[])
            .one_line()
            .ends_with("step time not measured (--runs 0)"));
    }
}
