//! Issue #12 (hardening): the tool run by a careless user or on hostile files. Each test is
//! a regression test for one item of the issue; docs/security.md says what is checked.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_onnx-ac");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn root(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

/// The binary run from `cwd`, with `env` set and `ORT_DYLIB_PATH` and backtraces unset.
fn run_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(cwd)
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run onnx-ac")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 2, one `error: ` line, no panic; returns the line.
fn assert_refused(what: &str, o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{what}: {:?}\n{err}", o.status);
    let last = err.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("error: "), "{what}: {err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error: ")).count(),
        1,
        "{what}: {err}"
    );
    assert!(!err.contains("panicked"), "{what}: {err}");
    last
}

// ---- item 1: nothing runs or loads from the current directory ---------------------------

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

// ---- test models --------------------------------------------------------------------------

use onnx_ac::onnx::proto::{
    tensor_proto, tensor_shape_proto, type_proto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use protobuf::{EnumOrUnknown, Message, MessageField};

const FLOAT: i32 = 1;

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for &d in dims {
        let mut dim = tensor_shape_proto::Dimension::new();
        dim.set_dim_value(d);
        shape.dim.push(dim);
    }
    let mut tensor = type_proto::Tensor::new();
    tensor.elem_type = Some(FLOAT);
    tensor.shape = MessageField::some(shape);
    let mut ty = TypeProto::new();
    ty.set_tensor_type(tensor);
    let mut v = ValueInfoProto::new();
    v.name = Some(name.to_string());
    v.type_ = MessageField::some(ty);
    v
}

/// `y = MatMul(x[2,16], w[16,16])` with `w` (1 KiB) in the external file `location` (written
/// here, unless it is `None`), saved as `dir/name`.
fn external_model(dir: &Path, name: &str, location: &str, weights: Option<&[u8]>) -> PathBuf {
    if let Some(w) = weights {
        std::fs::write(dir.join(location), w).unwrap();
    }
    let mut t = TensorProto::new();
    t.name = Some("w".into());
    t.data_type = Some(FLOAT);
    t.dims = vec![16, 16];
    t.data_location = Some(EnumOrUnknown::new(tensor_proto::DataLocation::EXTERNAL));
    for (k, v) in [("location", location), ("offset", "0"), ("length", "1024")] {
        let mut e = StringStringEntryProto::new();
        e.key = Some(k.into());
        e.value = Some(v.into());
        t.external_data.push(e);
    }
    let mut n = NodeProto::new();
    n.op_type = Some("MatMul".into());
    n.name = Some("matmul".into());
    n.input = vec!["x".into(), "w".into()];
    n.output = vec!["y".into()];
    let mut g = GraphProto::new();
    g.name = Some("ext".into());
    g.input.push(value_info("x", &[2, 16]));
    g.output.push(value_info("y", &[2, 16]));
    g.initializer.push(t);
    g.node.push(n);
    let mut m = ModelProto::new();
    m.ir_version = Some(8);
    let mut opset = OperatorSetIdProto::new();
    opset.domain = Some(String::new());
    opset.version = Some(17);
    m.opset_import.push(opset);
    m.graph = MessageField::some(g);
    let path = dir.join(name);
    std::fs::write(&path, m.write_to_bytes().unwrap()).unwrap();
    path
}

