//! ONNX files ↔ IR. The only module that touches protobuf.

mod error;
mod export;
mod external;
mod import;
pub mod proto;
mod tensors;

pub use error::OnnxError;
pub use export::{SaveOptions, EXTERNAL_MIN_BYTES, INLINE_LIMIT_BYTES};
pub use external::read_external;
pub use tensors::load_tensors;

use onnx_ac_passes::ir::{self, Model, TensorData};
use protobuf::Message;
use std::path::{Path, PathBuf};

/// The ai.onnx opset versions onnx-ac's shape and gradient rules are written for.
pub const MIN_OPSET: i64 = 13;
pub const MAX_OPSET: i64 = 24;
/// The newest ONNX IR version the pinned ONNX Runtime (1.31.1) loads; a model declaring a
/// later one is refused at load (ONNX Runtime would refuse the training graph).
pub const MAX_IR_VERSION: i64 = 13;

/// Reads and parses a model file; external data is located and checked but not read. The file
/// must be a regular file of at most [`crate::safefs::MODEL_LIMIT_BYTES`].
/// The graph is checked (every input defined, no cycle) and put in topological order.
pub fn load(path: &Path) -> Result<Model, OnnxError> {
    let bytes =
        crate::safefs::read_input(path, crate::safefs::MODEL_LIMIT_BYTES).map_err(|source| {
            OnnxError::Read {
                path: path.to_path_buf(),
                source,
            }
        })?;
    let proto = parse_model(path, &bytes)?;
    drop(bytes);
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let importer = import::Importer {
        path,
        base_dir: &base_dir,
    };
    let mut model = importer.model(proto)?;
    check_supported(&model, path)?;
    ir::sort_nodes(&mut model.graph).map_err(|source| OnnxError::Ir {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(model)
}

pub(crate) fn parse_model(path: &Path, bytes: &[u8]) -> Result<proto::ModelProto, OnnxError> {
    let parse_err = |reason: String| OnnxError::Parse {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.is_empty() {
        return Err(parse_err("the file is empty".into()));
    }
    let mut is = protobuf::CodedInputStream::from_bytes(bytes);
    let mut m = proto::ModelProto::new();
    m.merge_from(&mut is)
        .map_err(|e| parse_err(e.to_string()))?;
    if m.graph.is_none() && m.ir_version.is_none() {
        return Err(parse_err(
            "no ir_version and no graph: is this an ONNX file?".into(),
        ));
    }
    Ok(m)
}

/// Refuses opsets and domains the rules are not written for, naming them.
pub fn check_supported(model: &Model, path: &Path) -> Result<(), OnnxError> {
    let function_domains: std::collections::HashSet<String> = model
        .opaque_functions
        .iter()
        .filter_map(|b| proto::FunctionProto::parse_from_bytes(b).ok())
        .map(|f| f.domain().to_string())
        .collect();
    for (domain, version) in &model.opset_imports {
        if (domain.is_empty() || domain == "ai.onnx") && !(MIN_OPSET..=MAX_OPSET).contains(version)
        {
            return Err(OnnxError::UnsupportedOpset {
                path: path.to_path_buf(),
                domain: "ai.onnx".into(),
                version: *version,
                min: MIN_OPSET,
                max: MAX_OPSET,
            });
        }
    }
    if model.ir_version > MAX_IR_VERSION {
        return Err(OnnxError::UnsupportedIrVersion {
            path: path.to_path_buf(),
            version: model.ir_version,
            max: MAX_IR_VERSION,
        });
    }
    if model.opset().is_none() {
        return Err(OnnxError::NoOpset {
            path: path.to_path_buf(),
            min: MIN_OPSET,
            max: MAX_OPSET,
        });
    }
    for id in model.graph.node_ids() {
        let n = model.graph.node(id);
        if !n.is_standard_domain() && !function_domains.contains(&n.domain) {
            return Err(OnnxError::UnsupportedDomain {
                path: path.to_path_buf(),
                node: onnx_ac_passes::error::NodeRef::of(&model.graph, id),
                domain: n.domain.clone(),
            });
        }
        if n.is_standard_domain() {
            for a in &n.attrs {
                let Some(expected) = attr_kind_by_name(&a.name) else {
                    continue;
                };
                let found = attr_kind(&a.value);
                if found != expected {
                    return Err(OnnxError::BadAttributeType {
                        path: path.to_path_buf(),
                        node: onnx_ac_passes::error::NodeRef::of(&model.graph, id),
                        attr: a.name.clone(),
                        expected,
                        found,
                    });
                }
            }
        }
    }
    Ok(())
}

/// The ONNX type of an attribute value, as the spec names it.
fn attr_kind(v: &onnx_ac_passes::ir::AttrValue) -> &'static str {
    use onnx_ac_passes::ir::AttrValue as A;
    match v {
        A::Float(_) => "FLOAT",
        A::Int(_) => "INT",
        A::String(_) => "STRING",
        A::Tensor(_) => "TENSOR",
        A::Floats(_) => "FLOATS",
        A::Ints(_) => "INTS",
        A::Strings(_) => "STRINGS",
        A::Tensors(_) => "TENSORS",
        A::Opaque(_) => "a graph, sparse tensor, type or no type",
    }
}

/// The type an ai.onnx attribute must have, for the names whose type is the same in every
/// ai.onnx op of opsets 13..=24 (the shape rules read most of them; a wrong type would be
/// read as "absent" and give a graph ONNX Runtime refuses). Names whose type depends on the
/// op (`seed`, `value`, `dtype`, `mode`) are not listed.
fn attr_kind_by_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "axis"
        | "keepdims"
        | "group"
        | "transA"
        | "transB"
        | "exclusive"
        | "reverse"
        | "ceil_mode"
        | "count_include_pad"
        | "storage_order"
        | "blocksize"
        | "batch_dims"
        | "select_last_index"
        | "noop_with_empty_axes"
        | "stash_type"
        | "largest"
        | "sorted"
        | "allowzero"
        | "upper"
        | "to"
        | "num_outputs"
        | "training_mode"
        | "ignore_index"
        | "hidden_size"
        | "layout"
        | "value_int"
        | "start"
        | "end" => "INT",
        "perm" | "axes" | "pads" | "strides" | "kernel_shape" | "dilations" | "output_shape"
        | "output_padding" | "split" | "value_ints" => "INTS",
        "epsilon" | "alpha" | "beta" | "momentum" | "value_float" | "lambd" | "gamma" => "FLOAT",
        "auto_pad" | "reduction" | "direction" | "equation" | "approximate" => "STRING",
        _ => return None,
    })
}

