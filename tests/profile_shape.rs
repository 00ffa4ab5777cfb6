//! `--cost measured` never runs a step that does not fit (issue #13 item
//! 2): over the budget (or `--profile-limit`) it profiles the step at halved `--dim` values,
//! scaled back by the analytic model; with no dim to halve, or when ONNX Runtime runs out of
//! memory, it falls back to the analytic model with a one-line note. ONNX Runtime's own log
//! lines never reach stderr unless `--ort-log` asks for them. Needs ONNX Runtime.

mod common;

use std::process::Output;

const GPT2_DYN: &str = "fixtures/models/gpt2_dynamic.ts17.onnx";
const MLP: &str = "fixtures/models/mlp.ts17.onnx";
const HUGE: &str = "fixtures/fail/onehot_huge_depth.onnx";

fn run(args: &[&str]) -> Output {
    common::run_cli(args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The simulated peak without recomputation of `gpt2_dynamic` at `batch` × 16 tokens, as the
/// binary simulates it (the same host profile).
fn gpt2_peak(batch: i64) -> u64 {
    let (tm, info) = common::training("gpt2_dynamic.ts17", &[("batch", batch), ("seq", 16)]);
    onnx_ac::plan::simulate::simulate_ort_default(&tm.graph, Some(&info))
        .1
        .peak_bytes
}

/// Runs the main command on `gpt2_dynamic` at batch 8 × 16 tokens with `extra` flags; returns
/// (stderr, stdout) of a successful run.
fn gpt2_run(extra: &[&str]) -> (String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let o = tmp.path().join("o.onnx");
    let mut args = vec![
        GPT2_DYN,
        "--dim",
        "batch=8",
        "--dim",
        "seq=16",
        "--runs",
        "1",
        "--best-effort",
        "--cost",
        "measured",
        "-o",
        o.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    let (err, stdout) = (text(&out.stderr), text(&out.stdout));
    assert_eq!(out.status.code(), Some(0), "{args:?}:\n{err}\n{stdout}");
    (err, stdout)
}

fn cost_model_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.starts_with("cost model"))
        .unwrap_or_else(|| panic!("no cost model line:\n{stdout}"))
}

/// No line ONNX Runtime's logger wrote (`[E:onnxruntime:…]`, coloured) is on stderr.
fn assert_no_ort_log(what: &str, err: &str) {
    assert!(
        !err.contains('\u{1b}') && !err.contains(":onnxruntime:") && !err.contains("onnxruntime "),
        "{what}: ONNX Runtime's log reached stderr:\n{err}"
    );
}

#[test]
fn a_step_over_the_budget_is_profiled_at_a_halved_batch() {
    let (p8, p4, p2) = (gpt2_peak(8), gpt2_peak(4), gpt2_peak(2));
    assert!(p8 > p4 && p4 > p2, "peaks {p8} {p4} {p2}");

    // The budget is the limit: batch 8 needs more, batch 4 fits exactly.
    let budget = format!("{p4}B");
    let (err, out) = gpt2_run(&["--budget", &budget]);
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [format!(
            "note: profiling at batch=4, not batch=8: the step without recomputation needs {} \
             (simulated), more than the budget ({})",
            onnx_ac::size::human_bytes(p8),
            onnx_ac::size::human_bytes(p4)
        )],
        "stderr is the one-line note"
    );
    let cost = cost_model_line(&out);
    assert!(
        cost.contains("gpt2_dynamic.ts17.onnx at batch=4 (1 runs on cpu")
            && cost.contains("scaled to batch=8 by the analytic cpu model"),
        "{cost}"
    );

    // --profile-limit replaces the budget: one byte under batch 4's peak is batch 2.
    let limit = format!("{}B", p4 - 1);
    let (err, out) = gpt2_run(&["--budget", "100%", "--profile-limit", &limit]);
    assert!(
        err.starts_with("note: profiling at batch=2, not batch=8:")
            && err.contains(&format!(
                "more than --profile-limit ({})",
                onnx_ac::size::human_bytes(p4 - 1)
            )),
        "{err}"
    );
    assert!(cost_model_line(&out).contains("at batch=2 ("), "{out}");
}