/// Creates a named pipe (FIFO) at `path`.
fn mkfifo(path: &Path) {
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    mknodat(CWD, path, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
}

/// 1 KiB of `byte`.
fn weights(byte: u8) -> Vec<u8> {
    vec![byte; 1024]
}

// ---- item 2: external data is opened once, beneath the model's folder ---------------------

/// A thread keeps swapping the external-data symlink between a file inside the model's
/// folder and a secret outside it while the model is loaded, read and saved: the secret's
/// bytes never reach the output (before the fix, the location was checked, then reopened by
/// name: 7 of 400 such runs leaked). Each outcome is either a clean copy of the inside file
/// or a refusal (the old code leaked in 3 of 5 sets of 300 runs); how many of each depends
/// on scheduling, what is asserted does not.
#[test]
fn external_data_symlink_swap_never_leaks() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    let secret_dir = tmp.path().join("secret");
    std::fs::create_dir(&secret_dir).unwrap();
    let secret = secret_dir.join("secret.bin");
    std::fs::write(&secret, weights(0x5a)).unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("inside.bin"), weights(0x11)).unwrap();
    std::os::unix::fs::symlink("inside.bin", dir.join("w.bin")).unwrap();
    let model = external_model(&dir, "m.onnx", "w.bin", None);
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (stop, started) = (stop.clone(), started.clone());
        let (dir, secret) = (dir.clone(), secret.clone());
        std::thread::spawn(move || {
            let tmp_link = dir.join("w.bin.new");
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let target = if flips % 2 == 0 {
                    secret.clone()
                } else {
                    PathBuf::from("inside.bin")
                };
                let _ = std::fs::remove_file(&tmp_link);
                std::os::unix::fs::symlink(&target, &tmp_link).unwrap();
                std::fs::rename(&tmp_link, dir.join("w.bin")).unwrap();
                flips += 1;
                started.store(true, Ordering::Relaxed);
            }
            flips
        })
    };
    while !started.load(Ordering::Relaxed) {
        std::thread::yield_now();
    }
    let (mut copied, mut refused) = (0, 0);
    for i in 0..1000 {
        let m = match onnx_ac::onnx::load(&model) {
            Ok(m) => m,
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("leaves the model's folder") || msg.contains("cannot be read"),
                    "{msg}"
                );
                refused += 1;
                continue;
            }
        };
        let out = out_dir.join(format!("o{i}.onnx"));
        match onnx_ac::onnx::save(&m, &out, &onnx_ac::onnx::SaveOptions::default()) {
            Ok(()) => {
                let data = std::fs::read(out_dir.join(format!("o{i}.onnx.data"))).unwrap();
                assert!(!data.contains(&0x5a), "run {i}: the secret leaked");
                assert!(data.contains(&0x11), "run {i}: no weights");
                copied += 1;
            }
            Err(e) => {
                assert!(e.to_string().contains("leaves the model's folder"), "{e}");
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    eprintln!("swap test: {flips} flips, {copied} copied, {refused} refused");
    assert!(
        flips > 0 && copied + refused == 1000,
        "{flips} {copied} {refused}"
    );
}

/// Symlinks that stay inside the folder still work; a FIFO as external data is refused at
/// once instead of blocking the load forever.
#[test]
fn external_data_inside_links_work_and_fifos_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("weights")).unwrap();
    std::fs::write(dir.join("weights/w.bin"), weights(0x11)).unwrap();
    std::os::unix::fs::symlink("weights", dir.join("wdir")).unwrap();
    let model = external_model(dir, "linked.onnx", "wdir/w.bin", None);
    onnx_ac::onnx::load(&model).expect("a symlink inside the folder");

    mkfifo(&dir.join("pipe.bin"));
    let model = external_model(dir, "fifo.onnx", "pipe.bin", None);
    let m = model.to_str().unwrap();
    let r = run_in(dir, &["inspect", m], &[]);
    let line = assert_refused("FIFO external data", &r);
    assert!(
        line.contains("tensor 'w'") && line.contains("'pipe.bin'") && line.contains("FIFO"),
        "{line}"
    );
}

// ---- item 3 (issue item 7): FIFOs, devices and huge files as inputs ------------------------

