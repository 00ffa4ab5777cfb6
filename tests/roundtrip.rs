//! Load → save keeps everything (nodes, attributes, initializers, opsets, value_info,
//! metadata, doc strings), the saved file passes onnx.checker's full check, and loading it
//! again gives the same IR.

mod common;

use onnx_ac::onnx::{load, save, SaveOptions};

#[test]
fn every_fixture_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let keep_only_file_info = SaveOptions {
        all_value_info: false,
    };
    for path in common::fixture_models() {
        let m = load(&path).unwrap();
        let out = dir.path().join(format!("{}.onnx", common::stem(&path)));
        save(&m, &out, &keep_only_file_info).unwrap();
        let again = load(&out).unwrap();
        let mut m2 = m.clone();
        m2.base_dir = again.base_dir.clone();
        assert!(
            m2 == again,
            "{}: IR differs after a round trip",
            path.display()
        );
        let report = common::run_py(
            "compare_models.py",
            &[path.to_str().unwrap(), out.to_str().unwrap()],
        );
        assert!(report.starts_with("ok"), "{report}");
    }
}

#[test]
fn saving_twice_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::root().join("fixtures/models/gpt2.dyn18.onnx");
    let m = onnx_ac::load_model(&path, &Default::default()).unwrap();
    let (a, b) = (dir.path().join("a.onnx"), dir.path().join("b.onnx"));
    save(&m, &a, &SaveOptions::default()).unwrap();
    save(&m, &b, &SaveOptions::default()).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}
