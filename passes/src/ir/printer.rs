//! The stable text form of a graph: the snapshot format of every pass test. One line per
//! input, initializer, node and output; values by name with dtype and shape.
//!
//! Two forms. [`print_model`] is the snapshot form: tensor contents are left out. The data
//! form, [`print_model_with_data`], adds what a pass reads that the snapshot form drops, so
//! that [`super::parse_model`] can rebuild a graph the passes run on: the contents of small
//! tensors (at most [`MAX_PRINTED_ELEMENTS`] elements: `init shape: i64[2] = [4, 8]`,
//! `value=tensor<i64[2]>[4, 8]`), the full lists of float, string and tensor attributes, and
//! ` hidden` after the type of a value whose dims ONNX Runtime must not learn
//! (`Value::hide_shape`). The data form of a graph without small tensors, such lists or
//! hidden values is its snapshot form.

use super::graph::{AttrValue, Graph, Model, ValueId};
use super::tensor::{f16_to_f32, Tensor, TensorData};
use super::types::{shape_string, DType};
use std::fmt::Write;

/// Tensors with at most this many elements have their contents in the data form.
pub const MAX_PRINTED_ELEMENTS: u64 = 64;

fn value_type(g: &Graph, v: ValueId, data: bool) -> String {
    let val = g.value(v);
    let ty = match val.dtype {
        Some(d) => format!("{d}{}", shape_string(val.shape.as_ref())),
        None if val.opaque_type.is_some() => "opaque".into(),
        None => format!("?{}", shape_string(val.shape.as_ref())),
    };
    if data && val.hide_shape {
        ty + " hidden"
    } else {
        ty
    }
}