/// Runs onnx-ac from `cwd` and waits for it; a run still going after two minutes is killed
/// and reported (a hang guard, so a regression fails the test instead of blocking the
/// suite: the fixed tool answers these inputs without reading or waiting).
fn run_guarded(cwd: &Path, args: &[&str]) -> Output {
    use std::process::Stdio;
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run onnx-ac");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} hung (killed after 120 s)");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A FIFO, /dev/zero or a 3 GB file as the model, as `--plan` or as `--profile`: exit 2 at
/// once naming the file and what it is, nothing read (a FIFO used to block forever,
/// /dev/zero was read until memory ran out, a 3 GB file was read whole before failing).
#[test]
fn non_regular_and_huge_inputs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fifo = dir.join("fifo.onnx");
    mkfifo(&fifo);
    // Sparse: takes no disk space, but its size says 3 GB.
    let huge = dir.join("huge.onnx");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(3_000_000_000)
        .unwrap();
    let big_json = dir.join("big.json");
    std::fs::File::create(&big_json)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    let (f, h, j) = (
        fifo.to_str().unwrap(),
        huge.to_str().unwrap(),
        big_json.to_str().unwrap(),
    );
    let out = dir.join("out.onnx");
    let o = out.to_str().unwrap();
    let mlp = root("fixtures/models/mlp.ts17.onnx");
    let m = mlp.to_str().unwrap();
    let fifo_msg = "it is a named pipe (FIFO), not a regular file";
    let dev_msg = "it is a character device, not a regular file";
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["inspect", f], f, fifo_msg),
        (vec!["train-graph", f, "-o", o], f, fifo_msg),
        (vec![f, "--budget", "2GB", "-o", o], f, fifo_msg),
        (vec!["verify", f, m], f, fifo_msg),
        (vec!["profile", f, "-o", "p.json"], f, fifo_msg),
        (vec!["inspect", "/dev/zero"], "/dev/zero", dev_msg),
        (
            vec!["inspect", h],
            h,
            "has 3000000000 bytes, above onnx-ac's limit of 2.00 GiB",
        ),
        (
            vec![
                m, "--budget", "2GB", "-o", o, "--cost", "fixed", "--plan", f,
            ],
            f,
            fifo_msg,
        ),
        (
            vec![
                m,
                "--budget",
                "2GB",
                "-o",
                o,
                "--cost",
                "fixed",
                "--plan",
                "/dev/zero",
            ],
            "/dev/zero",
            dev_msg,
        ),
        (
            vec![
                m, "--budget", "2GB", "-o", o, "--cost", "fixed", "--plan", j,
            ],
            j,
            "has 314572800 bytes, above onnx-ac's limit of 256.00 MiB",
        ),
        (
            vec![m, "--budget", "2GB", "-o", o, "--profile", f],
            f,
            fifo_msg,
        ),
        (
            vec![m, "--budget", "2GB", "-o", o, "--profile", "/dev/zero"],
            "/dev/zero",
            dev_msg,
        ),
    ];
    for (args, file, reason) in cases {
        let r = run_guarded(dir, &args);
        let line = assert_refused(&format!("{args:?}"), &r);
        assert!(
            line.contains(file) && line.contains(reason),
            "{args:?}: {line}"
        );
        assert!(!out.exists(), "{args:?} wrote -o");
        assert!(!dir.join("p.json").exists(), "{args:?} wrote -o");
    }
}

// ---- item 4 (issue item 8): no output overwrites an input or another output ----------------

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

/// The write end of a pipe whose read end is already closed: every write fails with EPIPE.
fn closed_pipe() -> std::process::Stdio {
    use rustix::pipe::{pipe_with, PipeFlags};
    // CLOEXEC: a child spawned meanwhile by another test must not inherit the read end.
    let (read, write) = pipe_with(PipeFlags::CLOEXEC).unwrap();
    drop(read);
    std::process::Stdio::from(write)
}

fn run_with(
    args: &[&str],
    dir: &Path,
    stdout: std::process::Stdio,
    err: std::process::Stdio,
) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .env_remove("ORT_DYLIB_PATH")
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(err)
        .output()
        .unwrap()
}

