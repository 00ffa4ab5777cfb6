//! Outputs: never over an input or each other, never half-written, temporaries removed on Ctrl-C, the umask respected.

use super::*;

/// The files of `dir` with their contents.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let data = if e.file_type().unwrap().is_file() {
                std::fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            (name, data)
        })
        .collect();
    files.sort();
    files
}

/// Every way an output could name an input (or another output) is refused with exit 2
/// naming both, before any work, and the folder is left exactly as it was. Before the fix
/// each of these exited 0 and replaced the file.
#[test]
fn outputs_never_overwrite_inputs_or_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::copy(
        root("fixtures/models/mlp.ts17.onnx"),
        dir.join("model.onnx"),
    )
    .unwrap();
    std::fs::hard_link(dir.join("model.onnx"), dir.join("hard.onnx")).unwrap();
    std::fs::write(dir.join("plan.json"), "{}").unwrap();
    std::fs::write(dir.join("prof.json"), "{}").unwrap();
    // ext.onnx keeps its weights in model2.onnx.data: what `-o model2.onnx` would write.
    external_model(dir, "ext.onnx", "model2.onnx.data", Some(&weights(0x11)));
    let before = snapshot(dir);
    let main = |extra: &[&'static str]| {
        let mut v = vec!["model.onnx", "--budget", "2GB", "--cost", "fixed"];
        v.extend_from_slice(extra);
        v
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            main(&["-o", "model.onnx"]),
            "-o model.onnx is the input model model.onnx",
        ),
        (
            main(&["-o", "./model.onnx"]),
            "-o ./model.onnx is the input model model.onnx",
        ),
        (
            main(&["-o", "hard.onnx"]),
            "-o hard.onnx is the input model model.onnx",
        ),
        (
            main(&["-o", "out.onnx", "--decisions", "model.onnx"]),
            "--decisions model.onnx is the input model model.onnx",
        ),
        (
            main(&["-o", "out.onnx", "--save-plan", "model.onnx"]),
            "--save-plan model.onnx is the input model model.onnx",
        ),
        (
            main(&[
                "-o",
                "out.onnx",
                "--plan",
                "plan.json",
                "--save-plan",
                "plan.json",
            ]),
            "--save-plan plan.json is --plan plan.json",
        ),
        (
            main(&["-o", "prof.json", "--profile", "prof.json"]),
            "-o prof.json is --profile prof.json",
        ),
        (
            main(&["-o", "out.onnx", "--decisions", "out.onnx"]),
            "--decisions out.onnx and -o out.onnx are the same file",
        ),
        (
            main(&["-o", "out.onnx", "--save-plan", "out.onnx.data"]),
            "--save-plan out.onnx.data and -o's external data out.onnx.data are the same file",
        ),
        (
            vec!["profile", "model.onnx", "-o", "model.onnx"],
            "-o model.onnx is the input model model.onnx",
        ),
        (
            vec!["train-graph", "model.onnx", "-o", "model.onnx"],
            "-o model.onnx is the input model model.onnx",
        ),
        (
            vec!["train-graph", "ext.onnx", "-o", "model2.onnx"],
            "-o's external data model2.onnx.data is external data of the input model",
        ),
        (
            vec![
                "ext.onnx",
                "--budget",
                "2GB",
                "--cost",
                "fixed",
                "-o",
                "model2.onnx",
            ],
            "-o's external data model2.onnx.data is external data of the input model",
        ),
    ];
    std::fs::create_dir(dir.join("x")).unwrap();
    for (args, reason) in cases {
        let r = run_in(dir, &args, &[]);
        let line = assert_refused(&format!("{args:?}"), &r);
        assert!(line.contains(reason), "{args:?}: {line}");
        let mut after = snapshot(dir);
        after.retain(|(n, _)| n != "x");
        assert!(after == before, "{args:?} changed the folder");
    }
    // Spelled differently, the same file is still one file.
    let r = run_in(
        dir,
        &main(&["-o", "d.csv", "--decisions", "x/../d.csv"]),
        &[],
    );
    let line = assert_refused("x/../d.csv", &r);
    assert!(line.contains("are the same file"), "{line}");
}

