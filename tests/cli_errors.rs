//! Bad inputs: every fixture of fixtures/fail/ (see its README.md) and every usage error
//! ends with exit code 2 and one `error: ` line naming the file and the culprit, never a
//! panic, and nothing is written to `-o`. Plus a small mutation fuzz of a real model
//! through the library.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_onnx-ac");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(args: &[&str]) -> Output {
    common::run_cli(args)
}

/// Stderr with the repository and temp paths replaced, so snapshots are stable.
fn normalized_stderr(out: &Output, tmp: &Path) -> String {
    String::from_utf8_lossy(&out.stderr)
        .replace(&tmp.display().to_string(), "<tmp>")
        .replace(&format!("{ROOT}/"), "")
}

/// Exit code 2 and exactly one line on stderr, `error: ...`, with no panic text.
fn assert_one_line_error(what: &str, out: &Output, tmp: &Path) -> String {
    let err = normalized_stderr(out, tmp);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: expected exit code 2, got {:?}; stderr:\n{err}",
        out.status
    );
    assert!(
        err.starts_with("error: ") && err.ends_with('\n') && err.lines().count() == 1,
        "{what}: expected one `error: ` line on stderr, got:\n{err}"
    );
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "internal error",
    ] {
        assert!(!err.contains(bad), "{what}: stderr has '{bad}':\n{err}");
    }
    err
}

