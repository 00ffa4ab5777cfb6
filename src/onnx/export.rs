//! IR → `ModelProto`, and writing it with its external data.

use super::error::OnnxError;
use super::external::open_external;
use super::proto::{self, tensor_proto::DataLocation, type_proto};
use onnx_ac_passes::ir::{AttrValue, Attribute, Dim, Graph, Model, Tensor, TensorData, ValueId};
use protobuf::{EnumOrUnknown, Message, MessageField};
use std::io::Write;
use std::path::Path;

/// Tensors of at least this many bytes go to the side file when a model is saved with
/// external data (the same threshold as `onnx.save(..., save_as_external_data=True)`).
pub const EXTERNAL_MIN_BYTES: u64 = 1024;
/// Inline initializers above this total push a model to external data: protobuf cannot
/// encode a message of 2 GiB or more.
pub const INLINE_LIMIT_BYTES: u64 = 1_800_000_000;
/// Offsets in the side file are aligned to this (mmap-friendly, as onnx's own writer).
const ALIGN: u64 = 4096;

#[derive(Clone, Debug)]
pub struct SaveOptions {
    /// Emit `value_info` for every typed intermediate value (not only those the input had).
    pub all_value_info: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            all_value_info: true,
        }
    }
}

fn kv(entries: &[(String, String)]) -> Vec<proto::StringStringEntryProto> {
    entries
        .iter()
        .map(|(k, v)| {
            let mut e = proto::StringStringEntryProto::new();
            e.key = Some(k.clone());
            e.value = Some(v.clone());
            e
        })
        .collect()
}

fn parse_all<M: Message>(blobs: &[Vec<u8>]) -> Vec<M> {
    blobs
        .iter()
        .map(|b| M::parse_from_bytes(b).expect("carried bytes were serialized by us"))
        .collect()
}

/// Where each external tensor's bytes will come from while writing the side file.
pub(crate) enum Payload<'a> {
    Inline(&'a [u8]),
    External(&'a onnx_ac_passes::ir::ExternalRef),
}

pub(crate) struct PendingData<'a> {
    pub tensor: String,
    pub payload: Payload<'a>,
    pub expected: Option<u64>,
}

pub(crate) struct Exporter<'a> {
    pub external_file: Option<String>,
    pub pending: Vec<PendingData<'a>>,
    pub next_offset: u64,
    pub opts: SaveOptions,
}

impl<'a> Exporter<'a> {
    pub fn model(&mut self, m: &'a Model) -> proto::ModelProto {
        let mut mp = proto::ModelProto::new();
        mp.ir_version = Some(m.ir_version);
        mp.opset_import = m
            .opset_imports
            .iter()
            .map(|(d, v)| {
                let mut o = proto::OperatorSetIdProto::new();
                o.domain = Some(d.clone());
                o.version = Some(*v);
                o
            })
            .collect();
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        mp.producer_name = opt(&m.producer_name);
        mp.producer_version = opt(&m.producer_version);
        mp.domain = opt(&m.domain);
        mp.model_version = (m.model_version != 0).then_some(m.model_version);
        mp.doc_string = opt(&m.doc_string);
        mp.metadata_props = kv(&m.metadata);
        mp.graph = MessageField::some(self.graph(&m.graph));
        mp.functions = parse_all(&m.opaque_functions);
        mp.training_info = parse_all(&m.opaque_training_info);
        mp.configuration = parse_all(&m.opaque_configuration);
        if !m.unknown_fields.is_empty() {
            // Re-attach fields this build does not know by merging their wire bytes.
            let _ = mp.merge_from_bytes(&m.unknown_fields);
        }
        mp
    }

