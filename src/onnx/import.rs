//! `ModelProto` → IR. Typed tensor fields are normalized to packed little-endian bytes;
//! external data is recorded, checked to stay inside the model's folder, and not read.

use super::error::OnnxError;
use super::external::external_len;
use super::proto::{self, tensor_proto::DataLocation, type_proto};
use onnx_ac_passes::error::NodeRef;
use onnx_ac_passes::ir::{
    AttrValue, Attribute, DType, Dim, ExternalRef, Graph, Model, Node, Tensor, TensorData, ValueId,
};
use protobuf::Message;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub(crate) struct Importer<'a> {
    pub path: &'a Path,
    pub base_dir: &'a Path,
    /// Structure-only loading (`onnx-ac estimate`, [`super::load_structure_only`]): an
    /// initializer whose external file is absent or too short, or that holds no data at all,
    /// is kept as shape and dtype (its name recorded here) instead of refused. `None`
    /// everywhere else: missing weights are an error.
    pub absent: Option<&'a std::cell::RefCell<Vec<String>>>,
}

fn kv(entries: &[proto::StringStringEntryProto]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|e| (e.key().to_string(), e.value().to_string()))
        .collect()
}

impl Importer<'_> {
    /// Messages onnx-ac keeps as bytes and writes back unchanged.
    fn opaque<M: Message>(&self, msgs: &[M]) -> Result<Vec<Vec<u8>>, OnnxError> {
        msgs.iter()
            .map(|m| {
                m.write_to_bytes().map_err(|e| OnnxError::Parse {
                    path: self.path.to_path_buf(),
                    reason: format!("cannot re-serialize a {}: {e}", M::NAME),
                })
            })
            .collect()
    }

    pub fn model(&self, mut m: proto::ModelProto) -> Result<Model, OnnxError> {
        let graph = m.graph.take().ok_or_else(|| OnnxError::NoGraph {
            path: self.path.to_path_buf(),
        })?;
        let mut unknown = Vec::new();
        for (num, field) in m.special_fields.unknown_fields().iter() {
            write_unknown(&mut unknown, num, field);
        }
        Ok(Model {
            ir_version: m.ir_version(),
            opset_imports: m
                .opset_import
                .iter()
                .map(|o| (o.domain().to_string(), o.version()))
                .collect(),
            producer_name: m.producer_name().to_string(),
            producer_version: m.producer_version().to_string(),
            domain: m.domain().to_string(),
            model_version: m.model_version(),
            doc_string: m.doc_string().to_string(),
            metadata: kv(&m.metadata_props),
            graph: self.graph(graph)?,
            opaque_functions: self.opaque(&m.functions)?,
            opaque_training_info: self.opaque(&m.training_info)?,
            opaque_configuration: self.opaque(&m.configuration)?,
            unknown_fields: unknown,
            base_dir: Some(self.base_dir.to_path_buf()),
        })
    }

    fn graph(&self, gp: proto::GraphProto) -> Result<Graph, OnnxError> {
        let mut g = Graph {
            name: gp.name().to_string(),
            doc_string: gp.doc_string().to_string(),
            metadata: kv(&gp.metadata_props),
            opaque_sparse_initializers: self.opaque(&gp.sparse_initializer)?,
            opaque_quantization_annotations: self.opaque(&gp.quantization_annotation)?,
            ..Graph::default()
        };
        let mut by_name: HashMap<String, ValueId> = HashMap::new();
        let mut intern = |g: &mut Graph, name: &str| -> ValueId {
            if let Some(&id) = by_name.get(name) {
                return id;
            }
            let id = g.new_value(name);
            by_name.insert(name.to_string(), id);
            id
        };
        let bad_graph = |reason: String| OnnxError::BadGraph {
            path: self.path.to_path_buf(),
            reason,
        };
        for vi in &gp.input {
            let id = intern(&mut g, vi.name());
            if g.inputs.contains(&id) {
                return Err(bad_graph(format!(
                    "graph input '{}' is declared twice",
                    vi.name()
                )));
            }
            self.apply_value_info(&mut g, id, vi)?;
            g.value_mut(id).has_value_info = false;
            g.inputs.push(id);
        }
        for (k, t) in gp.initializer.iter().enumerate() {
            let id = intern(&mut g, t.name());
            let tensor = self.tensor(t).map_err(|e| match t.name() {
                "" => relabel(e, format!("initializer #{k} (unnamed)")),
                _ => e,
            })?;
            let v = g.value_mut(id);
            if v.initializer.is_some() {
                return Err(bad_graph(format!(
                    "initializer '{}' is defined twice",
                    t.name()
                )));
            }
            if v.dtype.is_none() {
                v.dtype = Some(tensor.dtype);
            }
            if v.shape.is_none() {
                v.shape = Some(onnx_ac_passes::ir::known_shape(&tensor.dims));
            }
            v.initializer = Some(tensor);
            g.initializers.push(id);
        }
        for (k, np) in gp.node.iter().enumerate() {
            if np.op_type().is_empty() {
                return Err(bad_graph(format!(
                    "{} has no op_type",
                    node_ref(np, k).without_op()
                )));
            }
            let inputs = np
                .input
                .iter()
                .map(|n| (!n.is_empty()).then(|| intern(&mut g, n)))
                .collect();
            let outputs = np
                .output
                .iter()
                .map(|n| (!n.is_empty()).then(|| intern(&mut g, n)))
                .collect();
            let attrs = np
                .attribute
                .iter()
                .map(|a| self.attribute(a, &node_ref(np, k)))
                .collect::<Result<Vec<_>, _>>()?;
            let node = Node {
                name: np.name().to_string(),
                op_type: np.op_type().to_string(),
                domain: np.domain().to_string(),
                inputs,
                outputs,
                attrs,
                doc_string: np.doc_string().to_string(),
                overload: np.overload().to_string(),
                metadata: kv(&np.metadata_props),
                opaque_device_configurations: self.opaque(&np.device_configurations)?,
                origin: onnx_ac_passes::ir::Origin::Model,
            };
            // Producers are recorded by hand: a malformed file may produce a value twice,
            // which topo_order reports with both node names.
            g.nodes.push(node);
        }
        let mut is_input = vec![false; g.values.len()];
        for &i in &g.inputs {
            is_input[i.index()] = true;
        }
        for (i, n) in g.nodes.iter().enumerate() {
            for o in n.outputs.iter().flatten() {
                // Single assignment: graph inputs and initializers are not node outputs.
                let v = &g.values[o.index()];
                let what = if v.initializer.is_some() {
                    Some("an initializer")
                } else if is_input[o.index()] {
                    Some("a graph input")
                } else {
                    None
                };
                if let Some(what) = what {
                    return Err(bad_graph(format!(
                        "{} writes '{}', which is already {what}",
                        NodeRef::of(&g, onnx_ac_passes::ir::NodeId(i as u32)),
                        v.name
                    )));
                }
                let v = &mut g.values[o.index()];
                if v.producer.is_none() {
                    v.producer = Some(onnx_ac_passes::ir::NodeId(i as u32));
                }
            }
        }
        for vi in &gp.output {
            let id = intern(&mut g, vi.name());
            self.apply_value_info(&mut g, id, vi)?;
            g.value_mut(id).has_value_info = false;
            g.outputs.push(id);
        }
        for vi in &gp.value_info {
            let id = intern(&mut g, vi.name());
            self.apply_value_info(&mut g, id, vi)?;
        }
        Ok(g)
    }

    fn apply_value_info(
        &self,
        g: &mut Graph,
        id: ValueId,
        vi: &proto::ValueInfoProto,
    ) -> Result<(), OnnxError> {
        let v = g.value_mut(id);
        v.has_value_info = true;
        v.doc_string = vi.doc_string().to_string();
        v.metadata = kv(&vi.metadata_props);
        let Some(tp) = vi.type_.as_ref() else {
            return Ok(());
        };
        match &tp.value {
            Some(type_proto::Value::TensorType(tt)) => {
                v.dtype = tt.elem_type.and_then(DType::from_onnx);
                if let Some(sp) = tt.shape.as_ref() {
                    let mut dims = Vec::with_capacity(sp.dim.len());
                    for (axis, d) in sp.dim.iter().enumerate() {
                        use proto::tensor_shape_proto::dimension::Value as DV;
                        dims.push(match &d.value {
                            Some(DV::DimValue(x)) if *x < 0 => {
                                return Err(OnnxError::BadDim {
                                    path: self.path.to_path_buf(),
                                    value: vi.name().to_string(),
                                    axis,
                                    dim: *x,
                                })
                            }
                            Some(DV::DimValue(x)) => Dim::Known(*x),
                            Some(DV::DimParam(p)) if !p.is_empty() => Dim::Sym(p.clone()),
                            _ => Dim::Unknown,
                        });
                    }
                    // A shape whose element count overflows cannot be allocated by anyone.
                    let numel = dims.iter().try_fold(1u64, |acc, d| match d {
                        Dim::Known(x) => acc.checked_mul(*x as u64),
                        _ => Some(acc),
                    });
                    let bytes = numel.and_then(|n| {
                        n.checked_mul(v.dtype.and_then(|d| d.size_bytes()).unwrap_or(1))
                    });
                    if bytes.is_none_or(|b| b > i64::MAX as u64) {
                        return Err(OnnxError::ShapeOverflow {
                            path: self.path.to_path_buf(),
                            value: vi.name().to_string(),
                            shape: show_dims(&dims),
                        });
                    }
                    v.shape = Some(dims);
                } else {
                    v.shape = None;
                }
            }
            Some(_) => {
                v.opaque_type = Some(tp.write_to_bytes().map_err(|e| OnnxError::Parse {
                    path: self.path.to_path_buf(),
                    reason: e.to_string(),
                })?)
            }
            None => {}
        }
        Ok(())
    }

    fn attribute(&self, a: &proto::AttributeProto, node: &NodeRef) -> Result<Attribute, OnnxError> {
        use proto::attribute_proto::AttributeType as AT;
        let ty = a.type_.map(|t| t.enum_value());
        // Attribute tensors are usually unnamed: name the attribute and node instead.
        let in_attr = |e| relabel(e, format!("attribute '{}' of {node}", a.name()));
        // An attribute tensor (a Constant's value) is used by the shape rules and folded
        // like inline data; its external data is refused rather than read here.
        let attr_tensor = |t: &proto::TensorProto| -> Result<Tensor, OnnxError> {
            let x = self.tensor(t).map_err(in_attr)?;
            if let TensorData::External(ext) = &x.data {
                return Err(in_attr(OnnxError::BadTensor {
                    path: self.path.to_path_buf(),
                    tensor: String::new(),
                    reason: format!(
                        "external data (at '{}') in an attribute is not supported; store it as an initializer",
                        ext.location
                    ),
                }));
            }
            Ok(x)
        };
        let value = match ty {
            Some(Ok(AT::FLOAT)) => AttrValue::Float(a.f()),
            Some(Ok(AT::INT)) => AttrValue::Int(a.i()),
            Some(Ok(AT::STRING)) => AttrValue::String(a.s().to_vec()),
            Some(Ok(AT::TENSOR)) if a.t.is_some() => AttrValue::Tensor(attr_tensor(&a.t)?),
            Some(Ok(AT::FLOATS)) => AttrValue::Floats(a.floats.clone()),
            Some(Ok(AT::INTS)) => AttrValue::Ints(a.ints.clone()),
            Some(Ok(AT::STRINGS)) => AttrValue::Strings(a.strings.clone()),
            Some(Ok(AT::TENSORS)) => AttrValue::Tensors(
                a.tensors
                    .iter()
                    .map(attr_tensor)
                    .collect::<Result<_, _>>()?,
            ),
            _ => AttrValue::Opaque(a.write_to_bytes().map_err(|e| OnnxError::Parse {
                path: self.path.to_path_buf(),
                reason: e.to_string(),
            })?),
        };
        Ok(Attribute {
            name: a.name().to_string(),
            value,
            doc_string: a.doc_string().to_string(),
            ref_attr_name: a.ref_attr_name.clone(),
        })
    }

    pub fn tensor(&self, t: &proto::TensorProto) -> Result<Tensor, OnnxError> {
        let bad = |reason: String| OnnxError::BadTensor {
            path: self.path.to_path_buf(),
            tensor: t.name().to_string(),
            reason,
        };
        let dtype =
            DType::from_onnx(t.data_type()).ok_or_else(|| bad("data_type is UNDEFINED".into()))?;
        for (axis, &d) in t.dims.iter().enumerate() {
            if d < 0 {
                return Err(OnnxError::BadDim {
                    path: self.path.to_path_buf(),
                    value: t.name().to_string(),
                    axis,
                    dim: d,
                });
            }
        }
        // Element and byte counts must fit in int64, as ONNX sizes are int64.
        let numel = t
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .filter(|&n| {
                n.checked_mul(dtype.size_bytes().unwrap_or(1))
                    .is_some_and(|b| b <= i64::MAX as u64)
            })
            .ok_or_else(|| {
                bad(format!(
                    "dims {:?} of {dtype} are too large: the size overflows int64",
                    t.dims
                ))
            })?;
        let data = if t.data_location.map(|l| l.enum_value()) == Some(Ok(DataLocation::EXTERNAL)) {
            let mut ext = ExternalRef {
                location: String::new(),
                offset: 0,
                length: None,
                checksum: None,
                extra: Vec::new(),
            };
            for e in &t.external_data {
                match e.key() {
                    "location" => ext.location = e.value().to_string(),
                    "offset" => {
                        ext.offset = e
                            .value()
                            .parse()
                            .map_err(|_| bad(format!("bad external offset '{}'", e.value())))?
                    }
                    "length" => {
                        ext.length = Some(
                            e.value()
                                .parse()
                                .map_err(|_| bad(format!("bad external length '{}'", e.value())))?,
                        )
                    }
                    "checksum" => ext.checksum = Some(e.value().to_string()),
                    k => ext.extra.push((k.to_string(), e.value().to_string())),
                }
            }
            // Located, kept inside the folder, and long enough (a stat, not a read).
            let expected = dtype.size_bytes().map(|w| numel * w);
            if let (Some(len), Some(need)) = (ext.length, expected) {
                if len != need {
                    return Err(bad(format!(
                        "external data length is {len} bytes, dims {:?} of {dtype} need {need}",
                        t.dims
                    )));
                }
            }
            match self.absent {
                Some(absent) => {
                    if super::external::external_absent(
                        self.path,
                        self.base_dir,
                        t.name(),
                        &ext,
                        expected,
                    )? {
                        absent.borrow_mut().push(t.name().to_string());
                    }
                }
                None => {
                    external_len(self.path, self.base_dir, t.name(), &ext, expected)?;
                }
            }
            TensorData::External(ext)
        } else if let (Some(absent), true) = (self.absent, has_no_data(t, numel)) {
            // Structure only: a placeholder that names no file; nothing reads it.
            absent.borrow_mut().push(t.name().to_string());
            TensorData::External(ExternalRef {
                location: String::new(),
                offset: 0,
                length: None,
                checksum: None,
                extra: Vec::new(),
            })
        } else if dtype == DType::String {
            TensorData::Strings(t.string_data.clone())
        } else {
            TensorData::Raw(Arc::new(typed_to_raw(t, dtype, numel).map_err(bad)?))
        };
        Ok(Tensor {
            dtype,
            dims: t.dims.clone(),
            data,
            doc_string: t.doc_string().to_string(),
        })
    }
}

