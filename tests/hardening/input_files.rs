//! Model and external-data files: symlinks, FIFOs, devices and huge files are refused.

use super::*;

/// `y = MatMul(x[2,16], w[16,16])` with `w` (1 KiB) in the external file `location` (written
/// here, unless it is `None`), saved as `dir/name`.
pub(super) fn external_model(
    dir: &Path,
    name: &str,
    location: &str,
    weights: Option<&[u8]>,
) -> PathBuf {
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
    g.input.push(common::value_info(
        "x",
        onnx_ac_passes::ir::DType::Float,
        &[2, 16],
    ));
    g.output.push(common::value_info(
        "y",
        onnx_ac_passes::ir::DType::Float,
        &[2, 16],
    ));
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
pub(super) fn mkfifo(path: &Path) {
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    mknodat(CWD, path, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
}

/// 1 KiB of `byte`.
pub(super) fn weights(byte: u8) -> Vec<u8> {
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
pub(super) fn run_guarded(cwd: &Path, args: &[&str]) -> Output {
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
