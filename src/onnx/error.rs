//! Errors of loading and saving ONNX files. Each names the file and, where it applies, the
//! tensor, node or value at fault.

use onnx_ac_passes::IrError;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum OnnxError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot read the model: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid ONNX model ({reason})")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: the model has no graph")]
    NoGraph { path: PathBuf },
    #[error("{path}: tensor '{tensor}' has external data at '{location}', which leaves the model's folder (refused: see CVE-2022-25882, CVE-2024-27318)")]
    ExternalEscapes {
        path: PathBuf,
        tensor: String,
        location: String,
    },
    #[error("{path}: tensor '{tensor}': external data file '{location}' cannot be read: {reason}")]
    ExternalMissing {
        path: PathBuf,
        tensor: String,
        location: String,
        reason: String,
    },
    #[error("{path}: tensor '{tensor}': external data needs {needed} bytes at offset {offset} but '{location}' has {available}")]
    ExternalShort {
        path: PathBuf,
        tensor: String,
        location: String,
        offset: u64,
        needed: u64,
        available: u64,
    },
    #[error("{path}: tensor '{tensor}': {reason}")]
    BadTensor {
        path: PathBuf,
        tensor: String,
        reason: String,
    },
    #[error("{path}: opset {domain} version {version} is not supported (onnx-ac supports ai.onnx {min}..={max}); convert it with onnx.version_converter")]
    UnsupportedOpset {
        path: PathBuf,
        domain: String,
        version: i64,
        min: i64,
        max: i64,
    },
    #[error(
        "{path}: {node} uses domain '{domain}', which onnx-ac does not support (only ai.onnx)"
    )]
    UnsupportedDomain {
        path: PathBuf,
        node: onnx_ac_passes::error::NodeRef,
        domain: String,
    },
    #[error("{path}: value '{value}' has invalid dimension {dim} at axis {axis}")]
    BadDim {
        path: PathBuf,
        value: String,
        axis: usize,
        dim: i64,
    },
    #[error("{path}: value '{value}' has shape {shape}, whose size overflows int64")]
    ShapeOverflow {
        path: PathBuf,
        value: String,
        shape: String,
    },
    #[error("{path}: IR version {version} is not supported (ONNX Runtime 1.31.1 reads IR versions up to {max})")]
    UnsupportedIrVersion {
        path: PathBuf,
        version: i64,
        max: i64,
    },
    #[error("{path}: {node}: attribute '{attr}' must be {expected}, not {found}")]
    BadAttributeType {
        path: PathBuf,
        node: onnx_ac_passes::error::NodeRef,
        attr: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{path}: nodes #{first} ({first_op}) and #{second} ({second_op}) are both named '{name}'; node names must be unique (ONNX Runtime refuses the model)")]
    DuplicateNodeName {
        path: PathBuf,
        name: String,
        first: usize,
        first_op: String,
        second: usize,
        second_op: String,
    },
    #[error("{path}: {node}: '{attr}' is not an attribute of {op} in ai.onnx opsets 13..=24")]
    UnknownAttribute {
        path: PathBuf,
        node: onnx_ac_passes::error::NodeRef,
        attr: String,
        op: String,
    },
    #[error("{path}: the model imports no ai.onnx opset (onnx-ac supports ai.onnx {min}..={max})")]
    NoOpset { path: PathBuf, min: i64, max: i64 },
    #[error("{path}: {reason}")]
    BadGraph { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Ir {
        path: PathBuf,
        #[source]
        source: IrError,
    },
    #[error("{path}: cannot serialize: {reason}")]
    Serialize { path: PathBuf, reason: String },
    /// Staging, checking or renaming an output file failed.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
}

impl OnnxError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        OnnxError::Io {
            path: path.into(),
            source: plain_io(source),
        }
    }

    /// A failure writing the output file `path` (or its staging files beside it).
    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        OnnxError::Write {
            path: path.into(),
            source: plain_io(source),
        }
    }
}

/// Drops the random temporary path a `tempfile` error appends to the OS error's message
/// ("... at path \"/out/.tmpK6Qw7v\""): the caller names the real output instead.
fn plain_io(e: std::io::Error) -> std::io::Error {
    if e.get_ref().is_some() {
        let msg = e.to_string();
        if let Some(i) = msg.find(" at path \"") {
            return std::io::Error::new(e.kind(), &msg[..i]);
        }
    }
    e
}