/// Node `k` of the file, named as every error names a node (by index, op and first
/// output when it has no name).
fn node_ref(np: &proto::NodeProto, k: usize) -> NodeRef {
    let output = np.output.iter().find(|o| !o.is_empty());
    NodeRef::new(k, np.name(), np.op_type(), output.map(String::as_str))
}

/// Names the tensor of a tensor error by `label`, for tensors with no name of their own.
fn relabel(e: OnnxError, label: String) -> OnnxError {
    match e {
        OnnxError::BadTensor { path, reason, .. } => OnnxError::BadTensor {
            path,
            tensor: label,
            reason,
        },
        OnnxError::BadDim {
            path, axis, dim, ..
        } => OnnxError::BadDim {
            path,
            value: label,
            axis,
            dim,
        },
        OnnxError::ExternalEscapes { path, location, .. } => OnnxError::ExternalEscapes {
            path,
            tensor: label,
            location,
        },
        OnnxError::ExternalMissing {
            path,
            location,
            reason,
            ..
        } => OnnxError::ExternalMissing {
            path,
            tensor: label,
            location,
            reason,
        },
        OnnxError::ExternalShort {
            path,
            location,
            offset,
            needed,
            available,
            ..
        } => OnnxError::ExternalShort {
            path,
            tensor: label,
            location,
            offset,
            needed,
            available,
        },
        other => other,
    }
}

