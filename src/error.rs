//! The tool's error type and its exit codes: 2 for bad input or usage, 1 for internal
//! failure, 3 for an unreachable budget.

use crate::onnx::OnnxError;
use onnx_ac_passes::IrError;
use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

/// Every message is one line: control characters (a newline or terminal escape in a
/// name read from a malicious file, or in a path) are printed escaped, as `\n`, `\u{1b}`.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{}", OneLine(.0))]
    Onnx(#[from] OnnxError),
    #[error("{}: {}", OneLine(.path.display()), OneLine(.source))]
    Model {
        path: PathBuf,
        #[source]
        source: IrError,
    },
    #[error("{}: {}", OneLine(.path.display()), OneLine(.source))]
    Training {
        path: PathBuf,
        #[source]
        source: onnx_ac_passes::autodiff::AutodiffError,
    },
    #[error("{}", OneLine(.0))]
    Usage(String),
    #[error("{}", OneLine(.0))]
    Size(#[from] crate::size::SizeError),
    #[error("{stage} is not implemented yet in this build of onnx-ac; no output was written")]
    StageMissing { stage: &'static str },
    #[error("{}: {}", OneLine(.path.display()), OneLine(.reason))]
    Output { path: PathBuf, reason: String },
    /// An output refused (it is an input, or another output, or not a regular file) or not
    /// written.
    #[error("{}", OneLine(.0))]
    OutputFile(#[from] crate::output::OutputError),
    #[error("internal error: {}", OneLine(.0))]
    Internal(String),
    /// Standard output failed (other than a closed pipe, which is not an error).
    #[error(transparent)]
    Stdout(#[from] crate::console::StdoutError),
    #[error("verification failed: {}", OneLine(.0))]
    VerifyFailed(String),
    #[error("{}", OneLine(.0))]
    Runtime(#[from] crate::runtime::RuntimeError),
    /// ONNX Runtime cannot load or run the training graph of the model before any
    /// recomputation (`--verify`): the model is at fault.
    #[error("{}: ONNX Runtime cannot {stage} the training graph of this model (before any recomputation): {}", OneLine(.path.display()), OneLine(.reason))]
    RuntimeRefusesModel {
        path: PathBuf,
        stage: &'static str,
        reason: String,
    },
    /// A training state file (`--state`) that does not fit the step, or a state not written.
    #[error("{}", OneLine(.0))]
    State(#[from] crate::state::StateError),
    /// A batches file (`--data`) that does not fit the step.
    #[error("{}", OneLine(.0))]
    Data(#[from] crate::batches::DataError),
    #[error("budget {} is unreachable: plans must peak at most {} (the budget less a 1% margin for the simulator's error) and the lowest peak {} reaches is {}; {}; {}", crate::size::human_bytes(*.budget), crate::size::human_bytes(*.target), OneLine(.who), crate::size::human_bytes(*.smallest_peak), OneLine(.detail), OneLine(.suggestion))]
    BudgetUnreachable {
        budget: u64,
        /// The budget less the planning margin: what a plan's simulated peak must fit.
        target: u64,
        /// The lowest simulated peak the plan source reached (its best-effort plan).
        smallest_peak: u64,
        /// The plan source: `planner ac`, `the plan of PLAN.json`.
        who: String,
        detail: String,
        suggestion: String,
    },
}

/// Displays a value with its control characters escaped, so it stays on one line.
pub struct OneLine<T>(pub T);

impl<T: fmt::Display> fmt::Display for OneLine<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for c in self.0.to_string().chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Onnx(OnnxError::Serialize { .. }) => 1,
            Error::Onnx(_) | Error::Model { .. } | Error::Usage(_) | Error::Size(_) => 2,
            Error::Training { .. } | Error::RuntimeRefusesModel { .. } => 2,
            Error::State(_) | Error::Data(_) => 2,
            Error::Output { .. } | Error::OutputFile(_) | Error::Stdout(_) => 2,
            Error::StageMissing { .. } | Error::Internal(_) => 1,
            Error::BudgetUnreachable { .. } => 3,
            Error::VerifyFailed(_) => 1,
            Error::Runtime(e) => {
                use crate::runtime::RuntimeError as R;
                match e {
                    R::NotFound { .. }
                    | R::BadLibraryPath { .. }
                    | R::TooOld { .. }
                    | R::CudaUnavailable { .. } => 2,
                    _ => 1,
                }
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::profile::ProfileError> for Error {
    /// The tool's error for a profiling one (exit code 2 for bad input, options or
    /// environment).
    fn from(e: crate::profile::ProfileError) -> Error {
        use crate::profile::ProfileError;
        match e {
            ProfileError::Save(o) => Error::Onnx(o),
            ProfileError::Output(o) => Error::OutputFile(o),
            ProfileError::Io { path, source } => Error::Output {
                path,
                reason: source.to_string(),
            },
            other => Error::Usage(other.to_string()),
        }
    }
}