/// Runs `inspect`, `train-graph -o` and the main command `-o` on one fail fixture; checks
/// each refuses it the same way, names the file and `culprit`, and writes nothing.
/// Returns the `inspect` stderr for the snapshot.
fn check_fixture(file: &str, culprit: &str) -> String {
    let rel = format!("fixtures/fail/{file}");
    assert!(
        Path::new(ROOT).join(&rel).symlink_metadata().is_ok(),
        "missing fixture {rel}: run scripts/make_fail_fixtures.py"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_path = tmp.path().join("out.onnx");
    let out_s = out_path.to_str().expect("utf-8 temp path");
    let runs: [(&str, Vec<&str>); 3] = [
        ("inspect", vec!["inspect", &rel]),
        ("train-graph", vec!["train-graph", &rel, "-o", out_s]),
        ("main", vec![&rel, "--budget", "2GB", "-o", out_s]),
    ];
    let mut first = None;
    for (what, args) in runs {
        let out = run(&args);
        let what = format!("{what} {file}");
        let err = assert_one_line_error(&what, &out, tmp.path());
        assert!(
            err.contains(&rel),
            "{what}: the error does not name the file:\n{err}"
        );
        assert!(
            err.contains(culprit),
            "{what}: the error does not name '{culprit}':\n{err}"
        );
        assert!(!out_path.exists(), "{what}: something was written to -o");
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(
            left.is_empty(),
            "{what}: files left in the output folder: {left:?}"
        );
        // Every command fails at loading, with the same message.
        match &first {
            None => first = Some(err),
            Some(f) => assert_eq!(f, &err, "{what}: differs from inspect"),
        }
    }
    first.unwrap()
}

macro_rules! fail_fixture {
    ($test:ident, $file:literal, $culprit:literal) => {
        #[test]
        fn $test() {
            let err = check_fixture($file, $culprit);
            insta::assert_snapshot!(err);
        }
    };
}

fail_fixture!(truncated, "truncated.onnx", "not a valid ONNX model");
fail_fixture!(random_bytes, "random.onnx", "not a valid ONNX model");
fail_fixture!(empty_file, "empty.onnx", "the file is empty");
fail_fixture!(cycle, "cycle.onnx", "cycle through node");
fail_fixture!(undefined_input, "undefined_input.onnx", "'ghost'");
fail_fixture!(external_escape, "external_escape.onnx", "'../outside.bin'");
fail_fixture!(external_absolute, "external_absolute.onnx", "'/etc/passwd'");
fail_fixture!(
    external_symlink,
    "external_symlink.onnx",
    "'ext_link/weights.bin'"
);
fail_fixture!(
    external_missing,
    "external_missing.onnx",
    "'missing_weights.bin'"
);
fail_fixture!(
    external_short,
    "external_short.onnx",
    "'external_short.bin'"
);
fail_fixture!(unknown_domain, "unknown_domain.onnx", "'com.example'");
fail_fixture!(old_opset, "old_opset.onnx", "version 9");
fail_fixture!(negative_dim, "negative_dim.onnx", "-3");
fail_fixture!(overflow_dim, "overflow_dim.onnx", "value 'x'");
fail_fixture!(
    duplicate_output,
    "duplicate_output.onnx",
    "'y' is produced twice"
);
fail_fixture!(
    writes_input,
    "writes_input.onnx",
    "'x', which is already a graph input"
);
fail_fixture!(
    control_chars,
    "control_chars.onnx",
    r"'evil\n\u{1b}[31mname'"
);
fail_fixture!(no_shape_rule, "no_shape_rule.onnx", "Det");
fail_fixture!(bad_attribute, "bad_attribute.onnx", "node 'transpose'");
fail_fixture!(bad_raw_data, "bad_raw_data.onnx", "tensor 'w'");
fail_fixture!(
    unnamed_node,
    "unnamed_node.onnx",
    "node #1 (Transpose, output 'y')"
);
fail_fixture!(
    expand_huge_rank,
    "expand_huge_rank.onnx",
    "node 'expand' (Expand)"
);
fail_fixture!(
    attribute_wrong_type,
    "attribute_wrong_type.onnx",
    "node 'concat' (Concat): attribute 'axis' must be INT, not FLOAT"
);
fail_fixture!(
    pad_mode_int,
    "pad_mode_int.onnx",
    "node 'pad' (Pad): attribute 'mode' must be STRING, not INT"
);
fail_fixture!(
    constant_of_shape_float_value,
    "constant_of_shape_float_value.onnx",
    "node 'fill' (ConstantOfShape): attribute 'value' must be TENSOR, not FLOAT"
);
fail_fixture!(
    unknown_attribute,
    "unknown_attribute.onnx",
    "node 'relu' (Relu): 'foo' is not an attribute of Relu in ai.onnx opsets 13..=24"
);
fail_fixture!(
    duplicate_node_name,
    "duplicate_node_name.onnx",
    "nodes #0 (Relu) and #1 (Sigmoid) are both named 'act'"
);
fail_fixture!(cumsum_axis, "cumsum_axis.onnx", "node 'cumsum' (CumSum)");
fail_fixture!(
    ir_version_14,
    "ir_version_14.onnx",
    "IR version 14 is not supported (ONNX Runtime 1.31.1 reads IR versions up to 13)"
);
fail_fixture!(
    conv_transpose_rank2,
    "conv_transpose_rank2.onnx",
    "node 'deconv' (ConvTranspose)"
);
fail_fixture!(
    constant_external,
    "constant_external.onnx",
    "node 'const' (Constant)"
);

/// Fail fixtures whose overflowing shapes used to panic in the shape rules (checked like
/// the others, without a snapshot).
macro_rules! fail_fixture_unsnapshotted {
    ($test:ident, $file:literal, $culprit:literal) => {
        #[test]
        fn $test() {
            check_fixture($file, $culprit);
        }
    };
}

fail_fixture_unsnapshotted!(tile_overflow, "tile_overflow.onnx", "node 'tile'");
fail_fixture_unsnapshotted!(pad_overflow, "pad_overflow.onnx", "node 'pad'");
fail_fixture_unsnapshotted!(
    constant_of_shape_overflow,
    "constant_of_shape_overflow.onnx",
    "'cos'"
);

/// Every file of fixtures/fail/ has a test above (and so a README row).
#[test]
fn every_fail_fixture_is_tested() {
    let src = std::fs::read_to_string(Path::new(ROOT).join("tests/cli_errors.rs")).unwrap();
    let readme = std::fs::read_to_string(Path::new(ROOT).join("fixtures/fail/README.md")).unwrap();
    for e in std::fs::read_dir(Path::new(ROOT).join("fixtures/fail")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".onnx") {
            assert!(src.contains(&format!("\"{name}\"")), "{name} is not tested");
            assert!(
                readme.contains(&format!("`{name}`")),
                "{name} is not in README.md"
            );
        }
    }
}

/// The symlink fixture only means something if git kept it a symlink pointing out.
#[test]
fn symlink_fixture_points_outside() {
    let link = Path::new(ROOT).join("fixtures/fail/ext_link/weights.bin");
    let meta = link
        .symlink_metadata()
        .expect("fixtures/fail/ext_link/weights.bin");
    assert!(
        meta.file_type().is_symlink(),
        "{} is not a symlink",
        link.display()
    );
    let target = link.canonicalize().expect("symlink target exists");
    let folder = Path::new(ROOT)
        .join("fixtures/fail")
        .canonicalize()
        .unwrap();
    assert!(
        !target.starts_with(folder),
        "{} stays in the folder",
        target.display()
    );
}

