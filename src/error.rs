//! The tool's error type and its exit codes: 2 for bad input or usage, 1 for internal
//! failure, 3 for an unreachable budget.

use crate::onnx::OnnxError;
use onnx_ac_passes::IrError;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error("{path}: {source}")]
    Model {
        path: PathBuf,
        #[source]
        source: IrError,
    },
    #[error("{path}: {source}")]
    Training {
        path: PathBuf,
        #[source]
        source: onnx_ac_passes::autodiff::AutodiffError,
    },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Size(#[from] crate::size::SizeError),
    #[error("{stage} is not implemented yet in this build of onnx-ac; no output was written")]
    StageMissing { stage: &'static str },
    #[error("{path}: {reason}")]
    Output { path: PathBuf, reason: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Onnx(OnnxError::Serialize { .. }) => 1,
            Error::Onnx(_) | Error::Model { .. } | Error::Usage(_) | Error::Size(_) => 2,
            Error::Training { .. } => 2,
            Error::Output { .. } => 2,
            Error::StageMissing { .. } | Error::Internal(_) => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
