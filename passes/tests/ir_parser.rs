//! The IR text parser: what it rebuilds from each form, and errors that name line and column.

use onnx_ac_passes::ir::{
    parse_graph, parse_model, print_model, print_model_with_data, AttrValue, DType, Dim, Tensor,
};

fn err(text: &str) -> (usize, usize, String) {
    let e = parse_model(text).expect_err("the text is not valid");
    (e.line, e.column, e.message)
}

const HEAD: &str = "model ir=8 opsets=[ai.onnx=17] graph=g\n";

#[test]
fn data_form_rebuilds_contents_types_and_hidden_values() {
    let text = format!(
        "{HEAD}input  x: f32[batch,4]
init   w: f32[4,2] = [1.0, -2.5, 0.0, -0.0, 3e-8, NaN, inf, 1.0]
init   s: i64[2] = [-1, 2]
init   big: f32[100]
init   h: f16[2] = [0.5, 65504.0]
init   m: bool[2] = [true, false]
init   names: string[1] = [\"a, \\\"b\\\"\"]
y: f32[batch,2] hidden, _ = Op(x, _, w) {{a=1, b=1.0, c=[1,2], d=[1.5,2.0], e=\"x, y}}\", f=tensor<i64[2]>[4, 8], g=[\"u\", \"v\"], scales=[1.0,2.0], t=[tensor<f32[]>[1.0], tensor<i32[1]>[7]]}}
output y: f32[batch,2] hidden
"
    );
    let m = parse_model(&text).unwrap();
    assert_eq!(print_model_with_data(&m), text);
    let g = &m.graph;
    let ids = g.value_by_name();
    let y = g.value(ids["y"]);
    assert!(y.hide_shape);
    assert_eq!(y.dtype, Some(DType::Float));
    assert_eq!(y.shape, Some(vec![Dim::Sym("batch".into()), Dim::Known(2)]));
    let s = g.value(ids["s"]).initializer.as_ref().unwrap();
    assert_eq!(s.as_i64(), Some(vec![-1, 2]));
    // Larger tensors are zeros.
    let big = g.value(ids["big"]).initializer.as_ref().unwrap();
    assert_eq!(big.as_f64(), Some(vec![0.0; 100]));
    let h = g.value(ids["h"]).initializer.as_ref().unwrap();
    assert_eq!(h.as_f64(), Some(vec![0.5, 65504.0]));
    let n = &g.nodes[0];
    assert_eq!(n.inputs.len(), 3);
    assert!(n.inputs[1].is_none() && n.outputs[1].is_none());
    assert_eq!(n.attr("a"), Some(&AttrValue::Int(1)));
    assert_eq!(n.attr("b"), Some(&AttrValue::Float(1.0)));
    assert_eq!(n.attr("c"), Some(&AttrValue::Ints(vec![1, 2])));
    assert_eq!(n.attr("d"), Some(&AttrValue::Floats(vec![1.5, 2.0])));
    assert_eq!(n.attr("scales"), Some(&AttrValue::Floats(vec![1.0, 2.0])));
    assert_eq!(n.attr_string("e").as_deref(), Some("x, y}"));
    assert_eq!(
        n.attr("f"),
        Some(&AttrValue::Tensor(Tensor::from_i64(vec![2], &[4, 8])))
    );
    // The snapshot form of the same graph parses too, and prints the same.
    let plain = print_model(&m);
    assert_ne!(plain, text);
    let from_plain = parse_model(&plain).unwrap();
    assert_eq!(print_model(&from_plain), plain);
    // There, `scales=[1,2]` is a float list by its name; `c=[1,2]` stays ints; tensors and
    // string lists without contents hold zeros and empty strings.
    let n = &from_plain.graph.nodes[0];
    assert!(plain.contains("scales=[1,2]") && plain.contains("g=[2 strings]"));
    assert_eq!(n.attr("scales"), Some(&AttrValue::Floats(vec![1.0, 2.0])));
    assert_eq!(n.attr("c"), Some(&AttrValue::Ints(vec![1, 2])));
    assert_eq!(
        n.attr("f"),
        Some(&AttrValue::Tensor(Tensor::from_i64(vec![2], &[0, 0])))
    );
    assert_eq!(n.attr("g"), Some(&AttrValue::Strings(vec![vec![], vec![]])));
    // A small tensor without contents (here: from the snapshot form) holds zeros, which the
    // data form then prints.
    let s = from_plain
        .graph
        .value(from_plain.graph.value_by_name()["s"]);
    assert_eq!(s.initializer.as_ref().unwrap().as_i64(), Some(vec![0, 0]));
}

#[test]
fn names_may_hold_separators_of_the_format() {
    let text = format!(
        "{HEAD}input  a: b: f32[2]
onnx::Mul_0: f32[2] = com.example::Op(a: b) {{k=\"v\"}}
 = Sink(onnx::Mul_0)
output onnx::Mul_0: f32[2]
"
    );
    let m = parse_model(&text).unwrap();
    assert_eq!(print_model(&m), text);
    assert_eq!(m.graph.nodes[0].domain, "com.example");
    assert!(m.graph.nodes[1].outputs.is_empty());
}

#[test]
fn errors_name_line_and_column() {
    // Line 3 (the header is line 1, the comment line 2), column of the unknown type.
    let (l, c, m) = err(&format!("{HEAD}; a comment\ninput  x: q32[2]\n"));
    assert_eq!((l, c), (3, 11), "{m}");
    assert!(m.contains("unknown element type 'q32'"), "{m}");
    // A value read but never defined: the column of the reference.
    let (l, c, m) = err(&format!("{HEAD}y: f32[2] = Relu(nope)\noutput y: f32[2]\n"));
    assert_eq!((l, c), (2, 18), "{m}");
    assert!(m.contains("'nope' is read"), "{m}");
    // A second definition.
    let (l, c, m) = err(&format!("{HEAD}input  x: f32[2]\nx: f32[2] = Relu(x)\n"));
    assert_eq!((l, c), (3, 1), "{m}");
    assert!(m.contains("already defined on line 2"), "{m}");
    // A graph attribute cannot be rebuilt.
    let (l, c, m) = err(&format!(
        "{HEAD}input  x: bool[]\ny: f32[2] = If(x) {{else_branch=<opaque>}}\n"
    ));
    assert_eq!((l, c), (3, 32), "{m}");
    assert!(m.contains("'else_branch'"), "{m}");
    // Too many elements for the type.
    let (l, c, m) = err(&format!("{HEAD}init   s: i64[2] = [1, 2, 3]\n"));
    assert_eq!((l, c), (2, 20), "{m}");
    assert!(m.contains("3 elements for a tensor of 2"), "{m}");
    // A value out of its type's range.
    let (l, c, m) = err(&format!("{HEAD}init   s: u8[2] = [1, 300]\n"));
    assert_eq!((l, c), (2, 23), "{m}");
    assert!(m.contains("'300' is not a u8 value"), "{m}");
    // An output typed otherwise than its definition.
    let (l, _, m) = err(&format!("{HEAD}input  x: f32[2]\noutput x: f32[3]\n"));
    assert_eq!(l, 3, "{m}");
    // No header.
    let (l, c, m) = err("input  x: f32[2]\n");
    assert_eq!((l, c), (1, 1), "{m}");
    // The display names both.
    let e = parse_model("model ir=x").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 1, column 10: the IR version is not an integer"
    );
}

#[test]
fn a_graph_without_header_parses() {
    let g = parse_graph("input  x: f32[?]\ny: ?[?] = Relu(x)\noutput y: ?[?]\n").unwrap();
    assert_eq!(g.value(g.inputs[0]).shape, None);
    assert_eq!(g.nodes.len(), 1);
}

/// Every synthetic model of the passes crate round-trips in both forms, but for the data
/// form of small external tensors: their bytes are not in memory, so the data form prints
/// none, and the parsed graph holds zeros, which it prints.
#[test]
fn synthetic_models_round_trip() {
    use onnx_ac_passes::synth;
    let external = synth::external_mlp(2, 8, 4, "w.bin");
    for m in [synth::transformer_with_nodes(300), synth::wide_model(40)] {
        for print in [print_model, print_model_with_data] {
            let text = print(&m);
            let again = print(&parse_model(&text).unwrap());
            assert_eq!(again, text);
        }
    }
    let text = print_model(&external);
    assert_eq!(print_model(&parse_model(&text).unwrap()), text);
    let text = print_model_with_data(&external);
    assert!(text.contains("init   w0: f32[8,8]\n"));
    let again = print_model_with_data(&parse_model(&text).unwrap());
    assert!(again.contains("init   w0: f32[8,8] = [0.0, 0.0,"));
}

/// Texts printed without contents cannot make a parse allocate without bound.
#[test]
fn filler_tensors_are_bounded() {
    let (l, c, m) = err(&format!(
        "{HEAD}init   a: u8[209715200]\ninit   b: u8[209715200]\n"
    ));
    assert_eq!((l, c), (3, 8), "{m}");
    assert!(m.contains("exceed 256 MiB together"), "{m}");
}

/// Every prefix of a valid text, and the text with any one character removed, parses or
/// fails with an error: never a panic (the parser reads hand-written, untrusted text).
#[test]
fn damaged_texts_fail_cleanly() {
    let text = format!(
        "{HEAD}input  x: f32[batch,4]
init   s: i64[2] = [-1, 2]
init   n: string[1] = [\"a\\u{{e9}}\\\"\"]
y: f32[batch,2] hidden, _ = ns::Op(x, _, s) {{a=1, b=1.5, c=[1,2], e=\"x, y}}\", f=tensor<f16[2]>[0.5, 2.0], t=[tensor<i8[1]>[3]], w=[2 strings]}}
output y: f32[batch,2] hidden
"
    );
    parse_model(&text).unwrap();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for &(k, ch) in &chars {
        let _ = parse_model(&text[..k]);
        let cut = format!("{}{}", &text[..k], &text[k + ch.len_utf8()..]);
        let _ = parse_model(&cut);
    }
}

/// The snapshot form's list placeholders are bounded too.
#[test]
fn placeholder_lists_are_bounded() {
    let (l, c, m) = err(&format!(
        "{HEAD}input  x: f32[2]\ny: f32[2] = Op(x) {{s=[99999999999999 strings]}}\n"
    ));
    assert_eq!((l, c), (3, 22), "{m}");
    assert!(m.contains("too long"), "{m}");
}