/// stdout a closed pipe (`| true`, `| head -1`): the output is dropped, the exit code is the
/// command's own (0 here, 2 for a refused model), nothing on stderr. stdout `/dev/full`:
/// exit 2 with one line naming standard output. stderr closed or full: the command still
/// ends with its own exit code. Each of these used to panic (exit 101).
#[test]
fn closed_or_full_stdout_and_stderr_are_not_panics() {
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mlp = root("fixtures/models/mlp.ts17.onnx");
    let m = mlp.to_str().unwrap();
    let main = |json: bool| {
        let mut v = vec![m, "--budget", "2GB", "--cost", "fixed", "-o", "out.onnx"];
        if json {
            v.push("--json");
        }
        v
    };
    for args in [
        vec!["inspect", m],
        vec!["inspect", m, "--json"],
        main(false),
        main(true),
    ] {
        let r = run_with(&args, dir, closed_pipe(), Stdio::piped());
        assert_eq!(r.status.code(), Some(0), "{args:?} | true: {}", stderr(&r));
        assert!(!stderr(&r).contains("panicked"), "{args:?}: {}", stderr(&r));
    }
    assert!(dir.join("out.onnx").exists());
    let bad = root("fixtures/fail/cycle.onnx");
    let r = run_with(
        &["inspect", bad.to_str().unwrap()],
        dir,
        closed_pipe(),
        Stdio::piped(),
    );
    assert_refused("refused model | true", &r);

    // stderr closed or full: the command's own result, no panic.
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full");
    for err in [Some(closed_pipe()), full().ok().map(Stdio::from)]
        .into_iter()
        .flatten()
    {
        let r = run_with(&main(false), dir, Stdio::null(), err);
        assert_eq!(r.status.code(), Some(0), "stderr closed or full");
    }
    let r = run_with(
        &["inspect", bad.to_str().unwrap()],
        dir,
        Stdio::null(),
        closed_pipe(),
    );
    assert_eq!(r.status.code(), Some(2), "refused model, stderr closed");

    // /dev/full (Linux): exit 2, one line naming standard output.
    if let Ok(f) = full() {
        for args in [vec!["inspect", m, "--json"], vec!["inspect", m], main(true)] {
            let f = f.try_clone().unwrap();
            let r = run_with(&args, dir, Stdio::from(f), Stdio::piped());
            let line = assert_refused(&format!("{args:?} > /dev/full"), &r);
            assert!(
                line.contains("cannot write to standard output: No space left on device"),
                "{line}"
            );
        }
    }
}

// ---- item 12: plan and profile files are input (exit 2, names listed) -------------------

/// A plan naming values the training graph does not have (another model's plan) and a plan
/// naming one value twice are exit 2, the names listed. Before: exit 1, and a duplicate
/// gave `retained_activations 18446744073709550623` in the summary.
#[test]
fn foreign_and_duplicate_plans_are_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mlp = root("fixtures/models/mlp.ts17.onnx");
    let mlp = mlp.to_str().unwrap();
    let plan_of = |names: &[&str]| {
        serde_json::json!({
            "format": "onnx-ac-plan", "version": 1, "planner": "ac",
            "budget_bytes": 1000, "recompute": names,
        })
        .to_string()
    };
    std::fs::write(dir.join("foreign.json"), plan_of(&["ghost_a", "ghost_b"])).unwrap();
    let r = run_in(
        dir,
        &[
            mlp,
            "--budget",
            "2GB",
            "--cost",
            "fixed",
            "-o",
            "o.onnx",
            "--plan",
            "foreign.json",
        ],
        &[],
    );
    let line = assert_refused("foreign plan", &r);
    assert!(
        line.contains("foreign.json") && line.contains("'ghost_a', 'ghost_b'"),
        "{line}"
    );
    assert!(!dir.join("o.onnx").exists());

    // A real plan of the model (the full policy recomputes every activation), then the same with its first value twice.
    let r = run_in(
        dir,
        &[
            mlp,
            "--budget",
            "2GB",
            "--cost",
            "fixed",
            "--policy",
            "full",
            "-o",
            "o.onnx",
            "--save-plan",
            "plan.json",
        ],
        &[],
    );
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).unwrap()).unwrap();
    let names: Vec<String> = plan["recompute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(!names.is_empty(), "the saved plan recomputes nothing");
    let mut dup: Vec<&str> = names.iter().map(String::as_str).collect();
    dup.push(&names[0]);
    std::fs::write(dir.join("dup.json"), plan_of(&dup)).unwrap();
    let r = run_in(
        dir,
        &[
            mlp, "--budget", "2GB", "--cost", "fixed", "-o", "o2.onnx", "--plan", "dup.json",
        ],
        &[],
    );
    let line = assert_refused("duplicate plan", &r);
    assert!(
        line.contains("more than once") && line.contains(&format!("'{}'", names[0])),
        "{line}"
    );
    assert!(!dir.join("o2.onnx").exists());
}

