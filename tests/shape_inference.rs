//! Shape inference on every fixture: the inferred graph is snapshotted in the stable text
//! form, and every value's inferred type and shape is compared with what ONNX Runtime
//! actually produces on the fixture's input batch.

mod common;

use onnx_ac_passes::ir::{print_graph, static_dims};
use std::collections::BTreeMap;

fn dims_for(stem: &str) -> BTreeMap<String, i64> {
    let mut d = BTreeMap::new();
    if stem.starts_with("mlp_dynbatch") {
        d.insert("batch".to_string(), 8);
    }
    if stem.contains("_dynamic") {
        // The reference batch of the symbolic-shape fixtures is (2, 16).
        d.insert("batch".to_string(), 2);
        d.insert("seq".to_string(), 16);
    }
    d
}

fn ref_for(stem: &str) -> std::path::PathBuf {
    let base = stem.replace("mlp_dynbatch", "mlp");
    common::root().join(format!("fixtures/models/{base}.ref.pb"))
}

#[test]
fn inferred_graphs_snapshot() {
    for path in common::fixture_models() {
        let stem = common::stem(&path);
        let m = onnx_ac::load_model(&path, &dims_for(&stem)).unwrap();
        insta::assert_snapshot!(format!("infer_{stem}"), print_graph(&m.graph));
    }
}

#[test]
fn every_value_matches_onnx_runtime() {
    for path in common::fixture_models() {
        let stem = common::stem(&path);
        let m = onnx_ac::load_model(&path, &dims_for(&stem)).unwrap();
        let json = common::run_py(
            "ort_shapes.py",
            &[path.to_str().unwrap(), ref_for(&stem).to_str().unwrap()],
        );
        let actual: BTreeMap<String, (i32, Vec<i64>)> = serde_json::from_str(&json).unwrap();
        let g = &m.graph;
        let mut checked = 0;
        for id in g.value_ids() {
            let v = g.value(id);
            let Some((dt, shape)) = actual.get(&v.name) else {
                continue;
            };
            let ours_dt = v.dtype.map(|d| d.to_onnx());
            let ours_shape = v.shape.as_ref().and_then(|s| static_dims(s));
            assert_eq!(ours_dt, Some(*dt), "{stem}: dtype of '{}'", v.name);
            assert_eq!(
                ours_shape.as_ref(),
                Some(shape),
                "{stem}: shape of '{}'",
                v.name
            );
            checked += 1;
        }
        let graph_outputs = g.outputs.len();
        assert!(
            checked >= g.nodes.len() / 2 + graph_outputs,
            "{stem}: only {checked} values compared"
        );
    }
}
