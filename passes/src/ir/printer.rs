//! The stable text form of a graph: the snapshot format of every pass test. One line per
//! input, initializer, node and output; values by name with dtype and shape.

use super::graph::{AttrValue, Graph, Model, ValueId};
use super::types::shape_string;
use std::fmt::Write;

fn value_type(g: &Graph, v: ValueId) -> String {
    let val = g.value(v);
    match val.dtype {
        Some(d) => format!("{d}{}", shape_string(val.shape.as_ref())),
        None if val.opaque_type.is_some() => "opaque".into(),
        None => format!("?{}", shape_string(val.shape.as_ref())),
    }
}

fn attr_text(a: &AttrValue) -> String {
    fn list<T: std::fmt::Display>(v: &[T]) -> String {
        let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        format!("[{}]", parts.join(","))
    }
    match a {
        AttrValue::Float(f) => format!("{f:?}"),
        AttrValue::Int(i) => i.to_string(),
        AttrValue::String(s) => format!("{:?}", String::from_utf8_lossy(s)),
        AttrValue::Tensor(t) => format!("tensor<{}{:?}>", t.dtype, t.dims),
        AttrValue::Floats(v) => list(v),
        AttrValue::Ints(v) => list(v),
        AttrValue::Strings(v) => format!("[{} strings]", v.len()),
        AttrValue::Tensors(v) => format!("[{} tensors]", v.len()),
        AttrValue::Opaque(_) => "<opaque>".into(),
    }
}

pub fn print_graph(g: &Graph) -> String {
    let mut s = String::new();
    let name = |v: ValueId| g.value(v).name.clone();
    for &i in &g.inputs {
        let _ = writeln!(s, "input  {}: {}", name(i), value_type(g, i));
    }
    for &i in &g.initializers {
        let _ = writeln!(s, "init   {}: {}", name(i), value_type(g, i));
    }
    for n in &g.nodes {
        let outs: Vec<String> = n
            .outputs
            .iter()
            .map(|o| match o {
                Some(o) => format!("{}: {}", name(*o), value_type(g, *o)),
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
            .map(|a| format!("{}={}", a.name, attr_text(&a.value)))
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
        let _ = writeln!(s, "output {}: {}", name(o), value_type(g, o));
    }
    s
}

pub fn print_model(m: &Model) -> String {
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
        print_graph(&m.graph)
    )
}
