//! Errors of the ONNX Runtime layer. Every message says what went wrong and what to do next.

use onnx_ac_passes::ir::DType;
use std::path::PathBuf;
use thiserror::Error;

/// The commands that provide a suitable ONNX Runtime; quoted by the errors that need one.
pub const INSTALL_HINT: &str =
    "run `bash scripts/setup.sh` (creates .venv with onnxruntime 1.31.1), \
or `python3 -m pip install onnxruntime==1.31.1`, or pass --ort-lib PATH / set ORT_DYLIB_PATH \
to a libonnxruntime.so of version 1.31 or newer";

#[derive(Debug, Error)]
pub enum RuntimeError {
    /// No ONNX Runtime library was found at any of the places searched.
    #[error("ONNX Runtime library not found (looked at: {}); {INSTALL_HINT}", .searched.join("; "))]
    NotFound { searched: Vec<String> },

    /// A path given explicitly (`--ort-lib` or `ORT_DYLIB_PATH`) does not name a library.
    #[error("{origin} points at '{}', which {problem}; fix or unset it, or {INSTALL_HINT}", .path.display())]
    BadLibraryPath {
        origin: String,
        path: PathBuf,
        problem: String,
    },

    /// The library exists but is older than ONNX Runtime 1.31, which the `ort` crate requires.
    #[error("ONNX Runtime at '{}' is version {version}, but onnx-ac needs 1.31 or newer; {INSTALL_HINT}", .path.display())]
    TooOld { path: PathBuf, version: String },

    /// The library exists but could not be loaded (wrong architecture, missing dependencies, ...).
    #[error("cannot load ONNX Runtime from '{}': {reason}; check that it is a complete install for this machine, or {INSTALL_HINT}", .path.display())]
    LoadFailed { path: PathBuf, reason: String },

    /// A different library was requested after one had already been loaded by this process.
    #[error("ONNX Runtime was already loaded from '{}' in this process; '{}' cannot be loaded as well (pass the same --ort-lib everywhere, or run a separate process)", .loaded.display(), .requested.display())]
    AlreadyLoaded { loaded: PathBuf, requested: PathBuf },

    /// Creating the ONNX Runtime environment failed.
    #[error("cannot create the ONNX Runtime environment: {reason}")]
    Environment { reason: String },

    /// The model file could not be read or prepared by ONNX Runtime.
    #[error("ONNX Runtime cannot load '{}': {reason}; check the model with `python3 -c \"import onnx; onnx.checker.check_model('{}', full_check=True)\"`", .path.display(), .path.display())]
    ModelLoad { path: PathBuf, reason: String },

    /// A session option was refused.
    #[error("ONNX Runtime refused session option {option}: {reason}")]
    SessionOption { option: String, reason: String },

    /// The CUDA execution provider cannot be used here.
    #[error(
        "the CUDA execution provider is unavailable: {reason}; install `onnxruntime-gpu==1.31.1` \
(python3 -m pip install onnxruntime-gpu==1.31.1) and point --ort-lib at its libonnxruntime.so \
(…/site-packages/onnxruntime/capi/), on a machine with an NVIDIA GPU, CUDA 13 and cuDNN 9; \
or use the CPU execution provider"
    )]
    CudaUnavailable { reason: String },

    /// An input tensor is malformed (byte count, shape) or not expected by the model.
    #[error("input '{name}': {reason}")]
    BadInput { name: String, reason: String },

    /// A tensor of this element type cannot be passed to or read back from ONNX Runtime here.
    #[error("tensor '{name}': element type {dtype:?} is not supported by onnx-ac's runtime (supported: float, double, float16, bfloat16, int8/16/32/64, uint8/16/32/64, bool)")]
    UnsupportedDType { name: String, dtype: DType },

    /// An output is not a plain tensor (sequence, map, optional), or lives on a device.
    #[error("output '{name}': {reason}")]
    UnsupportedOutput { name: String, reason: String },

    /// Reading a tensor back as the wrong element type.
    #[error("tensor '{name}' holds {actual:?}, not {wanted}; read it with the matching accessor")]
    DTypeMismatch {
        name: String,
        actual: DType,
        wanted: &'static str,
    },

    /// `Session::Run` failed.
    #[error("ONNX Runtime failed to run '{}': {reason}", .path.display())]
    Run { path: PathBuf, reason: String },

    /// The per-run profile could not be produced or parsed.
    #[error("per-node profile unavailable: {reason}")]
    Profile { reason: String },

    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