// ---- usage errors -------------------------------------------------------------------

const MLP: &str = "fixtures/models/mlp.ts17.onnx";
const MLP_DYN: &str = "fixtures/models/mlp_dynbatch.ts17.onnx";

/// A clap error: exit 2, `error: ` first, the reason in it, no panic, nothing written.
fn assert_usage_error(args: &[&str], reason: &str, out_path: Option<&Path>) {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: stderr:\n{err}");
    assert!(err.starts_with("error: "), "{args:?}: stderr:\n{err}");
    assert!(err.contains(reason), "{args:?}: no '{reason}' in:\n{err}");
    assert!(!err.contains("panicked"), "{args:?}: stderr:\n{err}");
    if let Some(p) = out_path {
        assert!(!p.exists(), "{args:?}: something was written to -o");
    }
}

#[test]
fn bad_budget_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.onnx");
    let o = out.to_str().unwrap();
    assert_usage_error(
        &[MLP, "--budget", "2XB", "-o", o],
        "invalid size '2XB': unknown unit",
        Some(&out),
    );
    assert_usage_error(&[MLP, "--budget", "-1GB", "-o", o], "--budget", Some(&out));
    assert_usage_error(
        &[MLP, "--budget", "0%", "-o", o],
        "a percentage must be in (0, 100]",
        Some(&out),
    );
}

#[test]
fn bad_dim_is_a_usage_error() {
    assert_usage_error(
        &["inspect", MLP_DYN, "--dim", "batch"],
        "'batch' is not NAME=VALUE",
        None,
    );
    assert_usage_error(
        &["inspect", MLP_DYN, "--dim", "batch=x"],
        "is not an integer",
        None,
    );
    assert_usage_error(
        &["inspect", MLP_DYN, "--dim", "batch=-4"],
        "must be positive",
        None,
    );
}

#[test]
fn missing_required_arguments_are_usage_errors() {
    assert_usage_error(&[MLP, "-o", "never.onnx"], "--budget", None);
    assert_usage_error(&["train-graph", MLP], "--output-file", None);
    assert!(!Path::new(ROOT).join("never.onnx").exists());
}

#[test]
fn dim_no_input_has() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["inspect", MLP_DYN, "--dim", "batchh=8"]);
    let err = assert_one_line_error("--dim batchh=8", &out, tmp.path());
    assert!(err.contains(MLP_DYN), "{err}");
    insta::assert_snapshot!(err);
}

#[test]
fn missing_model_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("out.onnx");
    let o = out_path.to_str().unwrap();
    let missing = "fixtures/fail/no_such_model.onnx";
    for args in [
        vec!["inspect", missing],
        vec!["train-graph", missing, "-o", o],
        vec![missing, "--budget", "2GB", "-o", o],
    ] {
        let out = run(&args);
        let err = assert_one_line_error(&format!("{args:?}"), &out, tmp.path());
        assert!(err.contains(missing), "{err}");
        assert!(!out_path.exists());
    }
    let out = run(&["inspect", missing]);
    insta::assert_snapshot!(normalized_stderr(&out, tmp.path()));
}

#[test]
fn model_is_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["inspect", "fixtures/fail/ext_link"]);
    let err = assert_one_line_error("inspect a directory", &out, tmp.path());
    assert!(err.contains("fixtures/fail/ext_link"), "{err}");
}

