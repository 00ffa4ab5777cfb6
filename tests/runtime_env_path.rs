//! `ORT_DYLIB_PATH` naming nothing is an error that says what to do, not a panic inside `ort`.
//! Its own test binary (one test): it sets a process-wide environment variable.

use onnx_ac::runtime::{init, loaded_library, run_model, HostTensor, RunOptions, RuntimeError};

#[test]
fn ort_dylib_path_pointing_at_nothing_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bogus = dir.path().join("no-such-libonnxruntime.so");
    std::env::set_var("ORT_DYLIB_PATH", &bogus);

    let e = init(None).unwrap_err();
    assert!(matches!(e, RuntimeError::BadLibraryPath { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("ORT_DYLIB_PATH"), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(msg.contains("bash scripts/setup.sh"), "{msg}");
    assert!(
        msg.contains("python3 -m pip install onnxruntime==1.31.1"),
        "{msg}"
    );
    assert!(loaded_library().is_none());

    // Running a model reports the same error (before even looking at the model).
    let x = HostTensor::from_f32("x", &[1], &[1.0]).unwrap();
    let e = run_model(
        &dir.path().join("m.onnx"),
        &[x],
        None,
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, RuntimeError::BadLibraryPath { .. }), "{e:?}");

    // A file that is not a library fails to load, also without a panic.
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, b"not a shared object").expect("write");
    std::env::set_var("ORT_DYLIB_PATH", &fake);
    let e = init(None).unwrap_err();
    assert!(matches!(e, RuntimeError::LoadFailed { .. }), "{e:?}");
    assert!(e.to_string().contains("bash scripts/setup.sh"), "{e}");

    // An explicit path wins over the variable; a directory holding the library works too.
    std::env::remove_var("ORT_DYLIB_PATH");
    let e = init(Some(dir.path().join("nothing-here").as_path())).unwrap_err();
    assert!(matches!(e, RuntimeError::BadLibraryPath { .. }), "{e:?}");
    assert!(e.to_string().contains("--ort-lib"), "{e}");

    // Nothing above loaded anything, so the normal search still works afterwards.
    let lib = init(None).unwrap_or_else(|e| panic!("this test needs ONNX Runtime 1.31: {e}"));
    assert!(lib.path.is_file());
}
