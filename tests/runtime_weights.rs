//! Weights read at run time (passes' runtime_weights.rs, issue #11): when recomputation
//! alone cannot meet a budget, the forward reads its constant weights through a pin, so
//! ONNX Runtime folds and prepacks none of them. Measured in ONNX Runtime on the BERT
//! fixture, whose plain step is dominated by those copies.

mod common;

use serde_json::Value;

const BERT: &str = "fixtures/models/bert.ts17.onnx";

fn json(o: &std::process::Output) -> Value {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn weights_at_run_time_meet_a_budget_recomputation_cannot_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, plan) = (tmp.path().join("o.onnx"), tmp.path().join("plan.json"));
    let (o, p) = (out.to_str().unwrap(), plan.to_str().unwrap());
    // 99% of the plain peak: no plan of recomputation reaches it on this fixture (see
    // tests/budgets.rs), reading the weights at run time does, with the wider margin.
    let s = json(&common::run_cli(&[
        BERT,
        "--budget",
        "99%",
        "--cost",
        "fixed",
        "--verify",
        "--runs",
        "1",
        "--json",
        "-o",
        o,
        "--save-plan",
        p,
    ]));
    let weights = s["runtime_weights_bytes"]
        .as_u64()
        .expect("weights at run time");
    assert!(weights > 1 << 20, "{s}");
    assert_eq!(s["peak_source"], "measured", "{s}");
    assert_eq!(s["within_budget"], true, "{s}");
    assert!(
        s["final_peak_bytes"].as_u64() <= s["budget_bytes"].as_u64(),
        "{s}"
    );
    assert_eq!(s["verify"]["passed"], true, "{s}");
    // The plan file says so, and replaying it writes the same model.
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert_eq!(saved["runtime_weights"], true, "{saved}");
    let first = std::fs::read(&out).unwrap();
    let again = tmp.path().join("again.onnx");
    json(&common::run_cli(&[
        BERT,
        "--budget",
        "99%",
        "--cost",
        "fixed",
        "--json",
        "--plan",
        p,
        "-o",
        again.to_str().unwrap(),
    ]));
    assert_eq!(first, std::fs::read(&again).unwrap());
}

/// A budget recomputation meets keeps the weights folded and prepacked (the faster step),
/// and its plan file does not mention them.
#[test]
fn a_budget_recomputation_meets_keeps_the_weights_constant() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, plan) = (tmp.path().join("o.onnx"), tmp.path().join("plan.json"));
    let s = json(&common::run_cli(&[
        "fixtures/models/gpt2_deep.ts17.onnx",
        "--budget",
        "30%act",
        "--cost",
        "fixed",
        "--json",
        "-o",
        out.to_str().unwrap(),
        "--save-plan",
        plan.to_str().unwrap(),
    ]));
    assert_eq!(s["within_budget"], true, "{s}");
    assert!(s.get("runtime_weights_bytes").is_none(), "{s}");
    let text = std::fs::read_to_string(&plan).unwrap();
    assert!(!text.contains("runtime_weights"), "{text}");
}