/// `--planner` and `--policy` together are a usage error (exit 2).
#[test]
fn planner_and_policy_together_are_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mlp = root("fixtures/models/mlp.ts17.onnx");
    let r = run_in(
        tmp.path(),
        &[
            mlp.to_str().unwrap(),
            "--budget",
            "2GB",
            "--cost",
            "fixed",
            "-o",
            "o.onnx",
            "--planner",
            "optimal",
            "--policy",
            "full",
        ],
        &[],
    );
    let err = stderr(&r);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--planner") && err.contains("--policy"),
        "{err}"
    );
    assert!(!tmp.path().join("o.onnx").exists());
}

/// Profiles are validated: a negative or NaN-like time (JSON has no NaN: a string or null
/// is malformed, a negative number is refused by value) and a profile of another model
/// (node names the training graph does not have) are exit 2, naming the node.
#[test]
fn bad_profiles_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mlp = root("fixtures/models/mlp.ts17.onnx");
    let profile = |node: &str, t: serde_json::Value| {
        serde_json::json!({
            "format": "onnx-ac-profile", "version": 1, "model": "m.onnx", "ep": "cpu",
            "runs": 1, "nodes": { node: { "op": "MatMul", "time_s": t } }, "values": {},
            "measured_peak_bytes": null, "parameter_bytes": 0, "step_time_s": 0.001,
        })
        .to_string()
    };
    for (file, text, culprit) in [
        (
            "negative.json",
            profile("x", serde_json::json!(-1.0)),
            "node 'x' (MatMul) has time_s -1",
        ),
        (
            "huge.json",
            profile("x", serde_json::json!("1e400")),
            "malformed",
        ),
        (
            "foreign.json",
            profile("ghost_node", serde_json::json!(1e-5)),
            "'ghost_node'",
        ),
    ] {
        std::fs::write(dir.join(file), text).unwrap();
        let r = run_in(
            dir,
            &[
                mlp.to_str().unwrap(),
                "--budget",
                "2GB",
                "-o",
                "o.onnx",
                "--profile",
                file,
            ],
            &[],
        );
        let line = assert_refused(file, &r);
        assert!(
            line.contains(file) && line.contains(culprit),
            "{file}: {line}"
        );
        assert!(!dir.join("o.onnx").exists());
    }
}

// ---- item 6: --runs is bounded ----------------------------------------------------------

/// `--runs 18446744073709551615` (and any count above 1000000) is a usage error in every
/// command that takes it, never an overflow or a giant allocation.
#[test]
fn huge_runs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mlp = root("fixtures/models/mlp.ts17.onnx");
    let m = mlp.to_str().unwrap();
    for args in [
        vec![
            "profile",
            m,
            "-o",
            "p.json",
            "--runs",
            "18446744073709551615",
        ],
        vec![
            "profile",
            m,
            "-o",
            "p.json",
            "--warmup",
            "18446744073709551615",
        ],
        vec!["profile", m, "-o", "p.json", "--runs", "1000001"],
        vec![
            m,
            "--budget",
            "2GB",
            "-o",
            "o.onnx",
            "--runs",
            "18446744073709551615",
        ],
    ] {
        let r = run_in(tmp.path(), &args, &[]);
        let err = stderr(&r);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("1000000"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
