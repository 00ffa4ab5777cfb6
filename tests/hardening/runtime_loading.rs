//! ONNX Runtime is loaded only from where the user says, never from the working directory.

use super::*;

/// A folder planted with an `onnxruntime.py` that leaves a marker when imported and a fake
/// `.venv` library: running onnx-ac from it (the runtime found the normal way) imports
/// neither. Before the fix `python3 -c "import onnxruntime"` ran the planted module.
#[test]
fn planted_onnxruntime_in_cwd_is_never_imported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let marker = common::plant_runtime_trap(dir);
    let dir_s = dir.to_str().unwrap();
    let model = root("fixtures/models/mlp.ts17.onnx");
    let model = model.to_str().unwrap();
    // PYTHONPATH pointing at the folder is ignored too (python3 runs with -I).
    let env = [("PYTHONPATH", dir_s)];
    for args in [
        vec!["profile", model, "-o", "p.json", "--runs", "1"],
        vec![model, "--budget", "100%", "-o", "out.onnx", "--runs", "1"],
    ] {
        let o = run_in(dir, &args, &env);
        let err = stderr(&o);
        assert!(!marker.exists(), "{args:?}: the planted module ran\n{err}");
        assert!(!err.contains(dir_s), "{args:?}: looked in the cwd: {err}");
        // With ONNX Runtime installed the normal way (bash scripts/setup.sh) the run succeeds
        // on the real library; without one it is refused, never served by the fake.
        match o.status.code() {
            Some(0) => {}
            Some(2) => assert!(err.contains("ONNX Runtime library not found"), "{err}"),
            c => panic!("{args:?}: exit {c:?}\n{err}"),
        }
    }
}

/// `--ort-lib` naming nothing is an error in the main command whatever the cost model (it
/// used to fall back to the analytic model silently), and so is a bad `ORT_DYLIB_PATH`.
#[test]
fn bad_ort_lib_is_an_error_in_the_main_command() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.onnx");
    let o = out.to_str().unwrap();
    let bogus = tmp.path().join("no-such-libonnxruntime.so");
    let b = bogus.to_str().unwrap();
    let model = root("fixtures/models/mlp.ts17.onnx");
    let m = model.to_str().unwrap();
    for extra in [&[][..], &["--cost", "fixed"], &["--cost", "analytic"]] {
        let mut args = vec![m, "--budget", "2GB", "-o", o, "--ort-lib", b];
        args.extend_from_slice(extra);
        let r = run_in(tmp.path(), &args, &[]);
        let line = assert_refused(&format!("{extra:?}"), &r);
        assert!(line.contains("--ort-lib") && line.contains(b), "{line}");
        assert!(!out.exists());
    }
    let r = run_in(
        tmp.path(),
        &[m, "--budget", "2GB", "-o", o],
        &[("ORT_DYLIB_PATH", b)],
    );
    let line = assert_refused("ORT_DYLIB_PATH", &r);
    assert!(line.contains("ORT_DYLIB_PATH"), "{line}");
    assert!(!out.exists());
}
