//! The protobuf binding in `src/onnx/proto/onnx.rs` is generated code checked in so that a
//! normal build needs no code generator. This test regenerates it from the checked-in
//! `onnx.proto` and fails if the two differ. `ONNX_AC_REGENERATE=1` rewrites the file instead.

use std::path::Path;

#[test]
fn checked_in_binding_matches_onnx_proto() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let proto_dir = root.join("src/onnx/proto");
    let out = tempfile::tempdir().unwrap();
    protobuf_codegen::Codegen::new()
        .pure()
        .include(&proto_dir)
        .input(proto_dir.join("onnx.proto"))
        .out_dir(out.path())
        .run()
        .expect("protobuf codegen");
    let fresh = std::fs::read_to_string(out.path().join("onnx.rs")).unwrap();
    let target = proto_dir.join("onnx.rs");
    if std::env::var_os("ONNX_AC_REGENERATE").is_some() {
        std::fs::write(&target, &fresh).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&target).unwrap();
    assert!(
        fresh == checked_in,
        "src/onnx/proto/onnx.rs is stale: run `ONNX_AC_REGENERATE=1 cargo test --test proto_codegen`"
    );
}
