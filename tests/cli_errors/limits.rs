//! Unreachable budgets, refused versions, names and sizes, and ONNX Runtime refusing a model.

use super::*;

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
