//! `onnx-ac inspect` (issue #13 item 8): parameters are what the training graph trains
//! (shape constants and other initializers are listed apart), and the report shows the
//! plain training step's simulated peak and the budgets the default planner reaches.

mod common;

use serde_json::Value;

fn inspect(args: &[&str]) -> String {
    let mut a = vec!["inspect"];
    a.extend(args);
    let r = common::run_cli(&a);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{a:?}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    String::from_utf8(r.stdout).unwrap()
}

/// GPT-2 (dynamo export) has 28 weights and two int64 shape constants: the table says 28
/// parameters and 2 constants (it said 30 parameters).
#[test]
fn inspect_text_of_gpt2() {
    let text = inspect(&["fixtures/models/gpt2.dyn18.onnx"]);
    assert!(
        text.contains("parameters 28 tensors (28 f32)")
            && text.contains("constants  2 tensors (2 i64)"),
        "{text}"
    );
    insta::assert_snapshot!("inspect_gpt2.dyn18", text);
}

/// `--json` at 8 × 64: the parameters are the training graph's own; `plain_peak_bytes` is
/// the main command's initial peak; `lowest_budget_bytes` is reached by the default planner
/// (with the same analytic costs) and one byte less is not.
#[test]
fn inspect_json_peak_and_reachable_budgets() {
    let dims = ["--dim", "batch=8", "--dim", "seq=64"];
    let m = "fixtures/models/gpt2_dynamic.ts17.onnx";
    let mut args = vec![m, "--json"];
    args.extend(dims);
    let j: Value = serde_json::from_str(&inspect(&args)).unwrap();
    assert_eq!(j["format_version"], 2);
    let (_, info) = common::training("gpt2_dynamic.ts17", &[("batch", 8), ("seq", 64)]);
    assert_eq!(j["parameters"]["tensors"], info.params.len() as u64);
    assert_eq!(j["constants"]["tensors"], 0);
    let a = &j["activations"];
    let plain = a["plain_peak_bytes"].as_u64().unwrap();
    let low = a["lowest_budget_bytes"].as_u64().unwrap();
    assert!(low < plain, "{a}");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.onnx");
    let run = |budget: u64| {
        let b = format!("{budget}B");
        let mut a = vec![m, "--budget", &b, "--cost", "analytic", "--json"];
        a.extend(["-o", out.to_str().unwrap()]);
        a.extend(dims);
        common::run_cli(&a)
    };
    let r = run(low);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let s: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(s["initial_peak_bytes"].as_u64(), Some(plain));
    assert_eq!(s["within_budget"], true);
    assert_eq!(run(low - 1).status.code(), Some(3));
}
