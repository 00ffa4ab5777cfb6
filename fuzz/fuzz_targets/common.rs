//! Shared by the fuzz targets: the input bytes become a model file in a private folder
//! (the loader reads files; external data is resolved beneath that folder, which holds
//! nothing else).

use std::path::PathBuf;
use std::sync::OnceLock;

pub fn model_file(data: &[u8]) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("onnx-ac-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    });
    let path = dir.join("model.onnx");
    std::fs::write(&path, data).unwrap();
    path
}

/// An error must be one line (exit 2 or 3: bad input, budget); exit 1 is an internal
/// error, which a fuzzed input must never reach.
pub fn check_error(e: &onnx_ac::Error) {
    let code = e.exit_code();
    let msg = e.to_string();
    assert!(code == 2 || code == 3, "exit code {code}: {msg}");
}