    fn value_info(&self, g: &Graph, id: ValueId) -> proto::ValueInfoProto {
        let v = g.value(id);
        let mut vi = proto::ValueInfoProto::new();
        vi.name = Some(v.name.clone());
        if !v.doc_string.is_empty() {
            vi.doc_string = Some(v.doc_string.clone());
        }
        vi.metadata_props = kv(&v.metadata);
        if let Some(bytes) = &v.opaque_type {
            vi.type_ = MessageField::some(
                proto::TypeProto::parse_from_bytes(bytes).expect("carried TypeProto"),
            );
        } else if let Some(dt) = v.dtype {
            let mut tt = type_proto::Tensor::new();
            tt.elem_type = Some(dt.to_onnx());
            if let Some(shape) = &v.shape {
                let mut sp = proto::TensorShapeProto::new();
                for d in shape {
                    let mut dim = proto::tensor_shape_proto::Dimension::new();
                    match d {
                        Dim::Known(x) => dim.set_dim_value(*x),
                        Dim::Sym(s) => dim.set_dim_param(s.clone()),
                        Dim::Unknown => {}
                    }
                    sp.dim.push(dim);
                }
                tt.shape = MessageField::some(sp);
            }
            let mut tp = proto::TypeProto::new();
            tp.value = Some(type_proto::Value::TensorType(tt));
            vi.type_ = MessageField::some(tp);
        }
        vi
    }

    fn graph(&mut self, g: &'a Graph) -> proto::GraphProto {
        let mut gp = proto::GraphProto::new();
        gp.name = Some(g.name.clone());
        if !g.doc_string.is_empty() {
            gp.doc_string = Some(g.doc_string.clone());
        }
        gp.metadata_props = kv(&g.metadata);
        gp.input = g.inputs.iter().map(|&i| self.value_info(g, i)).collect();
        gp.output = g.outputs.iter().map(|&i| self.value_info(g, i)).collect();
        for &i in &g.initializers {
            let v = g.value(i);
            let t = v
                .initializer
                .as_ref()
                .expect("initializer value holds a tensor");
            gp.initializer.push(self.tensor(&v.name, t, true));
        }
        gp.sparse_initializer = parse_all(&g.opaque_sparse_initializers);
        gp.quantization_annotation = parse_all(&g.opaque_quantization_annotations);
        let name = |v: &Option<ValueId>| v.map(|v| g.value(v).name.clone()).unwrap_or_default();
        for n in &g.nodes {
            let mut np = proto::NodeProto::new();
            np.input = n.inputs.iter().map(name).collect();
            np.output = n.outputs.iter().map(name).collect();
            np.name = (!n.name.is_empty()).then(|| n.name.clone());
            np.op_type = Some(n.op_type.clone());
            np.domain = (!n.domain.is_empty()).then(|| n.domain.clone());
            np.overload = (!n.overload.is_empty()).then(|| n.overload.clone());
            np.doc_string = (!n.doc_string.is_empty()).then(|| n.doc_string.clone());
            np.metadata_props = kv(&n.metadata);
            np.device_configurations = parse_all(&n.opaque_device_configurations);
            np.attribute = n.attrs.iter().map(|a| self.attribute(a)).collect();
            gp.node.push(np);
        }
        let is_io: std::collections::HashSet<ValueId> =
            g.inputs.iter().chain(&g.outputs).copied().collect();
        let mut referenced = vec![false; g.values.len()];
        for n in &g.nodes {
            for v in n.inputs.iter().chain(&n.outputs).flatten() {
                referenced[v.index()] = true;
            }
        }
        for id in g.value_ids() {
            let v = g.value(id);
            if is_io.contains(&id) {
                continue;
            }
            if v.initializer.is_some() || !referenced[id.index()] {
                // Kept only where the file had them (exporters list initializers too).
                if v.has_value_info {
                    gp.value_info.push(self.value_info(g, id));
                }
                continue;
            }
            if v.hide_shape {
                continue;
            }
            let typed = v.dtype.is_some() || v.opaque_type.is_some();
            if v.has_value_info || (self.opts.all_value_info && typed && v.producer.is_some()) {
                gp.value_info.push(self.value_info(g, id));
            }
        }
        gp
    }