#[test]
fn help_exits_zero() {
    for args in [
        &["--help"][..],
        &["inspect", "--help"],
        &["train-graph", "--help"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
        assert!(out.stderr.is_empty(), "{args:?}");
    }
}

// ---- mutation fuzz ------------------------------------------------------------------

/// xorshift64*: a fixed-seed generator, so a failing mutation can be replayed by index.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Byte positions worth mutating: the node list at the start, the initializer headers
/// (names, dims, data types) and the graph inputs/outputs at the end, not the weights.
fn hot_positions(bytes: &[u8]) -> Vec<usize> {
    let mut hot: Vec<usize> = (0..1100.min(bytes.len())).collect();
    hot.extend(bytes.len().saturating_sub(200)..bytes.len());
    for (i, w) in bytes.windows(3).enumerate() {
        if w == b"fc1" || w == b"fc2" || w == b"fc3" {
            hot.extend(i.saturating_sub(24)..(i + 24).min(bytes.len()));
        }
    }
    hot.sort_unstable();
    hot.dedup();
    hot
}

fn mutate(rng: &mut Rng, bytes: &[u8], hot: &[usize]) -> (Vec<u8>, String) {
    let mut b = bytes.to_vec();
    let pos = |rng: &mut Rng, len: usize| {
        if rng.below(5) == 0 {
            rng.below(len)
        } else {
            hot[rng.below(hot.len())].min(len - 1)
        }
    };
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let p = pos(rng, b.len());
        match rng.below(7) {
            0 => {
                let v = rng.next() as u8;
                what.push(format!("set [{p}]={v:#04x}"));
                b[p] = v;
            }
            1 => {
                let bit = rng.below(8);
                what.push(format!("flip [{p}] bit {bit}"));
                b[p] ^= 1 << bit;
            }
            2 => {
                let v = [0x00, 0x01, 0x7f, 0x80, 0xff][rng.below(5)];
                what.push(format!("set [{p}]={v:#04x}"));
                b[p] = v;
            }
            3 => {
                what.push(format!("truncate at {p}"));
                b.truncate(p.max(1));
            }
            4 => {
                let n = (1 + rng.below(8)).min(b.len() - p);
                what.push(format!("delete [{p}..{}]", p + n));
                b.drain(p..p + n);
            }
            5 => {
                let src = pos(rng, b.len());
                let n = (1 + rng.below(16)).min(b.len() - src);
                what.push(format!("insert [{src}..{}] at {p}", src + n));
                let chunk = b[src..src + n].to_vec();
                b.splice(p..p, chunk);
            }
            _ => {
                // A 10-byte varint of all ones: -1 or u64::MAX wherever a number was.
                let n = 10.min(b.len() - p);
                what.push(format!("varint max at {p}"));
                for (k, x) in b[p..p + n].iter_mut().enumerate() {
                    *x = if k + 1 < n { 0xff } else { 0x01 };
                }
            }
        }
        if b.is_empty() {
            b.push(0);
        }
    }
    (b, what.join(", "))
}

#[test]
fn mutated_model_never_panics() {
    let src = std::fs::read(Path::new(ROOT).join(MLP)).unwrap();
    let hot = hot_positions(&src);
    let tmp = tempfile::tempdir().unwrap();
    let path: PathBuf = tmp.path().join("mutant.onnx");
    // ONNX_AC_FUZZ_ITERS / ONNX_AC_FUZZ_SEED run a longer or different fuzz by hand.
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let iters = env("ONNX_AC_FUZZ_ITERS", 400);
    let seed = env("ONNX_AC_FUZZ_SEED", 1);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let (mut ok, mut refused) = (0, 0);
    let mut panics = Vec::new();
    let mut messages = BTreeMap::new();
    for i in 0..iters {
        let (bytes, what) = mutate(&mut rng, &src, &hot);
        std::fs::write(&path, &bytes).unwrap();
        let result = std::panic::catch_unwind(|| {
            let r = onnx_ac::load_model(&path, &BTreeMap::new());
            r.map_err(|e| (e.exit_code(), e.to_string()))
        });
        match result {
            Ok(Ok(_)) => ok += 1,
            Ok(Err((code, msg))) => {
                refused += 1;
                assert_eq!(code, 2, "mutation {i} ({what}): exit code {code}: {msg}");
                assert!(
                    !msg.contains('\n'),
                    "mutation {i} ({what}): multi-line: {msg}"
                );
                assert!(msg.contains("mutant.onnx"), "mutation {i} ({what}): {msg}");
                messages.entry(msg).or_insert(what);
            }
            Err(_) => panics.push(format!("mutation {i}: {what}")),
        }
    }
    if std::env::var_os("ONNX_AC_FUZZ_VERBOSE").is_some() {
        for (msg, what) in &messages {
            eprintln!("{what}\n    {msg}");
        }
    }
    assert!(panics.is_empty(), "panics:\n{}", panics.join("\n"));
    // The fuzz must exercise both sides.
    assert!(ok > 20 && refused > 100, "ok {ok}, refused {refused}");
}

