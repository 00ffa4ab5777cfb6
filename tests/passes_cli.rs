//! `--dump-after NAME`, `--stop-after NAME` and `--dump-dir DIR` on the main command (the
//! binary): unknown names are usage errors listing the passes, a stop writes no output and
//! exits 0, dumps show each pass's effect, and dumping changes nothing that is written.

mod common;

use common::{fixture, run_cli};
use std::path::Path;

/// The passes in pipeline order, as `--help` and the usage error list them (the list itself
/// is pinned by `pass::tests` in the library).
fn passes() -> Vec<&'static str> {
    onnx_ac_passes::pass::pass_names()
}

fn main_args<'a>(out: &'a Path, extra: &[&'a str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        fixture("mlp.ts17").to_str().unwrap().into(),
        "--budget".into(),
        "100%".into(),
        "--planner".into(),
        "full".into(),
        "--best-effort".into(),
        "--cost".into(),
        "fixed".into(),
        "-o".into(),
        out.to_str().unwrap().into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn run(args: &[String]) -> std::process::Output {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    run_cli(&a)
}

#[test]
fn unknown_pass_names_are_usage_errors_listing_the_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.onnx");
    for flag in ["--dump-after", "--stop-after"] {
        let r = run(&main_args(&out, &[flag, "inline"]));
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains("'inline'"), "{flag}: {err}");
        for p in passes() {
            assert!(err.contains(p), "{flag}: {p} not listed: {err}");
        }
        assert!(!out.exists());
    }
    // --dump-dir alone dumps nothing: a usage error too.
    let dir = tmp.path().join("dumps");
    let r = run(&main_args(&out, &["--dump-dir", dir.to_str().unwrap()]));
    assert_eq!(r.status.code(), Some(2));
    assert!(!out.exists());
}

#[test]
fn stop_after_writes_the_dump_and_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.onnx");
    let dir = tmp.path().join("dumps");
    for (k, pass) in [(2, "infer-shapes"), (4, "order-backward"), (7, "pin-late")] {
        let r = run(&main_args(
            &out,
            &["--stop-after", pass, "--dump-dir", dir.to_str().unwrap()],
        ));
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(0), "{pass}: {err}");
        assert!(r.stdout.is_empty(), "{pass}: no summary after a stop");
        assert!(!out.exists(), "{pass}: a stop writes no output");
        assert!(
            err.contains(&format!("stopped after pass {pass}")),
            "{pass}: {err}"
        );
        let text = std::fs::read_to_string(dir.join(format!("{k:02}-{pass}.ir"))).unwrap();
        assert!(text.starts_with("model ir="), "{pass}: {text}");
        assert_eq!(text.contains(".grad"), k >= 3, "{pass}");
        assert_eq!(text.contains("/recompute"), k >= 6, "{pass}");
    }
}

/// Each dump shows what its pass did; the written files are those of a run without dumps.
#[test]
fn dumps_show_each_pass_and_change_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain.onnx");
    let r = run(&main_args(&plain, &[]));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let dumped = tmp.path().join("dumped.onnx");
    let dir = tmp.path().join("dumps");
    let mut extra = vec!["--dump-dir", dir.to_str().unwrap()];
    for p in passes() {
        extra.extend(["--dump-after", p]);
    }
    let r = run(&main_args(&dumped, &extra));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        std::fs::read(&plain).unwrap(),
        std::fs::read(&dumped).unwrap()
    );
    let read = |k: usize, p: &str| std::fs::read_to_string(dir.join(format!("{k:02}-{p}.ir")));
    // The plan reads no weight at run time: that pass did not run, so it has no dump.
    assert!(read(5, "runtime-weights").is_err());
    let ir: Vec<String> = [
        (1, "lower"),
        (2, "infer-shapes"),
        (3, "autodiff"),
        (4, "order-backward"),
        (6, "recompute"),
        (7, "pin-late"),
        (8, "hide-backward-shapes"),
    ]
    .into_iter()
    .map(|(k, p)| read(k, p).unwrap())
    .collect();
    let count = |text: &str, pat: &str| text.matches(pat).count();
    assert!(!ir[1].contains(".grad") && ir[2].contains(".grad"));
    assert_eq!(count(&ir[3], "/recompute"), 0);
    assert!(count(&ir[4], "/recompute") > 0);
    assert!(count(&ir[5], "/pinned") > count(&ir[4], "/pinned"));
    assert!(count(&ir[6], "/hidden") > count(&ir[5], "/hidden"));
}

/// Without --dump-dir, dumps go to standard error, one header line per pass.
#[test]
fn dumps_go_to_stderr_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.onnx");
    let r = run(&main_args(
        &out,
        &["--dump-after", "lower", "--stop-after", "autodiff"],
    ));
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(0), "{err}");
    assert!(err.contains("; IR after pass lower\nmodel ir="), "{err}");
    assert!(err.contains("; IR after pass autodiff\nmodel ir="), "{err}");
    assert!(!err.contains("; IR after pass infer-shapes"), "{err}");
    assert!(!out.exists());
}

/// Stopping before planning needs only the model: no budget, no output file. A later stop
/// needs the budget (the plan decides what the rewrite passes do), and says so (exit 2).
#[test]
fn an_early_stop_needs_no_budget_nor_output() {
    let model = fixture("mlp.ts17");
    let r = run_cli(&[model.to_str().unwrap(), "--stop-after", "autodiff"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(0), "{err}");
    assert!(err.starts_with("; IR after pass autodiff\n"), "{err}");
    assert!(err.contains("output fc1.weight.grad"), "{err}");
    assert!(err.contains("stopped after pass autodiff"), "{err}");
    let r = run_cli(&[model.to_str().unwrap(), "--stop-after", "recompute"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--stop-after recompute needs --budget"),
        "{err}"
    );
    // Without --stop-after both stay required (clap's usage error).
    let r = run_cli(&[model.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2));
}
