//! Closed or full standard streams, foreign plans and profiles, absurd run counts.

use super::*;

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