/// An unwritable -o: one line naming the output, exit 2, no staging file left behind.
#[test]
fn unwritable_output() {
    let tmp = tempfile::tempdir().unwrap();
    let missing_dir = tmp.path().join("no_such_dir").join("out.onnx");
    let m = missing_dir.to_str().unwrap();
    let is_dir = tmp.path().to_str().unwrap();
    for (args, culprit) in [
        (vec!["train-graph", MLP, "-o", m], m),
        (vec!["train-graph", MLP, "-o", is_dir], is_dir),
    ] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.lines().count() == 1,
            "{args:?}: {err}"
        );
        assert!(
            err.contains(culprit) && err.contains("cannot write"),
            "{err}"
        );
        assert!(!err.contains("at path"), "names a staging file: {err}");
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?}: left {left:?}");
    }
}

/// Structured mutations (attribute ints, small int64 initializers, Constant tensors, input
/// dims set to extreme values) through the library: each mutant loads, or is refused with
/// exit code 2 and one line naming the file, never a panic or an abort. Deterministic
/// (fixed seed; each model has its own generator, so `MODEL mutation I` replays alone) and
/// bounded: 3 x 600 mutants, about 10 s in release on 2 cores. ONNX_AC_FUZZ_ITERS,
/// ONNX_AC_FUZZ_SEED and ONNX_AC_FUZZ_VERBOSE as above run a longer or different fuzz.
///
/// An abort (say a multi-terabyte allocation, which `catch_unwind` cannot catch) leaves the
/// mutant being loaded in `target/tmp/structured_mutant.onnx` and its description in
/// `structured_mutant.txt` beside it; a run that completes removes them.
#[test]
fn structured_mutations_never_panic() {
    use onnx_ac::onnx::proto::{self, attribute_proto::AttributeType as AT};
    use protobuf::Message;

    const EXTREME: [i64; 12] = [
        0,
        -1,
        -2,
        1 << 31,
        1 << 32,
        1 << 40,
        1 << 62,
        i64::MAX,
        i64::MIN,
        i64::MIN + 1,
        -(1 << 40),
        7,
    ];
    fn set_i64(raw: &mut [u8], rng: &mut Rng) -> String {
        let i = rng.below(raw.len() / 8);
        let v = EXTREME[rng.below(EXTREME.len())];
        raw[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        format!("[{i}]={v}")
    }
    fn mutate(rng: &mut Rng, g: &mut proto::GraphProto) -> String {
        let v = EXTREME[rng.below(EXTREME.len())];
        match rng.below(3) {
            0 => {
                let k = rng.below(g.node.len());
                let n = &mut g.node[k];
                if n.attribute.is_empty() {
                    return String::new();
                }
                let j = rng.below(n.attribute.len());
                let what = format!("node {} attr {}", n.name(), n.attribute[j].name());
                let a = &mut n.attribute[j];
                match a.type_.map(|t| t.enum_value()) {
                    Some(Ok(AT::INT)) => a.set_i(v),
                    Some(Ok(AT::INTS)) if !a.ints.is_empty() => {
                        let i = rng.below(a.ints.len());
                        a.ints[i] = v;
                    }
                    Some(Ok(AT::TENSOR)) => {
                        let t = a.t.mut_or_insert_default();
                        let is_i64 = t.data_type() == 7;
                        match t.raw_data.as_mut() {
                            Some(raw) if is_i64 && raw.len() >= 8 => {
                                return format!("{what} {}", set_i64(raw, rng))
                            }
                            _ => return String::new(),
                        }
                    }
                    _ => return String::new(),
                }
                format!("{what}={v}")
            }
            1 => {
                let small: Vec<usize> = (0..g.initializer.len())
                    .filter(|&i| {
                        let t = &g.initializer[i];
                        t.data_type() == 7 && t.raw_data.as_ref().is_some_and(|r| r.len() >= 8)
                    })
                    .collect();
                if small.is_empty() {
                    return String::new();
                }
                let t = &mut g.initializer[small[rng.below(small.len())]];
                let name = t.name().to_string();
                format!("init {name} {}", set_i64(t.raw_data.as_mut().unwrap(), rng))
            }
            _ => {
                let k = rng.below(g.input.len());
                let Some(proto::type_proto::Value::TensorType(tt)) =
                    g.input[k].type_.as_mut().and_then(|t| t.value.as_mut())
                else {
                    return String::new();
                };
                let dims = &mut tt.shape.mut_or_insert_default().dim;
                if dims.is_empty() {
                    return String::new();
                }
                let i = rng.below(dims.len());
                let v = [0, 1, 3, 1 << 20, 1 << 31][rng.below(5)];
                dims[i].set_dim_value(v);
                format!("input {k} dim {i}={v}")
            }
        }
    }

    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let iters = env("ONNX_AC_FUZZ_ITERS", 600);
    let seed = env("ONNX_AC_FUZZ_SEED", 1);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("structured_mutant.onnx");
    let what_path = path.with_extension("txt");
    let (mut ok, mut refused) = (0, 0);
    let mut bad = Vec::new();
    let mut messages = BTreeMap::new();
    for (k, model) in ["cnn.ts17", "cnn.dyn18", "bert.dyn18"]
        .into_iter()
        .enumerate()
    {
        let src = std::fs::read(Path::new(ROOT).join(format!("fixtures/models/{model}.onnx")));
        let src = proto::ModelProto::parse_from_bytes(&src.unwrap()).unwrap();
        let mut rng = Rng((seed.wrapping_add(k as u64)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        for i in 0..iters {
            let mut m = src.clone();
            let what = mutate(&mut rng, m.graph.as_mut().unwrap());
            if what.is_empty() {
                continue;
            }
            let what = format!("{model} mutation {i}: {what}");
            std::fs::write(&path, m.write_to_bytes().unwrap()).unwrap();
            std::fs::write(&what_path, format!("{what}\n")).unwrap();
            let r = std::panic::catch_unwind(|| {
                onnx_ac::load_model(&path, &BTreeMap::new())
                    .map_err(|e| (e.exit_code(), e.to_string()))
            });
            match r {
                Ok(Ok(_)) => ok += 1,
                Ok(Err((code, msg))) => {
                    refused += 1;
                    if code != 2 || msg.contains('\n') || !msg.contains("structured_mutant.onnx") {
                        bad.push(format!("{what}: exit code {code}: {msg}"));
                    }
                    messages.entry(msg).or_insert(what);
                }
                Err(_) => bad.push(format!("{what}: panicked")),
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&what_path);
    if std::env::var_os("ONNX_AC_FUZZ_VERBOSE").is_some() {
        for (msg, what) in &messages {
            eprintln!("{what}\n    {msg}");
        }
    }
    assert!(bad.is_empty(), "bad outcomes:\n{}", bad.join("\n"));
    // The fuzz must exercise both sides.
    assert!(ok > 100 && refused > 100, "ok {ok}, refused {refused}");
}

/// An unreachable budget exits 3 with one `error: ` line that explains the planning margin
/// and suggests a budget; nothing is written; the suggested budget is reachable.
#[test]
fn unreachable_budget_exits_3_and_its_suggestion_works() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.onnx");
    let o = out.to_str().unwrap();
    let r = run(&[MLP, "--budget", "10%act", "--cost", "fixed", "-o", o]);
    let err = normalized_stderr(&r, tmp.path());
    assert_eq!(r.status.code(), Some(3), "stderr:\n{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{err}"));
    assert!(
        line.contains("is unreachable") && line.contains("1% margin"),
        "{line}"
    );
    assert!(!out.exists(), "an unreachable budget wrote {o}");
    let suggested = line
        .split("use --budget ")
        .nth(1)
        .and_then(|s| s.split(" or more").next())
        .unwrap_or_else(|| panic!("no suggested budget in: {line}"))
        .replace(' ', "");
    let r = run(&[MLP, "--budget", &suggested, "--cost", "fixed", "-o", o]);
    assert_eq!(
        r.status.code(),
        Some(0),
        "the suggested budget {suggested} fails:\n{}",
        normalized_stderr(&r, tmp.path())
    );
    assert!(out.exists());
}

#[test]
fn unknown_host_profile_is_a_usage_error() {
    let out = run(&[
        "--host",
        "x86-64-avx3",
        "inspect",
        "fixtures/models/mlp.ts17.onnx",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown host profile 'x86-64-avx3'"), "{err}");
    let out = Command::new(BIN)
        .args(["inspect", "fixtures/models/mlp.ts17.onnx"])
        .current_dir(ROOT)
        .env(onnx_ac::plan::host::HOST_ENV, "sparc")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ONNX_AC_HOST: unknown host profile 'sparc'"),
        "{err}"
    );
}

/// IR version 99 is refused like 14 (the fixture), naming the version and the maximum.
#[test]
fn ir_version_99_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes =
        std::fs::read(Path::new(ROOT).join("fixtures/fail/ir_version_14.onnx")).unwrap();
    // ir_version is field 1 (varint): the file starts with 0x08 0x0e.
    assert_eq!(&bytes[..2], &[0x08, 14]);
    bytes[1] = 99;
    let p = tmp.path().join("ir99.onnx");
    std::fs::write(&p, &bytes).unwrap();
    let out = run(&["inspect", p.to_str().unwrap()]);
    let err = assert_one_line_error("ir 99", &out, tmp.path());
    assert!(
        err.contains("IR version 99") && err.contains("up to 13"),
        "{err}"
    );
}

/// `--labels`/`--target` name a new input: an empty name, a name the model already uses
/// and an output name of the training graph (`loss`, `<param>.grad`) are refused, named.
#[test]
fn bad_new_input_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("out.onnx");
    let o = out_path.to_str().unwrap();
    for (name, culprit) in [
        ("", "empty"),
        ("x", "'x'"),
        ("loss", "'loss' is reserved"),
        ("fc1.weight.grad", "'fc1.weight.grad' is reserved"),
    ] {
        let out = run(&[
            "train-graph",
            MLP,
            "-o",
            o,
            "--loss",
            "mse",
            "--target",
            name,
        ]);
        let err = assert_one_line_error(&format!("--target {name:?}"), &out, tmp.path());
        assert!(err.contains(culprit), "--target {name:?}: {err}");
        assert!(!out_path.exists());
    }
}

/// Logits with 2^40 classes (fixture `huge_classes.onnx`): `train-graph --loss
/// cross-entropy` refuses them with exit 2 naming the logits and the limit, and `inspect`
/// (whose default loss is cross-entropy on them) reports the estimate unavailable, giving
/// the same reason. Both once aborted on an 8 TiB allocation.
#[test]
fn huge_classes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("out.onnx");
    let o = out_path.to_str().unwrap();
    let rel = &format!("fixtures/fail/{}", "huge_classes.onnx");
    let why = "logits 'logits' have 1099511627776 classes (last axis), above the most onnx-ac supports (16777216)";
    let out = run(&[
        "train-graph",
        rel,
        "-o",
        o,
        "--loss",
        "cross-entropy",
        "--logits",
        "logits",
    ]);
    let err = assert_one_line_error("train-graph", &out, tmp.path());
    assert!(err.contains(rel) && err.contains(why), "{err}");
    assert!(!out_path.exists());
    let out = run(&["inspect", rel]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        normalized_stderr(&out, tmp.path())
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("unavailable: {why}")), "{text}");
}

