//! Running ONNX models with ONNX Runtime (through the `ort` crate, library loaded at run time):
//! outputs, per-node times from the per-run profile, and the peak bytes of one run measured
//! with a byte-counting allocator.
//!
//! ```no_run
//! use onnx_ac::runtime::{run_model, HostTensor, RunOptions};
//! # fn main() -> Result<(), onnx_ac::runtime::RuntimeError> {
//! let x = HostTensor::from_f32("x", &[2], &[1.0, 2.0])?;
//! let opts = RunOptions { measure_peak: true, ..RunOptions::default() };
//! let result = run_model("model.onnx".as_ref(), &[x], None, &opts)?;
//! println!("{:?} bytes at peak", result.peak_bytes);
//! # Ok(()) }
//! ```
//!
//! Nothing here panics: a missing or too old library, a CUDA request without CUDA, a bad input
//! all come back as [`RuntimeError`]s whose messages say what to do.

mod alloc;
mod cuda;
mod error;
mod loader;
mod profile;
mod session;
mod tensor;
pub mod timing;

pub use cuda::available_providers;
pub use error::{RuntimeError, INSTALL_HINT};
pub use loader::{
    init, loaded_library, locate, set_log_level, Candidate, LibrarySource, LogLevel, OrtLibrary,
};
pub use profile::{parse_profile, NodeTime};
pub use session::{ModelSession, PingPong};
pub use tensor::{f16_bits_to_f32, f32_to_f16_bits, HostTensor};

use std::path::{Path, PathBuf};

/// Execution provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ep {
    #[default]
    Cpu,
    /// Needs `onnxruntime-gpu` and an NVIDIA GPU; otherwise [`RuntimeError::CudaUnavailable`].
    Cuda,
}

/// Graph optimization level (ONNX Runtime's `GraphOptimizationLevel`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GraphOpt {
    Disabled,
    Basic,
    Extended,
    /// ONNX Runtime's default.
    #[default]
    All,
}

/// How to create the session and what to measure. `Default` is ONNX Runtime's default session
/// (all graph optimizations, CPU, memory patterns on) with nothing measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    pub ep: Ep,
    pub graph_opt: GraphOpt,
    /// Graph transformers to disable by name, e.g. "CommonSubexpressionElimination".
    /// ONNX Runtime ignores unknown names silently.
    pub disabled_optimizers: Vec<String>,
    /// Intra-op threads; `None` keeps ONNX Runtime's default (one per physical core).
    pub intra_threads: Option<usize>,
    /// Collect per-node times of every run (per-run profiling, files deleted afterwards).
    pub profile: bool,
    /// Measure the peak bytes of every run. Turns memory patterns off and routes every tensor
    /// allocation of the session through a counting allocator.
    pub measure_peak: bool,
    /// The libonnxruntime to load (`--ort-lib`); see [`init`] for the search order otherwise.
    pub ort_lib: Option<PathBuf>,
}

/// What one run produced and measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunResult {
    /// The requested outputs, in the requested order (or the model's order).
    pub outputs: Vec<HostTensor>,
    /// Highest number of bytes ONNX Runtime had allocated for the session during the run:
    /// intermediates, outputs, kernel scratch buffers, plus what `baseline_bytes` holds.
    /// Not counted: the inputs (the caller's), initializers larger than 127 bytes and external
    /// data (ONNX Runtime 1.31 leaves those in the loaded model buffer or mapped file instead of
    /// allocating them). `None` unless `measure_peak` and the measurement worked (see
    /// `warnings`).
    pub peak_bytes: Option<u64>,
    /// Bytes the session held when the run started (small initializers, prepacked weights and
    /// other persistent buffers); `peak_bytes - baseline_bytes` is what the run itself added.
    pub baseline_bytes: Option<u64>,
    /// Per-node kernel times in execution order; empty unless `profile`.
    pub node_times: Vec<NodeTime>,
    /// Why a requested measurement is missing, and similar non-fatal notes.
    pub warnings: Vec<String>,
}

/// Loads the model from `model_path` (external data next to it works), runs it once with
/// `inputs`, and returns the outputs named in `output_names` (all outputs if `None`).
pub fn run_model(
    model_path: &Path,
    inputs: &[HostTensor],
    output_names: Option<&[String]>,
    opts: &RunOptions,
) -> Result<RunResult, RuntimeError> {
    let mut session = ModelSession::prepare(model_path, opts)?;
    session.run_selected(inputs, output_names)
}

/// How ONNX Runtime is run for profiles and `--verify` (`--ort-lib`, `--ep`, `--runs`).
#[derive(Clone, Debug, Default)]
pub struct RuntimeChoice {
    pub ort_lib: Option<std::path::PathBuf>,
    pub ep: Ep,
    /// Timed runs per measurement.
    pub runs: usize,
}

impl RuntimeChoice {
    /// The options of a session run so.
    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            ep: self.ep,
            ort_lib: self.ort_lib.clone(),
            ..RunOptions::default()
        }
    }
}