// ---- item 5 (issue item 9): all outputs or none, no temporaries left -----------------------

/// A failure after the model was staged (here: --decisions in a folder that does not exist)
/// leaves neither the model nor a temporary behind (before the fix `-o` was written, then
/// the command failed with exit 2).
#[test]
fn a_failing_output_leaves_no_other_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mlp = root("fixtures/models/mlp.ts17.onnx");
    let m = mlp.to_str().unwrap();
    let r = run_in(
        dir,
        &[
            m,
            "--budget",
            "2GB",
            "--cost",
            "fixed",
            "-o",
            "out.onnx",
            "--save-plan",
            "plan.json",
            "--decisions",
            "missing/d.csv",
        ],
        &[],
    );
    let line = assert_refused("--decisions missing/d.csv", &r);
    assert!(line.contains("missing/d.csv: cannot write"), "{line}");
    assert!(snapshot(dir).is_empty(), "left {:?}", snapshot(dir));
    // The same command with a good path writes all three.
    let r = run_in(
        dir,
        &[
            m,
            "--budget",
            "2GB",
            "--cost",
            "fixed",
            "-o",
            "out.onnx",
            "--save-plan",
            "plan.json",
            "--decisions",
            "d.csv",
        ],
        &[],
    );
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let names: Vec<String> = snapshot(dir).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["d.csv", "out.onnx", "plan.json"]);
}

/// Ctrl-C (or SIGTERM) while profiling: the process exits with 128 + the signal, removes its
/// temporaries (the training graph saved for ONNX Runtime) and writes no output. The signal
/// is sent once the saved graph exists in the (private) temporary folder, so the run is
/// interrupted at the same point every time. SIGINT is skipped when this test process
/// ignores it (a background job of a script), since the child then ignores it too.
#[test]
fn ctrl_c_removes_temporaries() {
    use rustix::process::Signal;
    for (sig, code) in [(Signal::TERM, 143), (Signal::INT, 130)] {
        if onnx_ac::output::signal_ignored(sig.as_raw()) {
            eprintln!("signal {sig:?} is ignored here: not tested");
            continue;
        }
        interrupt_profiling(sig, code);
    }
}

fn interrupt_profiling(sig: rustix::process::Signal, code: i32) {
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let mlp = root("fixtures/models/mlp.ts17.onnx");
    let mut child = Command::new(BIN)
        .args(["profile", mlp.to_str().unwrap(), "-o", "p.json"])
        .args(["--runs", "1000000", "--warmup", "0"])
        .current_dir(tmp.path())
        .env("TMPDIR", &tmpdir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let saved = || {
        std::fs::read_dir(&tmpdir)
            .unwrap()
            .flatten()
            .any(|d| d.path().join("training.onnx").exists())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !saved() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "profiling ended before it was interrupted"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no saved graph after 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, sig).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(code), "{sig:?}: {}", stderr(&out));
    // `.ses` is ONNX Runtime's own session-id file (a string of libonnxruntime), which every
    // run leaves in the temporary folder, interrupted or not.
    let left: Vec<String> = std::fs::read_dir(&tmpdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != ".ses")
        .collect();
    assert!(left.is_empty(), "left {left:?}");
    assert!(!tmp.path().join("p.json").exists());
}

// ---- item 6 (issue item 10): outputs respect the umask; only regular files are replaced ----

