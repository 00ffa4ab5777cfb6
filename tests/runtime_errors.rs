//! Error messages say what to do (no ONNX Runtime needed).

use onnx_ac::runtime::{RuntimeError, INSTALL_HINT};
use std::path::PathBuf;

#[test]
fn missing_or_old_runtime_says_how_to_install_it() {
    let not_found = RuntimeError::NotFound {
        searched: vec!["--ort-lib (not given)".into(), "/x/.venv/lib".into()],
    };
    let too_old = RuntimeError::TooOld {
        path: PathBuf::from("/usr/lib/libonnxruntime.so.1.17.0"),
        version: "1.17.0".into(),
    };
    for e in [&not_found, &too_old] {
        let msg = e.to_string();
        assert!(msg.contains("bash scripts/setup.sh"), "{msg}");
        assert!(
            msg.contains("python3 -m pip install onnxruntime==1.31.1"),
            "{msg}"
        );
    }
    assert!(not_found.to_string().contains("/x/.venv/lib"));
    assert!(too_old.to_string().contains("1.17.0"));
    assert!(too_old.to_string().contains("1.31 or newer"));
    assert!(INSTALL_HINT.contains("--ort-lib"));
}

#[test]
fn cuda_error_says_what_is_needed() {
    let msg = RuntimeError::CudaUnavailable {
        reason: "no CUDA provider".into(),
    }
    .to_string();
    for needle in [
        "onnxruntime-gpu==1.31.1",
        "--ort-lib",
        "GPU",
        "no CUDA provider",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in {msg}");
    }
}