/// Serializes a model to bytes (all tensors inline; for models without external data).
pub fn to_bytes(model: &Model, opts: &SaveOptions) -> Result<Vec<u8>, OnnxError> {
    let mut ex = export::Exporter {
        external_file: None,
        pending: Vec::new(),
        next_offset: 0,
        opts: opts.clone(),
    };
    let mp = ex.model(model);
    if !ex.pending.is_empty() {
        return Err(OnnxError::Serialize {
            path: PathBuf::from("<memory>"),
            reason: "the model has external data; save it to a file".into(),
        });
    }
    mp.write_to_bytes().map_err(|e| OnnxError::Serialize {
        path: PathBuf::from("<memory>"),
        reason: e.to_string(),
    })
}

/// Whether the saved model keeps (some of) its tensors in a side file: when the input had
/// external data, or when the inline total would pass protobuf's 2 GiB limit.
fn needs_external(model: &Model) -> bool {
    let mut inline = 0u64;
    for &i in &model.graph.initializers {
        match &model.graph.value(i).initializer.as_ref().map(|t| &t.data) {
            Some(TensorData::External(_)) => return true,
            Some(TensorData::Raw(b)) => inline += b.len() as u64,
            _ => {}
        }
    }
    inline > INLINE_LIMIT_BYTES
}

/// Writes `model` to `path`, with tensors of at least [`EXTERNAL_MIN_BYTES`] in
/// `<file name>.data` beside it when [`needs_external`]. Both files are written under
/// temporary names and renamed at the end: a failure leaves nothing half-written.
pub fn save(model: &Model, path: &Path, opts: &SaveOptions) -> Result<(), OnnxError> {
    let mut staging = crate::output::Staging::new();
    save_staged(model, path, opts, &mut staging)?;
    Ok(staging.commit()?)
}

/// [`save`] into `staging`: the model (and its `.data` file) are written to temporaries that
/// become `path` when the caller commits, with the command's other outputs.
pub fn save_staged(
    model: &Model,
    path: &Path,
    opts: &SaveOptions,
    staging: &mut crate::output::Staging,
) -> Result<(), OnnxError> {
    let file_name = path
        .file_name()
        .ok_or_else(|| OnnxError::Serialize {
            path: path.to_path_buf(),
            reason: "the output path has no file name".into(),
        })?
        .to_string_lossy()
        .into_owned();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let side_name = format!("{file_name}.data");
    let external = needs_external(model);
    let mut ex = export::Exporter {
        external_file: external.then(|| side_name.clone()),
        pending: Vec::new(),
        next_offset: 0,
        opts: opts.clone(),
    };
    let mp = ex.model(model);
    let bytes = mp.write_to_bytes().map_err(|e| OnnxError::Serialize {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !ex.pending.is_empty() {
        let side_path = dir.join(&side_name);
        let file = staging.create(&side_path)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        export::write_side_file(
            &mut w,
            &ex.pending,
            model_source(model).as_path(),
            model.base_dir.as_deref(),
            &side_path,
        )?;
        let file = w
            .into_inner()
            .map_err(|e| OnnxError::write(&side_path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| OnnxError::write(&side_path, e))?;
    }
    staging.write(path, &bytes)?;
    Ok(())
}

/// The external-data files a loaded model reads (beside the model, as named in the file).
pub fn external_files(model: &Model) -> Vec<PathBuf> {
    let base = model.base_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let mut files: Vec<PathBuf> = Vec::new();
    for &i in &model.graph.initializers {
        if let Some(TensorData::External(ext)) =
            model.graph.value(i).initializer.as_ref().map(|t| &t.data)
        {
            let p = base.join(&ext.location);
            if !files.contains(&p) {
                files.push(p);
            }
        }
    }
    files
}

fn model_source(model: &Model) -> PathBuf {
    model
        .base_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("<model>")
}
