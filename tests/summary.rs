//! The main command's summary as a user reads it (issue #13 items 3 and 4): one unit for
//! every byte figure, each fact once, the files written last; and its JSON fields.

mod common;

use std::path::Path;
use std::process::Output;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(args: &[&str]) -> Output {
    common::run_cli(args)
}

fn stdout(out: &Output, tmp: &Path) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).replace(&tmp.display().to_string(), "<tmp>")
}

/// The byte units a text uses: whole words such as `MiB` or `GB`.
fn byte_units(text: &str) -> Vec<&str> {
    const UNITS: [&str; 10] = [
        "B", "KiB", "MiB", "GiB", "TiB", "kB", "KB", "MB", "GB", "TB",
    ];
    let mut found: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || "(),:;".contains(c))
        .filter(|w| UNITS.contains(w))
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// The 6-layer GPT-2 of the demo at 30%act with the fixed cost table: the whole text is
/// deterministic, so it is snapshotted; it uses one byte unit, names the cost model once,
/// prints nothing on stderr, and its last line is the model written.
#[test]
fn text_summary_of_the_demo_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("gpt2.ac.onnx");
    let r = run(&[
        "fixtures/models/gpt2_deep.ts17.onnx",
        "--budget",
        "30%act",
        "--cost",
        "fixed",
        "-o",
        out.to_str().unwrap(),
    ]);
    let text = stdout(&r, tmp.path());
    assert!(
        r.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    insta::assert_snapshot!("text_gpt2_deep_30act_fixed", text);
    assert_eq!(byte_units(&text), ["MiB"], "one unit:\n{text}");
    assert_eq!(text.matches("fixed table").count(), 1, "{text}");
    assert!(!text.contains("warning"), "{text}");
    let last = text.lines().last().unwrap();
    let size = std::fs::metadata(&out).unwrap().len() as f64 / (1 << 20) as f64;
    assert_eq!(last, format!("wrote <tmp>/gpt2.ac.onnx ({size:.2} MiB)"));
}

/// `--json` keeps the fields docs/cli.md documents and adds `budget_requested`, `warnings`
/// and `written`; with `--decisions` and `--save-plan` every file written is listed, the
/// model first, and the text lists them in the same order as its last lines.
#[test]
fn json_summary_fields_and_files_written() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name).display().to_string();
    let (out, csv, plan) = (p("mlp.ac.onnx"), p("d.csv"), p("plan.json"));
    let args = |o: &str, json: bool| {
        let mut v = vec![
            "fixtures/models/mlp.ts17.onnx".to_string(),
            "--budget".into(),
            "2GB".into(),
            "--cost".into(),
            "fixed".into(),
            "-o".into(),
            o.to_string(),
            "--decisions".into(),
            csv.clone(),
            "--save-plan".into(),
            plan.clone(),
        ];
        if json {
            v.push("--json".into());
        }
        v
    };
    let a = args(&out, true);
    let r = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let j: serde_json::Value = serde_json::from_str(&stdout(&r, tmp.path())).unwrap();
    for field in [
        "format",
        "version",
        "planner",
        "cost_model",
        "budget_bytes",
        "initial_peak_bytes",
        "final_peak_bytes",
        "peak_source",
        "reduction_bytes",
        "reduction_percent",
        "initial_step_time_s",
        "final_step_time_s",
        "step_time_source",
        "overhead_s",
        "overhead_percent",
        "recompute_time_s",
        "retained_activations",
        "recomputed_activations",
        "retained_percent",
        "recomputed_percent",
        "retained_memory_bytes",
        "saved_memory_bytes",
        "step_matmul_flops",
        "added_matmul_flops",
        "added_matmul_flops_percent",
        "simulated_initial_peak_bytes",
        "simulated_final_peak_bytes",
        "unallocated_bytes",
        "within_budget",
        "verify",
        "budget_requested",
        "warnings",
        "written",
    ] {
        assert!(j.get(field).is_some(), "missing {field}: {j}");
    }
    assert_eq!(j["budget_requested"], "2000000000B");
    assert_eq!(
        j["cost_model"]
            .as_str()
            .unwrap()
            .matches("cost model")
            .count(),
        0
    );
    let written: Vec<&str> = j["written"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        written,
        ["<tmp>/mlp.ac.onnx", "<tmp>/d.csv", "<tmp>/plan.json"]
    );
    let bytes = j["written"][0]["bytes"].as_u64().unwrap();
    assert_eq!(bytes, std::fs::metadata(&out).unwrap().len());

    let out2 = p("mlp2.ac.onnx");
    let a = args(&out2, false);
    std::fs::remove_file(&csv).unwrap();
    std::fs::remove_file(&plan).unwrap();
    let r = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let text = stdout(&r, tmp.path());
    let tail: Vec<&str> = text.lines().rev().take(3).collect();
    assert!(tail[2].starts_with("wrote <tmp>/mlp2.ac.onnx ("), "{text}");
    assert!(tail[1].starts_with("wrote <tmp>/d.csv ("), "{text}");
    assert!(tail[0].starts_with("wrote <tmp>/plan.json ("), "{text}");
    assert_eq!(byte_units(&text).len(), 1, "one unit:\n{text}");
}

/// What the budget bounds is said in one sentence in `--help` and in README next to the
/// commands, in the terms the summary's step peak uses.
#[test]
fn the_budget_is_defined_where_it_is_given() {
    let help = run(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    for text in [&help, &readme] {
        assert!(
            text.contains(
                "bounds the peak of the whole training step as ONNX Runtime allocates it \
                 (weights, prepacked weights, inputs, activations, gradients, transients), not \
                 the process's code, the allocator's arena slack or Python"
            ),
            "{text}"
        );
        assert!(text.contains("step peak"), "{text}");
    }
}
