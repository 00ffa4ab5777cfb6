//! ONNX files ↔ IR. The only module that touches protobuf.

mod attr_types;
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
    load_with(path, None)
}

/// [`load`] for `onnx-ac estimate`, which needs only shapes and dtypes: an initializer whose
/// external data file is absent or shorter than the tensor, or that holds no data at all, is
/// loaded as shape and dtype only (its data a placeholder nothing reads). Returns the model
/// and the names of those initializers. Locations leaving the model's folder are refused as
/// by [`load`].
pub fn load_structure_only(path: &Path) -> Result<(Model, Vec<String>), OnnxError> {
    let absent = std::cell::RefCell::new(Vec::new());
    let model = load_with(path, Some(&absent))?;
    Ok((model, absent.into_inner()))
}

fn load_with(
    path: &Path,
    absent: Option<&std::cell::RefCell<Vec<String>>>,
) -> Result<Model, OnnxError> {
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
        absent,
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
    let mut names: std::collections::HashMap<&str, onnx_ac_passes::ir::NodeId> =
        std::collections::HashMap::new();
    for id in model.graph.node_ids() {
        let n = model.graph.node(id);
        // Names are optional, but a name given twice makes the model invalid.
        if !n.name.is_empty() {
            if let Some(&first) = names.get(n.name.as_str()) {
                return Err(OnnxError::DuplicateNodeName {
                    path: path.to_path_buf(),
                    name: n.name.clone(),
                    first: first.index(),
                    first_op: model.graph.node(first).op_type.clone(),
                    second: id.index(),
                    second_op: n.op_type.clone(),
                });
            }
            names.insert(&n.name, id);
        }
        if !n.is_standard_domain() && !function_domains.contains(&n.domain) {
            return Err(OnnxError::UnsupportedDomain {
                path: path.to_path_buf(),
                node: onnx_ac_passes::error::NodeRef::of(&model.graph, id),
                domain: n.domain.clone(),
            });
        }
        if n.is_standard_domain() {
            let per_op = attr_types_of(&n.op_type);
            for a in &n.attrs {
                if a.ref_attr_name.is_some() {
                    continue; // a function's attribute reference: typed where it is bound
                }
                // The op's own table when it is one onnx-ac supports, else the names whose
                // type is the same in every op.
                let expected = match per_op {
                    Some(table) => {
                        let Ok(i) = table.binary_search_by(|(name, _)| (*name).cmp(&a.name)) else {
                            // ONNX Runtime refuses an attribute its schema lacks.
                            return Err(OnnxError::UnknownAttribute {
                                path: path.to_path_buf(),
                                node: onnx_ac_passes::error::NodeRef::of(&model.graph, id),
                                attr: a.name.clone(),
                                op: n.op_type.clone(),
                            });
                        };
                        Some(table[i].1)
                    }
                    None => attr_kind_by_name(&a.name),
                };
                let Some(expected) = expected else {
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

/// The attributes of an ai.onnx op onnx-ac supports, sorted by name, with the type each
/// must have (`attr_types.rs`, generated from ONNX's schemas).
fn attr_types_of(op_type: &str) -> Option<&'static [(&'static str, &'static str)]> {
    attr_types::ATTR_TYPES
        .binary_search_by(|(op, _)| (*op).cmp(op_type))
        .ok()
        .map(|i| attr_types::ATTR_TYPES[i].1)
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
        A::Opaque(bytes) => {
            use proto::attribute_proto::AttributeType as AT;
            match proto::AttributeProto::parse_from_bytes(bytes)
                .ok()
                .and_then(|a| a.type_)
                .map(|t| t.enum_value())
            {
                Some(Ok(AT::GRAPH)) => "GRAPH",
                Some(Ok(AT::GRAPHS)) => "GRAPHS",
                Some(Ok(AT::SPARSE_TENSOR)) => "SPARSE_TENSOR",
                Some(Ok(AT::SPARSE_TENSORS)) => "SPARSE_TENSORS",
                Some(Ok(AT::TYPE_PROTO)) => "TYPE_PROTO",
                Some(Ok(AT::TYPE_PROTOS)) => "TYPE_PROTOS",
                _ => "UNDEFINED",
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every op of the registry has its row, and both levels are sorted for the binary
    /// searches: a new op without a row would have its attributes checked only by name
    /// (re-run scripts/gen_attr_types.py).
    #[test]
    fn attribute_table_covers_the_registry_sorted() {
        let table = attr_types::ATTR_TYPES;
        assert!(table.windows(2).all(|w| w[0].0 < w[1].0));
        for (op, attrs) in table {
            assert!(attrs.windows(2).all(|w| w[0].0 < w[1].0), "{op}");
        }
        // Rows without a shape rule are known to the cost model, the planner and the
        // gradient builder only; the loader checks their attributes by name.
        let with_rules = || onnx_ac_passes::ops::all().filter(|d| d.infer.is_some());
        for def in with_rules() {
            assert!(
                attr_types_of(def.op_type).is_some(),
                "{} has no row in attr_types.rs",
                def.op_type
            );
        }
        assert_eq!(table.len(), with_rules().count());
    }

    /// The per-op table decides the names whose type depends on the op.
    #[test]
    fn op_dependent_names_use_the_op_table() {
        let find = |op: &str, name: &str| {
            let t = attr_types_of(op).unwrap();
            t.binary_search_by(|(n, _)| (*n).cmp(name))
                .ok()
                .map(|i| t[i].1)
        };
        assert_eq!(find("Pad", "mode"), Some("STRING"));
        assert_eq!(find("ConstantOfShape", "value"), Some("TENSOR"));
        assert_eq!(find("Constant", "value"), Some("TENSOR"));
        assert_eq!(find("Bernoulli", "seed"), Some("FLOAT"));
        assert_eq!(find("Cast", "to"), Some("INT"));
        assert_eq!(find("Relu", "alpha"), None);
        assert_eq!(attr_types_of("Det"), None);
    }
}