/// `--dim batch=2^40` implies a random input of 512 TiB: profiling refuses it before
/// allocating (exit 2, the input and its size named), in `profile` and in the main command
/// with `--cost measured` (`--profile-limit` allowing the 3456 TiB step). Both once aborted
/// in the allocator. Needs ONNX Runtime (as every
/// profiling test).
#[test]
fn huge_dims_are_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p.json");
    let o = tmp.path().join("o.onnx");
    for args in [
        vec!["profile", MLP_DYN, "-o", p.to_str().unwrap()],
        vec![
            MLP_DYN,
            "--budget",
            "2GB",
            "--cost",
            "measured",
            "--profile-limit",
            "4000TiB",
            "-o",
            o.to_str().unwrap(),
        ],
    ] {
        let mut args = args.clone();
        args.extend(["--dim", "batch=1099511627776"]);
        let out = run(&args);
        let err = normalized_stderr(&out, tmp.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let line = err.lines().last().unwrap_or_default();
        assert!(
            line.starts_with("error: ")
                && line.contains("input 'x'")
                && line.contains("512.00 TiB")
                && line.contains("limit of 4.00 GiB"),
            "{args:?}: {err}"
        );
        assert!(!p.exists() && !o.exists());
    }
}

/// `ort_type_mismatch.onnx` (a DOUBLE input to a Gemm with FLOAT weights) passes onnx-ac's
/// own checks, but ONNX Runtime refuses its training graph: under `--verify` that is bad
/// input, exit 2 naming the model and the node (it was exit 1, "internal", found by the
/// mutation fuzzer), as when profiling it. Needs ONNX Runtime.
#[test]
fn onnx_runtime_refusing_the_model_under_verify_is_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let o = tmp.path().join("o.onnx");
    let rel = &format!("fixtures/fail/{}", "ort_type_mismatch.onnx");
    let out = run(&[
        rel,
        "--budget",
        "50%act",
        "--cost",
        "fixed",
        "--verify",
        "--runs",
        "1",
        "-o",
        o.to_str().unwrap(),
    ]);
    let err = assert_one_line_error("--verify", &out, tmp.path());
    assert!(
        err.starts_with(&format!(
            "error: {rel}: ONNX Runtime cannot load the training graph of this model (before any recomputation): "
        )) && err.contains("(gemm)")
            && !err.contains("original.onnx"),
        "{err}"
    );
    assert!(!o.exists());
    let p = tmp.path().join("p.json");
    let out = run(&["profile", rel, "-o", p.to_str().unwrap(), "--runs", "1"]);
    let err = assert_one_line_error("profile", &out, tmp.path());
    assert!(err.contains("(gemm)"), "{err}");
    // onnx-ac's own commands accept it.
    assert_eq!(run(&["inspect", rel]).status.code(), Some(0));
}

