//! `onnx-ac tradeoff` (issue #16 item 2): the planner's curve from the lowest reachable peak
//! to no recomputation, the references beside it, the Pareto front monotone.

mod common;

use std::process::Output;

fn ok(out: &Output) -> String {
    common::stdout_of_success(out)
}

fn curve(model: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["tradeoff", model, "--cost", "fixed", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&common::run_cli(&args))).unwrap()
}

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap()
}

/// On the 6-layer GPT-2: the curve spans the lowest reachable peak to recomputing nothing,
/// each plan fits its budget, ac is monotone (a larger budget never recomputes more), and
/// along the Pareto front a higher peak always costs strictly less recomputation.
#[test]
fn curve_is_monotone_and_spans_lowest_to_none() {
    let c = curve("fixtures/models/gpt2_deep.ts17.onnx", &["--points", "6"]);
    let points = c["points"].as_array().unwrap();
    let own: Vec<_> = points.iter().filter(|p| p["source"] == "ac").collect();
    assert_eq!(own.len(), 6);
    for p in &own {
        assert_eq!(p["fits"], true, "{p}");
        assert!(u(&p["peak_bytes"]) <= u(&p["budget_bytes"]), "{p}");
    }
    assert_eq!(c["planner_monotone"], true);
    for w in own.windows(2) {
        assert!(u(&w[1]["peak_bytes"]) >= u(&w[0]["peak_bytes"]));
        assert!(w[1]["recompute_time_s"].as_f64() <= w[0]["recompute_time_s"].as_f64());
    }
    // The ends: the lowest point is the lowest peak reported, the last recomputes nothing.
    assert_eq!(u(&own[0]["peak_bytes"]), u(&c["lowest_peak_bytes"]));
    assert!(u(&c["lowest_peak_bytes"]) < u(&c["plain_peak_bytes"]) / 2);
    assert_eq!(own[5]["recomputed"], 0);
    // The references are there, without a budget.
    let sources: Vec<&str> = points
        .iter()
        .map(|p| p["source"].as_str().unwrap())
        .collect();
    for r in ["none", "selective", "full", "mutwo"] {
        let p = points
            .iter()
            .find(|p| p["source"] == r)
            .unwrap_or_else(|| panic!("{r} missing: {sources:?}"));
        assert!(p["budget_bytes"].is_null() && p["fits"].is_null(), "{p}");
    }
    // The front, by peak: strictly less recomputation for every higher peak; no point off
    // the front beats a front point on both axes.
    let mut front: Vec<_> = points.iter().filter(|p| p["on_front"] == true).collect();
    front.sort_by_key(|p| u(&p["peak_bytes"]));
    assert!(front.len() >= 3, "{front:?}");
    for w in front.windows(2) {
        assert!(u(&w[1]["peak_bytes"]) > u(&w[0]["peak_bytes"]), "{w:?}");
        assert!(
            w[1]["recompute_time_s"].as_f64().unwrap() < w[0]["recompute_time_s"].as_f64().unwrap(),
            "{w:?}"
        );
    }
    for p in points.iter().filter(|p| p["on_front"] == false) {
        assert!(
            front
                .iter()
                .any(|f| u(&f["peak_bytes"]) <= u(&p["peak_bytes"])
                    && f["recompute_time_s"].as_f64() <= p["recompute_time_s"].as_f64()),
            "{p} is off the front but nothing dominates it"
        );
    }
}

/// The CSV is byte-identical run to run and is what the JSON says (snapshotted: a planner
/// change that moves the curve shows here).
#[test]
fn csv_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.csv"), tmp.path().join("b.csv"));
    for out in [&a, &b] {
        ok(&common::run_cli(&[
            "tradeoff",
            "fixtures/models/gpt2_dynamic.ts17.onnx",
            "--dim",
            "batch=4",
            "--dim",
            "seq=32",
            "--cost",
            "fixed",
            "--points",
            "4",
            "-o",
            out.to_str().unwrap(),
        ]));
    }
    let (ta, tb) = (
        std::fs::read_to_string(&a).unwrap(),
        std::fs::read_to_string(&b).unwrap(),
    );
    assert_eq!(ta, tb);
    assert_eq!(ta.lines().count(), 1 + 4 + 4, "{ta}");
    insta::assert_snapshot!("tradeoff_gpt2_dynamic_csv", ta);
}

/// A model whose peak recomputation cannot lower (the small BERT: weights dominate) has a
/// one-point curve, and the text says why.
#[test]
fn a_peak_recomputation_cannot_lower_is_one_point() {
    let out = ok(&common::run_cli(&[
        "tradeoff",
        "fixtures/models/bert.ts17.onnx",
        "--cost",
        "fixed",
    ]));
    assert!(out.contains("no plan lowers this peak"), "{out}");
    let c = curve("fixtures/models/bert.ts17.onnx", &[]);
    let own = c["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["source"] == "ac")
        .count();
    assert_eq!(own, 1, "{c}");
}

/// Usage errors: a point count out of range, a preset as the curve's planner (exit 2).
#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["tradeoff", "fixtures/models/mlp.ts17.onnx", "--points", "1"][..],
        &[
            "tradeoff",
            "fixtures/models/mlp.ts17.onnx",
            "--planner",
            "full",
        ][..],
        &["tradeoff", "fixtures/models/no_such.onnx"][..],
    ] {
        let r = common::run_cli(args);
        assert_eq!(
            r.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
}