/// The mode bits of `path`.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Under umask 022 and 027 every output gets 0666 less the umask (it was always 0600, from
/// the temporary file it was renamed from), the external-data side file included.
#[test]
fn outputs_respect_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ext = external_model(dir, "ext.onnx", "w.bin", Some(&weights(0x11)));
    let mlp = root("fixtures/models/mlp.ts17.onnx");
    for (umask, want) in [("022", 0o644), ("027", 0o640)] {
        let out = dir.join(format!("u{umask}"));
        std::fs::create_dir(&out).unwrap();
        let script = format!("umask {umask} && exec \"$0\" \"$@\"");
        let sh = |args: &[&str]| {
            let r = Command::new("sh")
                .arg("-c")
                .arg(&script)
                .arg(BIN)
                .args(args)
                .current_dir(&out)
                .output()
                .unwrap();
            assert_eq!(r.status.code(), Some(0), "{args:?}: {}", stderr(&r));
        };
        sh(&[
            ext.to_str().unwrap(),
            "--budget",
            "2GB",
            "--cost",
            "fixed",
            "-o",
            "ext_ac.onnx",
            "--decisions",
            "d.csv",
            "--save-plan",
            "plan.json",
        ]);
        sh(&["train-graph", mlp.to_str().unwrap(), "-o", "tg.onnx"]);
        for f in [
            "ext_ac.onnx",
            "ext_ac.onnx.data",
            "d.csv",
            "plan.json",
            "tg.onnx",
        ] {
            assert_eq!(mode(&out.join(f)), want, "umask {umask}: {f}");
        }
    }
}

/// An existing output that is a symlink, a device, a FIFO or a directory is refused (exit 2,
/// naming it and what it is) and left as it was; before the fix a symlink or /dev/null given
/// as -o was replaced by a regular file (as root, the system's /dev/null).
#[test]
fn non_regular_outputs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("target.onnx"), b"keep").unwrap();
    std::os::unix::fs::symlink("target.onnx", dir.join("link.onnx")).unwrap();
    std::os::unix::fs::symlink("target.onnx", dir.join("out.onnx.data")).unwrap();
    mkfifo(&dir.join("fifo.csv"));
    std::fs::create_dir(dir.join("sub")).unwrap();
    let mlp = root("fixtures/models/mlp.ts17.onnx");
    let m = mlp.to_str().unwrap();
    let main = |extra: &[&'static str]| {
        let mut v = vec![m, "--budget", "2GB", "--cost", "fixed"];
        v.extend_from_slice(extra);
        v
    };
    let before = snapshot(dir);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            main(&["-o", "link.onnx"]),
            "link.onnx: cannot write: it is a symbolic link",
        ),
        (
            vec!["train-graph", m, "-o", "link.onnx"],
            "link.onnx: cannot write: it is a symbolic link",
        ),
        (
            main(&["-o", "out.onnx"]),
            "out.onnx.data: cannot write: it is a symbolic link",
        ),
        (
            main(&["-o", "/dev/null"]),
            "/dev/null: cannot write: it is a character device",
        ),
        (
            main(&["-o", "x.onnx", "--decisions", "/dev/null"]),
            "/dev/null: cannot write: it is a character device",
        ),
        (
            main(&["-o", "x.onnx", "--decisions", "fifo.csv"]),
            "fifo.csv: cannot write: it is a named pipe (FIFO)",
        ),
        (
            vec!["profile", m, "-o", "fifo.csv"],
            "fifo.csv: cannot write: it is a named pipe (FIFO)",
        ),
        (main(&["-o", "sub"]), "sub: cannot write: it is a directory"),
        (main(&["-o", "."]), ".: cannot write: it is a directory"),
    ];
    for (args, reason) in cases {
        let r = run_guarded(dir, &args);
        let line = assert_refused(&format!("{args:?}"), &r);
        assert!(line.contains(reason), "{args:?}: {line}");
        assert!(snapshot(dir) == before, "{args:?} changed the folder");
        assert!(
            std::fs::symlink_metadata(dir.join("link.onnx"))
                .unwrap()
                .file_type()
                .is_symlink(),
            "{args:?}"
        );
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
}

// ---- item 7 (issue item 6, I/O): a closed or full stdout/stderr is not a panic --------------
