//! What each `--budget` form means, and what an unreachable budget says (issue #13 items 6
//! and 7): one test per form on the fixtures, through the CLI with the tests' host profile.
//! `X%` is X% of the plain training step's simulated peak; `X%act` is that peak with only
//! X% of its activation memory, plus the gradients not yet allocated at it; a budget at or
//! above the plain peak recomputes nothing and is always met; an unreachable budget's
//! suggestion is reachable by the same planner, and `--best-effort` writes that plan.

mod common;

use serde_json::Value;
use std::process::Output;

const BERT: &str = "fixtures/models/bert.ts17.onnx";
const CNN: &str = "fixtures/models/cnn.ts17.onnx";
const GPT2_DYN: &str = "fixtures/models/gpt2_dynamic.ts17.onnx";
const BERT_DYN: &str = "fixtures/models/bert_dynamic.ts17.onnx";
/// Dims at which activations dominate the dynamic transformers' peak.
const DIMS: [&str; 4] = ["--dim", "batch=8", "--dim", "seq=64"];

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The main command with `--json` and the fixed cost table: its summary.
fn summary(model: &str, budget: &str, extra: &[&str]) -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.onnx");
    let mut args = vec![
        model,
        "--budget",
        budget,
        "--json",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    if !extra.contains(&"--cost") {
        args.extend(["--cost", "fixed"]);
    }
    let r = common::run_cli(&args);
    assert_eq!(r.status.code(), Some(0), "{args:?}: {}", stderr(&r));
    serde_json::from_slice(&r.stdout).unwrap()
}

/// The main command expected to find `budget` unreachable: exit 3, nothing written; its
/// error line.
fn unreachable(model: &str, budget: &str, extra: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.onnx");
    let mut args = vec![model, "--budget", budget, "-o", out.to_str().unwrap()];
    args.extend(extra);
    let r = common::run_cli(&args);
    let err = stderr(&r);
    assert_eq!(r.status.code(), Some(3), "{args:?}: {err}");
    assert!(!out.exists());
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );
    err
}

