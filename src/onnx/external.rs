//! External data: tensors whose bytes live in side files next to the model. Locations are
//! refused when they leave the model's folder (absolute, `..`, or a symlink pointing out),
//! the path-traversal class of CVE-2022-25882 and CVE-2024-27318.

use super::error::OnnxError;
use onnx_ac_passes::ir::ExternalRef;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

pub(crate) fn check_external_location(
    model_path: &Path,
    base_dir: &Path,
    tensor: &str,
    location: &str,
) -> Result<PathBuf, OnnxError> {
    let escapes = || OnnxError::ExternalEscapes {
        path: model_path.to_path_buf(),
        tensor: tensor.to_string(),
        location: location.to_string(),
    };
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
        return Err(escapes());
    }
    let full = base_dir.join(rel);
    // A symlink (at any level) may point anywhere: compare canonical paths.
    let canon_base = base_dir
        .canonicalize()
        .map_err(|e| OnnxError::io(base_dir, e))?;
    match full.canonicalize() {
        Ok(canon) if canon.starts_with(&canon_base) => Ok(full),
        Ok(_) => Err(escapes()),
        Err(e) => Err(OnnxError::ExternalMissing {
            path: model_path.to_path_buf(),
            tensor: tensor.to_string(),
            location: location.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// The number of bytes an external tensor occupies.
pub(crate) fn external_len(
    model_path: &Path,
    base_dir: &Path,
    tensor: &str,
    ext: &ExternalRef,
    expected: Option<u64>,
) -> Result<u64, OnnxError> {
    let full = check_external_location(model_path, base_dir, tensor, &ext.location)?;
    let available = std::fs::metadata(&full)
        .map_err(|e| OnnxError::io(&full, e))?
        .len();
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

/// Opens an external tensor's bytes as a reader limited to its length.
pub(crate) fn open_external(
    model_path: &Path,
    base_dir: &Path,
    tensor: &str,
    ext: &ExternalRef,
    expected: Option<u64>,
) -> Result<(std::io::Take<File>, u64), OnnxError> {
    let len = external_len(model_path, base_dir, tensor, ext, expected)?;
    let full = base_dir.join(&ext.location);
    let mut f = File::open(&full).map_err(|e| OnnxError::io(&full, e))?;
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
