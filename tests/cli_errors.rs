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
    let mut src = std::fs::read_to_string(Path::new(ROOT).join("tests/cli_errors.rs")).unwrap();
    for part in ["mutations", "limits"] {
        let path = Path::new(ROOT).join(format!("tests/cli_errors/{part}.rs"));
        src += &std::fs::read_to_string(path).unwrap();
    }
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

#[path = "cli_errors/limits.rs"]
mod limits;
#[path = "cli_errors/mutations.rs"]
mod mutations;