/// The contents of a small tensor with known bytes, `[1.0, 2.5]`: integers in decimal,
/// floats by their shortest exact form (f16 and bf16 as the f32 they convert to), bools as
/// `true`/`false`, strings quoted. `None` for a larger tensor, external bytes, a byte count
/// that does not match the dims, or an element type without a text form (complex, float8).
pub fn tensor_data_text(t: &Tensor) -> Option<String> {
    if t.numel() > MAX_PRINTED_ELEMENTS {
        return None;
    }
    let items: Vec<String> = match &t.data {
        TensorData::Strings(s) if t.dtype == DType::String && s.len() as u64 == t.numel() => s
            .iter()
            .map(|x| format!("{:?}", String::from_utf8_lossy(x)))
            .collect(),
        TensorData::Raw(b) => {
            let w = t.dtype.size_bytes()? as usize;
            if b.len() as u64 != t.numel() * w as u64 {
                return None;
            }
            let chunks = b.chunks_exact(w);
            let arr = |c: &[u8]| -> [u8; 8] {
                let mut a = [0u8; 8];
                a[..c.len()].copy_from_slice(c);
                a
            };
            match t.dtype {
                DType::Float => chunks
                    .map(|c| format!("{:?}", f32::from_le_bytes(c.try_into().unwrap())))
                    .collect(),
                DType::Double => chunks
                    .map(|c| format!("{:?}", f64::from_le_bytes(arr(c))))
                    .collect(),
                DType::Float16 => chunks
                    .map(|c| format!("{:?}", f16_to_f32(u16::from_le_bytes([c[0], c[1]]))))
                    .collect(),
                DType::BFloat16 => chunks
                    .map(|c| {
                        let bits = u32::from(u16::from_le_bytes([c[0], c[1]])) << 16;
                        format!("{:?}", f32::from_bits(bits))
                    })
                    .collect(),
                DType::Bool => chunks.map(|c| (c[0] != 0).to_string()).collect(),
                DType::Int8 => chunks.map(|c| (c[0] as i8).to_string()).collect(),
                DType::Uint8 => chunks.map(|c| c[0].to_string()).collect(),
                DType::Int16 => chunks
                    .map(|c| i16::from_le_bytes([c[0], c[1]]).to_string())
                    .collect(),
                DType::Uint16 => chunks
                    .map(|c| u16::from_le_bytes([c[0], c[1]]).to_string())
                    .collect(),
                DType::Int32 => chunks
                    .map(|c| i32::from_le_bytes(c.try_into().unwrap()).to_string())
                    .collect(),
                DType::Uint32 => chunks
                    .map(|c| u32::from_le_bytes(c.try_into().unwrap()).to_string())
                    .collect(),
                DType::Int64 => chunks
                    .map(|c| i64::from_le_bytes(arr(c)).to_string())
                    .collect(),
                DType::Uint64 => chunks
                    .map(|c| u64::from_le_bytes(arr(c)).to_string())
                    .collect(),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(format!("[{}]", items.join(", ")))
}

fn tensor_text(t: &Tensor, data: bool) -> String {
    let head = format!("tensor<{}{:?}>", t.dtype, t.dims);
    match data.then(|| tensor_data_text(t)).flatten() {
        Some(d) => head + &d,
        None => head,
    }
}

fn attr_text(a: &AttrValue, data: bool) -> String {
    fn list<T: std::fmt::Display>(v: &[T]) -> String {
        let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        format!("[{}]", parts.join(","))
    }
    match a {
        AttrValue::Float(f) => format!("{f:?}"),
        AttrValue::Int(i) => i.to_string(),
        AttrValue::String(s) => format!("{:?}", String::from_utf8_lossy(s)),
        AttrValue::Tensor(t) => tensor_text(t, data),
        // The data form writes floats with a point, so that `[1.0,2.0]` is not read as ints.
        AttrValue::Floats(v) if data => {
            let parts: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
            format!("[{}]", parts.join(","))
        }
        AttrValue::Floats(v) => list(v),
        AttrValue::Ints(v) => list(v),
        AttrValue::Strings(v) if data => {
            let parts: Vec<String> = v
                .iter()
                .map(|s| format!("{:?}", String::from_utf8_lossy(s)))
                .collect();
            format!("[{}]", parts.join(", "))
        }
        AttrValue::Strings(v) => format!("[{} strings]", v.len()),
        AttrValue::Tensors(v) if data => {
            let parts: Vec<String> = v.iter().map(|t| tensor_text(t, true)).collect();
            format!("[{}]", parts.join(", "))
        }
        AttrValue::Tensors(v) => format!("[{} tensors]", v.len()),
        AttrValue::Opaque(_) => "<opaque>".into(),
    }
}

fn print_graph_as(g: &Graph, data: bool) -> String {
    let mut s = String::new();
    let name = |v: ValueId| g.value(v).name.clone();
    for &i in &g.inputs {
        let _ = writeln!(s, "input  {}: {}", name(i), value_type(g, i, data));
    }
    for &i in &g.initializers {
        let contents = match &g.value(i).initializer {
            Some(t) if data => tensor_data_text(t).map(|d| format!(" = {d}")),
            _ => None,
        };
        let _ = writeln!(
            s,
            "init   {}: {}{}",
            name(i),
            value_type(g, i, data),
            contents.unwrap_or_default()
        );
    }
    for n in &g.nodes {
        let outs: Vec<String> = n
            .outputs
            .iter()
            .map(|o| match o {
                Some(o) => format!("{}: {}", name(*o), value_type(g, *o, data)),
                None => "_".into(),
            })
            .collect();
        let ins: Vec<String> = n
            .inputs
            .iter()
            .map(|i| i.map(name).unwrap_or_else(|| "_".into()))
            .collect();
        let dom = if n.domain.is_empty() {
            String::new()
        } else {
            format!("{}::", n.domain)
        };
        let mut attrs: Vec<String> = n
            .attrs
            .iter()
            .map(|a| format!("{}={}", a.name, attr_text(&a.value, data)))
            .collect();
        attrs.sort();
        let attrs = if attrs.is_empty() {
            String::new()
        } else {
            format!(" {{{}}}", attrs.join(", "))
        };
        let _ = writeln!(
            s,
            "{} = {dom}{}({}){attrs}",
            outs.join(", "),
            n.op_type,
            ins.join(", ")
        );
    }
    for &o in &g.outputs {
        let _ = writeln!(s, "output {}: {}", name(o), value_type(g, o, data));
    }
    s
}

pub fn print_graph(g: &Graph) -> String {
    print_graph_as(g, false)
}

/// [`print_graph`] in the data form (module doc).
pub fn print_graph_with_data(g: &Graph) -> String {
    print_graph_as(g, true)
}

fn print_model_as(m: &Model, data: bool) -> String {
    let ops: Vec<String> = m
        .opset_imports
        .iter()
        .map(|(d, v)| format!("{}={v}", if d.is_empty() { "ai.onnx" } else { d }))
        .collect();
    format!(
        "model ir={} opsets=[{}] graph={}\n{}",
        m.ir_version,
        ops.join(","),
        m.graph.name,
        print_graph_as(&m.graph, data)
    )
}

pub fn print_model(m: &Model) -> String {
    print_model_as(m, false)
}

/// [`print_model`] in the data form (module doc): what [`super::parse_model`] reads back
/// into a graph the passes run on.
pub fn print_model_with_data(m: &Model) -> String {
    print_model_as(m, true)
}
