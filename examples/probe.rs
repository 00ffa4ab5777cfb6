fn main() {
    for p in std::env::args().skip(1) {
        let path = std::path::Path::new(&p);
        match onnx_ac::onnx::load(path) {
            Err(e) => println!("{p}: LOAD ERROR {e}"),
            Ok(mut m) => {
                let opset = m.opset().unwrap();
                match onnx_ac_passes::infer::infer_shapes(&mut m.graph, opset) {
                    Err(e) => println!("{p}: INFER ERROR {e}"),
                    Ok(s) => {
                        let unknown = m
                            .graph
                            .values
                            .iter()
                            .filter(|v| {
                                v.producer.is_some()
                                    && (v.shape.is_none()
                                        || v.shape
                                            .as_ref()
                                            .unwrap()
                                            .iter()
                                            .any(|d| d.known().is_none()))
                            })
                            .count();
                        println!(
                            "{p}: ok nodes={} folded={} byfile={} unknown-shapes={unknown}",
                            m.graph.nodes.len(),
                            s.folded,
                            s.typed_by_file.len()
                        );
                    }
                }
            }
        }
    }
}