#[test]
fn a_step_within_the_budget_is_profiled_as_it_is() {
    let (err, out) = gpt2_run(&["--budget", "100%"]);
    assert_eq!(err, "", "no note");
    let cost = cost_model_line(&out);
    assert!(
        cost.contains("calibrated per op type with the profile of") && !cost.contains("scaled to"),
        "{cost}"
    );
}

#[test]
fn a_fixed_shape_step_over_the_budget_falls_back_to_the_analytic_model() {
    let tmp = tempfile::tempdir().unwrap();
    let o = tmp.path().join("o.onnx");
    let o = o.to_str().unwrap();
    let base = [
        MLP,
        "--budget",
        "90%",
        "--best-effort",
        "--runs",
        "1",
        "--cost",
        "measured",
        "-o",
        o,
    ];
    let out = run(&base);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line:\n{err}");
    let note = lines[0];
    assert!(
        note.starts_with(
            "note: node times are estimated (analytic cost model), not measured: the step \
             without recomputation needs "
        ) && note.contains("more than the budget (")
            && note.contains("the model has no symbolic dim (--dim) to profile a smaller step"),
        "{note}"
    );
    assert!(
        cost_model_line(&text(&out.stdout)).contains("analytic roofline"),
        "{}",
        text(&out.stdout)
    );

    // The suggested limit profiles the step as it is.
    let limit = note
        .split("--profile-limit ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("no suggested limit: {note}"));
    let mut args = base.to_vec();
    args.extend(["--profile-limit", limit]);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "",
        "no note with --profile-limit {limit}"
    );
    assert!(
        cost_model_line(&text(&out.stdout)).contains("calibrated per op type with the profile of")
    );

    // --verify runs the step as it is anyway: it is profiled as it is.
    let mut args = base.to_vec();
    args.push("--verify");
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "no note with --verify");
    assert!(
        cost_model_line(&text(&out.stdout)).contains("calibrated per op type with the profile of")
    );

    // The default cost model (analytic) profiles nothing, so it has nothing to note.
    let default: Vec<&str> = base
        .iter()
        .copied()
        .filter(|a| *a != "--cost" && *a != "measured")
        .collect();
    let out = run(&default);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "no note without --cost measured");
    assert!(cost_model_line(&text(&out.stdout)).contains("analytic roofline"));
}

/// `onehot_huge_depth.onnx` allocates 8 TiB: its budget (100%) covers it, so it is
/// profiled, and ONNX Runtime's failed allocation becomes a note, not ONNX Runtime's
/// coloured log line and an error.
#[test]
fn an_allocation_failure_while_profiling_falls_back_to_the_analytic_model() {
    let tmp = tempfile::tempdir().unwrap();
    let o = tmp.path().join("o.onnx");
    let out = run(&[
        HUGE,
        "--budget",
        "100%",
        "--cost",
        "measured",
        "-o",
        o.to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_no_ort_log("main", &err);
    assert!(
        err.starts_with(
            "note: node times are estimated (analytic cost model), not measured: ONNX Runtime \
             ran out of memory profiling the step (failed to allocate 8.00 TiB in node '"
        ),
        "{err}"
    );
    assert!(cost_model_line(&text(&out.stdout)).contains("analytic roofline"));
}

#[test]
fn onnx_runtime_log_lines_only_with_ort_log() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p.json");
    let args = ["profile", HUGE, "-o", p.to_str().unwrap()];
    let out = run(&args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_no_ort_log("profile", &err);
    assert_eq!(err.lines().count(), 1, "one error line:\n{err}");
    assert!(
        err.starts_with("error: ONNX Runtime failed to run"),
        "{err}"
    );

    let mut with_log = args.to_vec();
    with_log.extend(["--ort-log", "error"]);
    let out = run(&with_log);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains('\u{1b}'), "plain text:\n{err}");
    let logged: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("onnxruntime error ["))
        .collect();
    assert!(
        logged
            .iter()
            .any(|l| l.contains("Failed to allocate memory")),
        "ONNX Runtime's error line, asked for:\n{err}"
    );
    assert!(
        err.lines().last().is_some_and(|l| l.starts_with("error: ")),
        "{err}"
    );
}
