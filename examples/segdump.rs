//! Prints the checkpoints and segments `segments.rs` finds in a model's training graph.
//! `cargo run --release --example segdump -- MODEL.onnx`
use onnx_ac_passes::synth::cross_entropy;
use std::collections::BTreeMap;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (tm, info) = onnx_ac::load_training_graph(
        std::path::Path::new(&a[0]),
        &BTreeMap::new(),
        &cross_entropy(),
    )
    .unwrap();
    let g = &tm.graph;
    for b in onnx_ac::plan::segments::boundaries(g, &info) {
        println!("boundary {} {:?}", g.value(b).name, g.value_bytes(b));
    }
    let s = onnx_ac::plan::segments::Segments::new(g, &info);
    println!("{}", s.describe(g));
}
