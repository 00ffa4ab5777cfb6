//! External data: tensors whose bytes live in side files next to the model. Locations are
//! refused when they leave the model's folder (absolute, `..`, or a symlink pointing out),
//! the path-traversal class of CVE-2022-25882 and CVE-2024-27318. The check is the opening
//! itself (`safefs::open_beneath`): a file is opened once, beneath the folder, and read from
//! that handle, so no symlink swapped in after a check can lead outside (issue #12). FIFOs
//! and devices are refused.

use super::error::OnnxError;
use crate::safefs::{open_beneath, BeneathError};
use onnx_ac_passes::ir::ExternalRef;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

/// Refuses a location that names no file or leaves the folder on its face (absolute, `..`);
/// symbolic links are checked while opening ([`open_located`]).
fn check_external_location(
    model_path: &Path,
    tensor: &str,
    location: &str,
) -> Result<(), OnnxError> {
    if location.is_empty() {
        return Err(OnnxError::BadTensor {
            path: model_path.to_path_buf(),
            tensor: tensor.to_string(),
            reason: "data_location is EXTERNAL but external_data has no location".into(),
        });
    }
    let rel = Path::new(location);
    if location.contains('\0')
        || rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(escapes(model_path, tensor, location));
    }
    Ok(())
}

fn escapes(model_path: &Path, tensor: &str, location: &str) -> OnnxError {
    OnnxError::ExternalEscapes {
        path: model_path.to_path_buf(),
        tensor: tensor.to_string(),
        location: location.to_string(),
    }
}

/// Opens an external-data file once, beneath the model's folder (a symbolic link is followed
/// only while it stays inside: `safefs::open_beneath`, race-free), as a regular file, and
/// returns the handle with its size. Every later read uses this handle.
fn open_located(
    model_path: &Path,
    base_dir: &Path,
    tensor: &str,
    location: &str,
) -> Result<(File, u64), OnnxError> {
    check_external_location(model_path, tensor, location)?;
    let cannot_read = |e: std::io::Error| OnnxError::ExternalMissing {
        path: model_path.to_path_buf(),
        tensor: tensor.to_string(),
        location: location.to_string(),
        reason: e.to_string(),
    };
    let file = match open_beneath(base_dir, Path::new(location)) {
        Ok(f) => f,
        Err(BeneathError::Escapes) => return Err(escapes(model_path, tensor, location)),
        Err(BeneathError::Io(e)) => return Err(cannot_read(e)),
    };
    let available = file.metadata().map_err(cannot_read)?.len();
    Ok((file, available))
}

/// The number of bytes of `ext` in a file of `available` bytes, or the error when it is short.
fn needed_bytes(
    model_path: &Path,
    tensor: &str,
    ext: &ExternalRef,
    expected: Option<u64>,
    available: u64,
) -> Result<u64, OnnxError> {
    let needed = ext
        .length
        .or(expected)
        .unwrap_or(available.saturating_sub(ext.offset));
    if ext
        .offset
        .checked_add(needed)
        .is_none_or(|end| end > available)
    {
        return Err(OnnxError::ExternalShort {
            path: model_path.to_path_buf(),
            tensor: tensor.to_string(),
            location: ext.location.clone(),
            offset: ext.offset,
            needed,
            available,
        });
    }
    Ok(needed)
}

/// The number of bytes an external tensor occupies (its file is opened and checked, not read).
pub(crate) fn external_len(
    model_path: &Path,
    base_dir: &Path,
    tensor: &str,
    ext: &ExternalRef,
    expected: Option<u64>,
) -> Result<u64, OnnxError> {
    let (_file, available) = open_located(model_path, base_dir, tensor, &ext.location)?;
    needed_bytes(model_path, tensor, ext, expected, available)
}

/// Structure-only loading: whether an external tensor's data is absent (its file does not
/// exist, or is shorter than the tensor). A location leaving the folder, or a file that
/// exists but cannot be opened as a regular file, is still an error.
pub(crate) fn external_absent(
    model_path: &Path,
    base_dir: &Path,
    tensor: &str,
    ext: &ExternalRef,
    expected: Option<u64>,
) -> Result<bool, OnnxError> {
    check_external_location(model_path, tensor, &ext.location)?;
    if let Err(BeneathError::Io(e)) = open_beneath(base_dir, Path::new(&ext.location)) {
        if e.kind() == std::io::ErrorKind::NotFound {
            return Ok(true);
        }
    }
    match external_len(model_path, base_dir, tensor, ext, expected) {
        Ok(_) => Ok(false),
        Err(OnnxError::ExternalShort { .. }) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Opens an external tensor's bytes as a reader limited to its length: the file is opened
/// once and only that handle is read.
pub(crate) fn open_external(
    model_path: &Path,
    base_dir: &Path,
    tensor: &str,
    ext: &ExternalRef,
    expected: Option<u64>,
) -> Result<(std::io::Take<File>, u64), OnnxError> {
    let (mut f, available) = open_located(model_path, base_dir, tensor, &ext.location)?;
    let len = needed_bytes(model_path, tensor, ext, expected, available)?;
    let full = base_dir.join(&ext.location);
    f.seek(SeekFrom::Start(ext.offset))
        .map_err(|e| OnnxError::io(&full, e))?;
    Ok((f.take(len), len))
}

/// Reads an external tensor's bytes into memory (for the stages that need weights).
pub fn read_external(
    model_path: &Path,
    base_dir: &Path,
    tensor: &str,
    ext: &ExternalRef,
    expected: Option<u64>,
) -> Result<Vec<u8>, OnnxError> {
    let (mut r, len) = open_external(model_path, base_dir, tensor, ext, expected)?;
    let mut buf = Vec::with_capacity(len as usize);
    r.read_to_end(&mut buf)
        .map_err(|e| OnnxError::io(base_dir.join(&ext.location), e))?;
    Ok(buf)
}
