//! What the signal handler does (issue #12, item 9), in process: staged outputs and guarded
//! temporary folders are registered from the moment they exist and removed by
//! `remove_registered`. Its own test binary (one test): the registry is process-wide.

use onnx_ac::output::{remove_registered, Staging, TempGuard};

#[test]
fn staged_outputs_and_guarded_folders_are_removed() {
    let t = tempfile::tempdir().unwrap();
    let mut s = Staging::new();
    s.write(&t.path().join("a.onnx"), b"x").unwrap();
    s.write(&t.path().join("a.onnx.data"), b"y").unwrap();
    let d = tempfile::tempdir_in(t.path()).unwrap();
    std::fs::write(d.path().join("training.onnx"), b"z").unwrap();
    let guard = TempGuard::new(d.path());
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 3);
    assert_eq!(remove_registered(), 3);
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    // Nothing is left registered, and dropping the owners afterwards is harmless.
    drop(guard);
    drop(s);
    drop(d);
    assert_eq!(remove_registered(), 0);
}