/// The budget an unreachable error suggests (`use --budget SIZE or more`).
fn suggested(err: &str) -> String {
    err.split("use --budget ")
        .nth(1)
        .and_then(|s| s.split(" or more").next())
        .unwrap_or_else(|| panic!("no suggested budget in: {err}"))
        .replace(' ', "")
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

/// `X%` is X% of the plain step's simulated peak (`initial_peak_bytes`); plans aim 1% under
/// a budget below that peak. `100%` recomputes nothing and is met exactly (the plain graph
/// is written when the empty plan's rewrite would add bytes); 99% and 97% are reachable on
/// the CNN and met.
#[test]
fn percent_is_a_share_of_the_plain_peak() {
    for (pct, p) in [("100%", 100u64), ("99%", 99), ("97%", 97)] {
        let s = summary(CNN, pct, &[]);
        let plain = u(&s, "initial_peak_bytes");
        assert_eq!(u(&s, "budget_bytes"), plain * p / 100, "{pct}");
        assert_eq!(s["within_budget"], true, "{pct}: {s}");
        let fin = u(&s, "final_peak_bytes");
        if p == 100 {
            assert_eq!(u(&s, "recomputed_activations"), 0, "{pct}");
            assert!(fin <= plain, "{pct}: {fin} > {plain}");
        } else {
            let budget = u(&s, "budget_bytes");
            assert!(
                fin <= budget - budget / 100,
                "{pct}: {fin} misses the margin"
            );
            assert!(u(&s, "recomputed_activations") > 0, "{pct}");
        }
    }
    // Also on the transformers, whose empty-plan rewrite differs from the plain graph.
    for m in [BERT, GPT2_DYN] {
        let s = summary(m, "100%", &DIMS[..if m == BERT { 0 } else { 4 }]);
        assert_eq!(s["within_budget"], true, "{m}: {s}");
        assert_eq!(u(&s, "recomputed_activations"), 0, "{m}");
    }
}

/// `X%act`: the plain peak less (100 − X)% of the activation memory (the buffers the plain
/// backward keeps: `retained_memory_bytes + saved_memory_bytes` of the summary), plus the
/// gradients the plain peak has not allocated. 100%act recomputes nothing and is met; on
/// BERT at 8 × 64, 80%act recomputes something and fits.
#[test]
fn activation_percent_keeps_that_share_of_activation_memory() {
    let (tm, info) = common::training("bert_dynamic.ts17", &[("batch", 8), ("seq", 64)]);
    let g = &tm.graph;
    let sim = onnx_ac::plan::simulate::simulate(
        g,
        &onnx_ac::plan::simulate::ort_default_order(g),
        Some(&info),
    );
    let grads: u64 = info.grads.iter().filter_map(|&v| g.value_bytes(v)).sum();
    let unallocated = grads - sim.breakdown.gradients;
    for keep in [100u64, 80, 50] {
        let s = summary(BERT_DYN, &format!("{keep}%act"), &DIMS);
        let plain = u(&s, "initial_peak_bytes");
        assert_eq!(plain, sim.peak_bytes);
        let activations = u(&s, "retained_memory_bytes") + u(&s, "saved_memory_bytes");
        let cut = (activations as f64 * (100 - keep) as f64 / 100.0) as u64;
        assert_eq!(
            u(&s, "budget_bytes"),
            plain - cut + unallocated,
            "{keep}%act: {s}"
        );
        assert_eq!(s["within_budget"], true, "{keep}%act: {s}");
        let recomputed = u(&s, "recomputed_activations");
        if keep == 100 {
            assert_eq!(recomputed, 0);
        } else {
            assert!(recomputed > 0, "{keep}%act recomputes nothing: {s}");
        }
    }
}

/// A byte budget below what any plan reaches on a fixed-shape model: exit 3, the lowest
/// peak planner ac reaches, no `--dim` advice (the model has no dimension to change), and a
/// suggested budget that is then met. On a model with symbolic dims the advice names them.
#[test]
fn unreachable_budget_suggests_what_the_planner_reaches() {
    let err = unreachable(BERT, "60%", &["--cost", "fixed"]);
    assert!(
        err.contains("the lowest peak planner ac reaches is"),
        "{err}"
    );
    assert!(
        !err.contains("--dim"),
        "a fixed-shape model gets --dim advice: {err}"
    );
    let s = summary(BERT, &suggested(&err), &[]);
    assert_eq!(s["within_budget"], true, "{s}");

    let mut args = vec!["--cost", "fixed"];
    args.extend(DIMS);
    let err = unreachable(GPT2_DYN, "1MB", &args);
    assert!(err.contains("--dim batch=8 --dim seq=64"), "{err}");
}

/// `--planner optimal` (issue #13 item 6): at a budget below its reach it suggests a budget
/// that it then meets (it said "use 22.68 MiB" and refused 26 MiB before); `--best-effort`
/// writes its lowest-peak plan, which recomputes something and peaks below the plain graph.
/// The same holds for `ac` and `mutwo`.
#[test]
fn every_planner_meets_the_budget_it_suggests() {
    for planner in ["optimal", "ac", "mutwo"] {
        let mut args = vec!["--planner", planner, "--cost", "analytic"];
        args.extend(DIMS);
        let err = unreachable(GPT2_DYN, "1MB", &args);
        assert!(
            err.contains(&format!("the lowest peak planner {planner} reaches is")),
            "{err}"
        );
        let budget = suggested(&err);
        let s = summary(GPT2_DYN, &budget, &args);
        assert_eq!(s["within_budget"], true, "{planner} at {budget}: {s}");
        let best = {
            let mut a = args.clone();
            a.push("--best-effort");
            summary(GPT2_DYN, "1MB", &a)
        };
        assert!(u(&best, "recomputed_activations") > 0, "{planner}: {best}");
        assert!(
            u(&best, "final_peak_bytes") < u(&best, "initial_peak_bytes"),
            "{planner}: {best}"
        );
        // The suggestion is made from the best-effort plan's peak: it covers it.
        assert!(
            u(&s, "budget_bytes") - u(&s, "budget_bytes") / 100 >= u(&best, "final_peak_bytes"),
            "{planner}: suggested {budget} below its best effort {}",
            u(&best, "final_peak_bytes")
        );
    }
}
