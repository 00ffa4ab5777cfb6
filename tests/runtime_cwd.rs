//! The library search never looks in the current directory (issue #12, item 1): a planted
//! `.venv` and `onnxruntime.py` in the working directory are not candidates. Its own test
//! binary (one test): it changes the process's working directory.

mod common;

use onnx_ac::runtime::locate;

#[test]
fn library_search_ignores_the_working_directory() {
    std::env::remove_var("ORT_DYLIB_PATH");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().canonicalize().unwrap();
    let marker = common::plant_runtime_trap(&dir);
    // A package folder too, as `python3 -c "import onnxruntime"` would have found it.
    let pkg = dir.join("onnxruntime");
    std::fs::create_dir_all(pkg.join("capi")).unwrap();
    std::fs::write(
        pkg.join("__init__.py"),
        format!(
            "open({:?}, 'w').write('imported')\n",
            marker.display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(pkg.join("capi/libonnxruntime.so"), b"not a library").unwrap();

    std::env::set_current_dir(&dir).unwrap();
    std::env::set_var("PYTHONPATH", &dir);
    let (candidates, searched) = locate(None).expect("locate");
    std::env::set_current_dir("/").unwrap();

    assert!(!marker.exists(), "python3 executed the planted module");
    for c in &candidates {
        let real = c.path.canonicalize().unwrap_or(c.path.clone());
        assert!(
            !real.starts_with(&dir),
            "candidate {} ({}) is in the working directory",
            c.path.display(),
            c.source
        );
    }
    for s in &searched {
        assert!(!s.contains(&dir.display().to_string()), "searched {s}");
    }
}