/// `onehot_huge_depth.onnx`: its OneHot output is 8 TiB. Under `--verify` ONNX Runtime asks
/// the counting allocator for it: exit 2 naming the size (once a segfault, the allocator
/// handing back null). `profile` times runs with ONNX Runtime's own allocator first, whose
/// failure ONNX Runtime reports: exit 2 too. Needs ONNX Runtime.
#[test]
fn huge_allocation_in_onnx_runtime_is_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let o = tmp.path().join("o.onnx");
    let p = tmp.path().join("p.json");
    let rel = &format!("fixtures/fail/{}", "onehot_huge_depth.onnx");
    let out = run(&[
        rel,
        "--budget",
        "100%",
        "--cost",
        "fixed",
        "--verify",
        "-o",
        o.to_str().unwrap(),
    ]);
    let err = normalized_stderr(&out, tmp.path());
    assert_eq!(out.status.code(), Some(2), "--verify: {err}");
    assert!(
        err.contains("error: ONNX Runtime asked for 8796093022208 bytes (8.00 TiB)"),
        "--verify: {err}"
    );
    let out = run(&["profile", rel, "-o", p.to_str().unwrap()]);
    let err = normalized_stderr(&out, tmp.path());
    assert_eq!(out.status.code(), Some(2), "profile: {err}");
    assert!(err.contains("8796093022208"), "profile: {err}");
    assert!(!o.exists() && !p.exists());
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left {left:?}");
}