/// A tensor of `numel` > 0 elements with no data in any field (a structure-only export).
fn has_no_data(t: &proto::TensorProto, numel: u64) -> bool {
    numel > 0
        && t.raw_data.as_ref().is_none_or(|r| r.is_empty())
        && t.float_data.is_empty()
        && t.double_data.is_empty()
        && t.int32_data.is_empty()
        && t.int64_data.is_empty()
        && t.uint64_data.is_empty()
        && t.string_data.is_empty()
}

/// Packs whichever typed field holds the data into little-endian bytes.
fn typed_to_raw(t: &proto::TensorProto, dtype: DType, numel: u64) -> Result<Vec<u8>, String> {
    if let Some(raw) = &t.raw_data {
        if let Some(w) = dtype.size_bytes() {
            if raw.len() as u64 != numel * w {
                return Err(format!(
                    "raw_data has {} bytes, dims {:?} of {dtype} need {}",
                    raw.len(),
                    t.dims,
                    numel * w
                ));
            }
        }
        return Ok(raw.clone());
    }
    let mut out = Vec::new();
    match dtype {
        DType::Float => out.extend(t.float_data.iter().flat_map(|v| v.to_le_bytes())),
        DType::Complex64 => out.extend(t.float_data.iter().flat_map(|v| v.to_le_bytes())),
        DType::Double | DType::Complex128 => {
            out.extend(t.double_data.iter().flat_map(|v| v.to_le_bytes()))
        }
        DType::Int64 => out.extend(t.int64_data.iter().flat_map(|v| v.to_le_bytes())),
        DType::Uint64 => out.extend(t.uint64_data.iter().flat_map(|v| v.to_le_bytes())),
        DType::Uint32 => out.extend(t.uint64_data.iter().flat_map(|&v| (v as u32).to_le_bytes())),
        DType::Int32 => out.extend(t.int32_data.iter().flat_map(|v| v.to_le_bytes())),
        DType::Int16 | DType::Uint16 | DType::Float16 | DType::BFloat16 => {
            out.extend(t.int32_data.iter().flat_map(|&v| (v as u16).to_le_bytes()))
        }
        DType::Int8 | DType::Uint8 | DType::Bool | DType::Other(17..=20) | DType::Other(23) => {
            out.extend(t.int32_data.iter().map(|&v| v as u8))
        }
        other => {
            return Err(format!(
                "typed data of {other} is not supported; use raw_data"
            ))
        }
    }
    let w = dtype.size_bytes().unwrap_or(1);
    if out.len() as u64 != numel * w {
        return Err(format!(
            "holds {} values, dims {:?} need {numel}",
            out.len() as u64 / w,
            t.dims
        ));
    }
    Ok(out)
}

/// `[d0,d1,...]` with symbolic dims by name and unknown ones as `?`.
fn show_dims(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Dim::Known(x) => x.to_string(),
            Dim::Sym(s) => s.clone(),
            Dim::Unknown => "?".into(),
        })
        .collect();
    format!("[{}]", parts.join(","))
}

fn write_unknown(out: &mut Vec<u8>, num: u32, field: protobuf::UnknownValueRef<'_>) {
    let mut os = protobuf::CodedOutputStream::vec(out);
    let _ = os.write_unknown(num, field);
    let _ = os.flush();
}