    fn attribute(&mut self, a: &'a Attribute) -> proto::AttributeProto {
        use proto::attribute_proto::AttributeType as AT;
        if let AttrValue::Opaque(bytes) = &a.value {
            return proto::AttributeProto::parse_from_bytes(bytes).expect("carried attribute");
        }
        let mut ap = proto::AttributeProto::new();
        ap.name = Some(a.name.clone());
        ap.ref_attr_name = a.ref_attr_name.clone();
        if !a.doc_string.is_empty() {
            ap.doc_string = Some(a.doc_string.clone());
        }
        let ty = match &a.value {
            AttrValue::Float(f) => {
                ap.f = Some(*f);
                AT::FLOAT
            }
            AttrValue::Int(i) => {
                ap.i = Some(*i);
                AT::INT
            }
            AttrValue::String(s) => {
                ap.s = Some(s.clone());
                AT::STRING
            }
            AttrValue::Tensor(t) => {
                ap.t = MessageField::some(self.tensor("", t, false));
                AT::TENSOR
            }
            AttrValue::Floats(v) => {
                ap.floats = v.clone();
                AT::FLOATS
            }
            AttrValue::Ints(v) => {
                ap.ints = v.clone();
                AT::INTS
            }
            AttrValue::Strings(v) => {
                ap.strings = v.clone();
                AT::STRINGS
            }
            AttrValue::Tensors(v) => {
                ap.tensors = v.iter().map(|t| self.tensor("", t, false)).collect();
                AT::TENSORS
            }
            AttrValue::Opaque(_) => unreachable!("handled above"),
        };
        ap.type_ = Some(EnumOrUnknown::new(ty));
        ap
    }

    fn tensor(&mut self, name: &str, t: &'a Tensor, may_go_external: bool) -> proto::TensorProto {
        let mut tp = proto::TensorProto::new();
        if !name.is_empty() {
            tp.name = Some(name.to_string());
        }
        tp.dims = t.dims.clone();
        tp.data_type = Some(t.dtype.to_onnx());
        if !t.doc_string.is_empty() {
            tp.doc_string = Some(t.doc_string.clone());
        }
        let payload = match &t.data {
            TensorData::Strings(s) => {
                tp.string_data = s.clone();
                return tp;
            }
            TensorData::Raw(b) => {
                let external = may_go_external
                    && self.external_file.is_some()
                    && b.len() as u64 >= EXTERNAL_MIN_BYTES;
                if !external {
                    tp.raw_data = Some(b.to_vec());
                    return tp;
                }
                Payload::Inline(b.as_slice())
            }
            TensorData::External(ext) => Payload::External(ext),
        };
        let len = match &payload {
            Payload::Inline(b) => b.len() as u64,
            Payload::External(ext) => ext.length.or(t.size_bytes()).unwrap_or(0),
        };
        let offset = self.next_offset;
        self.next_offset = (offset + len).div_ceil(ALIGN) * ALIGN;
        let location = self
            .external_file
            .clone()
            .expect("external tensors imply a side file");
        tp.data_location = Some(EnumOrUnknown::new(DataLocation::EXTERNAL));
        tp.external_data = kv(&[
            ("location".to_string(), location),
            ("offset".to_string(), offset.to_string()),
            ("length".to_string(), len.to_string()),
        ]);
        self.pending.push(PendingData {
            tensor: name.to_string(),
            payload,
            expected: t.size_bytes(),
        });
        tp
    }
}

/// Writes the side file: each pending tensor at its aligned offset, streamed from its
/// source so that weights are never all in memory at once.
pub(crate) fn write_side_file(
    out: &mut impl Write,
    pending: &[PendingData<'_>],
    src_model: &Path,
    src_dir: Option<&Path>,
    out_path: &Path,
) -> Result<(), OnnxError> {
    let mut pos = 0u64;
    let io = |e| OnnxError::write(out_path, e);
    for p in pending {
        let aligned = pos.div_ceil(ALIGN) * ALIGN;
        if aligned > pos {
            out.write_all(&vec![0u8; (aligned - pos) as usize])
                .map_err(io)?;
            pos = aligned;
        }
        match &p.payload {
            Payload::Inline(b) => {
                out.write_all(b).map_err(io)?;
                pos += b.len() as u64;
            }
            Payload::External(ext) => {
                let Some(dir) = src_dir else {
                    return Err(OnnxError::Serialize {
                        path: out_path.to_path_buf(),
                        reason: format!(
                            "tensor '{}' has external data at '{}' but the model has no folder \
                             to read it from",
                            p.tensor, ext.location
                        ),
                    });
                };
                let (mut r, len) = open_external(src_model, dir, &p.tensor, ext, p.expected)?;
                let copied = std::io::copy(&mut r, out).map_err(io)?;
                if copied != len {
                    return Err(OnnxError::ExternalShort {
                        path: src_model.to_path_buf(),
                        tensor: p.tensor.clone(),
                        location: ext.location.clone(),
                        offset: ext.offset,
                        needed: len,
                        available: copied,
                    });
                }
                pos += len;
            }
        }
    }
    Ok(())
}