#[test]
fn verify_of_forward_models_says_to_build_training_graphs() {
    let m = "fixtures/models/mlp.ts17.onnx";
    let out = run(&["verify", m, m]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mlp.ts17.onnx is not a training graph") && err.contains("train-graph"),
        "{err}"
    );
}

/// `--runs 0` is one usage error (exit 2, one line, nothing written) in every command that
/// takes `--runs`: profile, verify and the main command (with or without a measured cost
/// model or `--verify`), from one clap value parser. `profile --warmup 0` stays allowed.
#[test]
fn zero_runs_is_a_usage_error_in_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let (o, p) = (tmp.path().join("o.onnx"), tmp.path().join("p.json"));
    let (o, p) = (o.to_str().unwrap(), p.to_str().unwrap());
    let m = "fixtures/models/mlp.ts17.onnx";
    for args in [
        vec!["profile", m, "-o", p, "--runs", "0"],
        vec!["verify", m, m, "--runs", "0"],
        vec![m, "--budget", "100%", "-o", o, "--runs", "0"],
        vec![
            m, "--budget", "100%", "-o", o, "--cost", "fixed", "--runs", "0",
        ],
        vec![
            m, "--budget", "100%", "-o", o, "--cost", "fixed", "--verify", "--runs", "0",
        ],
    ] {
        assert_usage_error(&args, "--runs must be at least 1", Some(Path::new(o)));
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    // --warmup 0 parses: the same command fails later, on the missing model, not on it.
    assert_usage_error(
        &["profile", "missing.onnx", "-o", p, "--warmup", "0"],
        "missing.onnx",
        Some(Path::new(p)),
    );
}
