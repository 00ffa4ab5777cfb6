//! Named tensor collections stored as a `GraphProto` whose initializers are the tensors
//! (the fixtures' `.ref.pb` inputs and reference gradients).

use super::error::OnnxError;
use super::import::Importer;
use super::proto;
use onnx_ac_passes::ir::Tensor;
use protobuf::Message;
use std::path::Path;

pub fn load_tensors(path: &Path) -> Result<Vec<(String, Tensor)>, OnnxError> {
    let bytes = crate::safefs::read_input(path, crate::safefs::MODEL_LIMIT_BYTES)
        .map_err(|e| OnnxError::io(path, e))?;
    let g = proto::GraphProto::parse_from_bytes(&bytes).map_err(|e| OnnxError::Parse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let importer = Importer {
        path,
        base_dir: dir,
        absent: None,
    };
    g.initializer
        .iter()
        .map(|t| Ok((t.name().to_string(), importer.tensor(t)?)))
        .collect()
}
