//! `onnx-ac sweep` (issue #16 item 3): every configuration of the `--dim` lists planned under
//! one budget, as CSV, a text heatmap and an SVG one.

mod common;

use std::process::Output;

fn ok(out: &Output) -> String {
    common::stdout_of_success(out)
}

const MODEL: &str = "fixtures/models/gpt2_dynamic.ts17.onnx";

/// An absolute budget over a 3 × 3 grid of the small GPT-2 (its position table has 64 rows,
/// so sequences up to 64): the small configurations fit
/// without recomputation, the largest cannot fit at all, some fit by recomputing; the text
/// names the largest batch per sequence length, the CSV and SVG are deterministic.
#[test]
fn absolute_budget_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("sweep.csv");
    let svg = tmp.path().join("sweep.svg");
    let args = [
        "sweep",
        MODEL,
        "--dim",
        "batch=2,8,32",
        "--dim",
        "seq=16,32,64",
        "--budget",
        "20MB",
        "--cost",
        "fixed",
        "-o",
        csv.to_str().unwrap(),
        "--heatmap",
        svg.to_str().unwrap(),
    ];
    let text = ok(&common::run_cli(&args));
    let csv1 = std::fs::read_to_string(&csv).unwrap();
    let svg1 = std::fs::read_to_string(&svg).unwrap();
    // Run again: byte-identical (parallel planning must not change the order or figures).
    ok(&common::run_cli(&args));
    assert_eq!(csv1, std::fs::read_to_string(&csv).unwrap());
    assert_eq!(svg1, std::fs::read_to_string(&svg).unwrap());

    let rows: Vec<Vec<&str>> = csv1
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 9, "{csv1}");
    let at = |b: &str, s: &str| {
        rows.iter()
            .find(|r| r[0] == b && r[1] == s)
            .unwrap()
            .clone()
    };
    // batch 2, seq 16: fits with nothing to recompute.
    let small = at("2", "16");
    assert_eq!(small[5], "true", "{small:?}");
    assert_eq!(small[6], "0.00", "{small:?}");
    // batch 32, seq 64: unreachable, with the lowest peak named.
    let big = at("32", "64");
    assert_eq!(big[5], "false", "{big:?}");
    assert!(
        big[8].starts_with("unreachable: the lowest peak ac reaches is"),
        "{big:?}"
    );
    assert!(big[4].parse::<u64>().unwrap() > big[2].parse::<u64>().unwrap());
    // Some configuration fits only by recomputing.
    assert!(
        rows.iter().any(|r| r[5] == "true" && r[6] != "0.00"),
        "{csv1}"
    );
    assert!(text.contains("largest batch that fits, per seq:"), "{text}");
    assert!(text.contains("  seq=16: batch=32"), "{text}");
    insta::assert_snapshot!("sweep_gpt2_dynamic_20MB_csv", csv1);
    // The SVG: one cell per configuration, a numbered reason per unreachable one.
    assert!(svg1.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(svg1.matches("<rect x=").count(), 9);
    let unreachable = rows.iter().filter(|r| r[5] == "false").count();
    assert!(unreachable >= 1);
    assert!(
        svg1.contains(&format!("({unreachable}) unreachable")),
        "{svg1}"
    );
}

/// A relative budget is relative to each configuration: no "largest that fits" section. A
/// sequence longer than the position table (128 > 64 rows) is a configuration ONNX Runtime
/// cannot run: an error naming the table, not a plan.
#[test]
fn relative_budget_has_no_largest_section() {
    let text = ok(&common::run_cli(&[
        "sweep",
        MODEL,
        "--dim",
        "batch=4,8",
        "--dim",
        "seq=32,128",
        "--budget",
        "50%act",
        "--cost",
        "fixed",
    ]));
    assert!(!text.contains("largest"), "{text}");
    assert!(text.contains("batch (rows) by seq (columns)"), "{text}");
    assert!(
        text.contains(
            "batch=8 seq=128: fixtures/models/gpt2_dynamic.ts17.onnx: node '/transformer/wpe/Gather' \
             (Gather): index 64 is out of range for axis 0 of 'transformer.wpe.weight', of size 64"
        ),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("4 "))
        .unwrap();
    assert!(row.trim_end().ends_with("err"), "{text}");
}

/// Bad lists and too many configurations are usage errors (exit 2) naming the flag.
#[test]
fn bad_dim_lists_exit_2() {
    for (dims, why) in [
        ("batch=1,,2", "not an integer"),
        ("batch=2,2", "given twice"),
        ("batch=0", "positive"),
    ] {
        let r = common::run_cli(&["sweep", MODEL, "--dim", dims, "--budget", "50%"]);
        assert_eq!(r.status.code(), Some(2));
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains(why), "{dims}: {err}");
    }
    let many: String = (1..=40)
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let r = common::run_cli(&[
        "sweep",
        MODEL,
        "--dim",
        &format!("batch={many}"),
        "--dim",
        &format!("seq={many}"),
        "--budget",
        "50%",
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("more than 1024 configurations"));
}

/// `--cost measured` profiles configurations in ONNX Runtime (one at a time): each cell names
/// its cost model, and where a step fits the budget to be profiled it is a measured one.
#[test]
fn measured_costs_profile_each_configuration() {
    let out = ok(&common::run_cli(&[
        "sweep",
        MODEL,
        "--dim",
        "batch=2,4",
        "--dim",
        "seq=32",
        "--budget",
        "100%",
        "--cost",
        "measured",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    for c in cells {
        let model = c["cost_model"].as_str().unwrap();
        // 100%: every step fits its own budget, so each is profiled as it is.
        assert!(model.contains("with the profile of"), "{model}");
        assert_eq!(c["fits"], true, "{c}");
    }
}
