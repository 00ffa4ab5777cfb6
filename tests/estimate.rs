//! `onnx-ac estimate` (issue #16, item 4) on Llama graphs generated from their configs,
//! structure only (weights external, the data file never written): parameter bytes against
//! the closed form, `none` activations per layer against Korthikanti et al.'s formula as
//! adjusted for these graphs (docs/estimate.md), the JSON format, structure-only loading and
//! its limits, and the errors.

mod common;

use onnx_ac::estimate::llama::LlamaConfig;
use onnx_ac::estimate::{self, Estimate};
use std::path::Path;

/// `onnx-ac estimate ARGS... --json`, read back.
fn estimate(args: &[&str]) -> Estimate {
    let mut argv = vec!["estimate"];
    argv.extend_from_slice(args);
    argv.push("--json");
    let out = common::run_cli(&argv);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

/// A small Llama (GQA 4 heads over 2, tied embedding) for the fast tests.
fn tiny() -> LlamaConfig {
    LlamaConfig {
        name: "tiny",
        hidden: 64,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        intermediate: 160,
        vocab: 256,
        tied_embeddings: true,
    }
}

fn write(c: &LlamaConfig, dir: &Path) -> String {
    let p = dir.join(format!("{}.onnx", c.name));
    c.write(&p).unwrap();
    p.display().to_string()
}

fn plan<'a>(e: &'a Estimate, point: usize, name: &str) -> &'a estimate::PlanMemory {
    e.points[point]
        .plans
        .iter()
        .find(|p| p.plan == name)
        .unwrap_or_else(|| panic!("no plan {name}"))
}

/// Parameter bytes equal the closed form exactly (float32: 4 bytes each), for the three
/// published configs; gradients are as large, AdamW's state twice as large plus its 4-byte
/// step count. The `none` activations of the whole model are those of one layer times the
/// layers plus the rest (every layer is the same), checked against 1- and 2-layer variants.
#[test]
fn parameter_bytes_equal_the_closed_form() {
    let tmp = tempfile::tempdir().unwrap();
    for c in [
        LlamaConfig::llama_3_2_1b(),
        LlamaConfig::llama_3_1_8b(),
        LlamaConfig::llama_3_1_70b(),
    ] {
        let path = write(&c, tmp.path());
        let args = [
            "--dim",
            "batch=1",
            "--dim",
            "seq=64",
            "--optimizer",
            "adamw",
        ];
        let mut full = vec![path.as_str()];
        full.extend_from_slice(&args);
        let e = estimate(&full);
        let count = c.parameter_count();
        assert_eq!(e.parameters.count, count, "{}", c.name);
        assert_eq!(e.parameters.bytes, 4 * count, "{}", c.name);
        // 2 norms + 7 projections per layer, the embedding, the final norm, the LM head.
        let tensors = 9 * c.layers + 2 + usize::from(!c.tied_embeddings);
        assert_eq!(e.parameters.tensors, tensors, "{}", c.name);
        assert_eq!(e.initializers_without_data, tensors, "{}", c.name);
        for p in &e.points[0].plans {
            assert_eq!(p.parameters_bytes, 4 * count);
            assert_eq!(p.gradients_bytes, 4 * count);
            assert_eq!(p.optimizer_state_bytes, 2 * 4 * count + 4);
        }
        // Linear in the layers: L layers = 1 layer + (L − 1) × (2 layers − 1 layer).
        let none_with = |layers: usize| {
            let v = LlamaConfig {
                name: "variant",
                layers,
                ..c.clone()
            };
            let p = write(&v, tmp.path());
            let mut a = vec![p.as_str()];
            a.extend_from_slice(&args);
            plan(&estimate(&a), 0, "none").activations_bytes
        };
        let (one, two) = (none_with(1), none_with(2));
        assert_eq!(
            plan(&e, 0, "none").activations_bytes,
            one + (c.layers as u64 - 1) * (two - one),
            "{}",
            c.name
        );
    }
}

/// Korthikanti et al. (2022) count `s·b·h·(34 + 5·a·s/h)` bytes per layer for a GPT layer in
/// fp16 with dropout. Adjusted to these graphs (docs/estimate.md): 4-byte elements, no
/// dropout (no masks, the softmax output serves both its backward and probs·V), RMSNorm
/// keeping its input and normalized input besides its output, GQA's `repeat_kv` copying K
/// and V to all `a` heads, and the SwiGLU MLP with width I keeping gate, sigmoid, SiLU, up
/// and their product: `4·(10·s·b·h + 5·s·b·I + a·s²·b)` bytes.
fn korthikanti_adjusted(c: &LlamaConfig, b: u64, s: u64) -> u64 {
    let (h, i, a) = (c.hidden as u64, c.intermediate as u64, c.heads as u64);
    4 * (10 * s * b * h + 5 * s * b * i + a * s * s * b)
}

/// The paper's own figure, fp16 and GPT-shaped, for the report.
fn korthikanti_fp16(c: &LlamaConfig, b: u64, s: u64) -> f64 {
    let (h, a) = (c.hidden as f64, c.heads as f64);
    let (b, s) = (b as f64, s as f64);
    s * b * h * (34.0 + 5.0 * a * s / h)
}

/// The `none` plan's activations per layer (2 layers − 1 layer) within 10% of the adjusted
/// formula, for the three configs at two sequence lengths and two batch sizes.
#[test]
fn none_activations_per_layer_match_korthikanti_adjusted() {
    let tmp = tempfile::tempdir().unwrap();
    for c in [
        LlamaConfig::llama_3_2_1b(),
        LlamaConfig::llama_3_1_8b(),
        LlamaConfig::llama_3_1_70b(),
    ] {
        for batch in [1u64, 2] {
            let with = |layers: usize| {
                let v = LlamaConfig {
                    name: "variant",
                    layers,
                    ..c.clone()
                };
                let p = write(&v, tmp.path());
                let b = format!("batch={batch}");
                estimate(&[&p, "--dim", &b, "--dim", "seq=512,2048"])
            };
            let (one, two) = (with(1), with(2));
            for (k, s) in [512u64, 2048].into_iter().enumerate() {
                let per_layer = plan(&two, k, "none").activations_bytes
                    - plan(&one, k, "none").activations_bytes;
                let adjusted = korthikanti_adjusted(&c, batch, s);
                let rel = per_layer as f64 / adjusted as f64 - 1.0;
                eprintln!(
                    "{} b={batch} s={s}: per layer {per_layer} B, adjusted {adjusted} B ({:+.4}%), \
                     Korthikanti fp16 {:.0} B (×2 for fp32: {:+.1}%)",
                    c.name,
                    100.0 * rel,
                    korthikanti_fp16(&c, batch, s),
                    100.0 * (per_layer as f64 / (2.0 * korthikanti_fp16(&c, batch, s)) - 1.0)
                );
                assert!(rel.abs() < 0.10, "{} b={batch} s={s}: {rel:+.4}", c.name);
            }
        }
    }
}

/// The JSON of a small model over two sequence lengths with a budget: the format, every
/// figure (deterministic: the analytic cost model, the tests' host profile).
#[test]
fn json_schema_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(&tiny(), tmp.path());
    let out = common::run_cli(&[
        "estimate",
        &path,
        "--dim",
        "batch=2",
        "--dim",
        "seq=16,32",
        "--optimizer",
        "adamw",
        "--budget",
        "60%act",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .replace(&tmp.path().display().to_string(), "TMP");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["format"], "onnx-ac-estimate");
    assert_eq!(v["points"].as_array().unwrap().len(), 2);
    insta::assert_snapshot!("estimate_tiny_json", text);
}

/// The text table and the chart on the same model: one block and one bar group per
/// sequence length, every size in one unit, a well-formed SVG with a bar per plan stacked
/// from the four categories.
#[test]
fn table_and_chart() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(&tiny(), tmp.path());
    let svg = tmp.path().join("chart.svg");
    let run = |chart: &std::path::Path| {
        common::run_cli(&[
            "estimate",
            &path,
            "--dim",
            "batch=1",
            "--dim",
            "seq=16,32,48",
            "--optimizer",
            "sgd",
            "--budget",
            "60%act",
            "--chart",
            chart.to_str().unwrap(),
        ])
    };
    let out = run(&svg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for s in [16, 32, 48] {
        assert!(text.contains(&format!("batch=1 seq={s}\n")), "{text}");
    }
    assert!(text.contains("sizes in MiB;"), "{text}");
    assert!(
        text.contains("optimizer    sgd: 0 state tensor(s) per parameter"),
        "{text}"
    );
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(chart.ends_with("</svg>\n"));
    // Background, 4 legend swatches, 3 points × 4 plans × 4 categories.
    assert_eq!(chart.matches("<rect ").count(), 1 + 4 + 3 * 4 * 4);
    for label in [
        "parameters",
        "gradients",
        "optimizer state",
        "activations",
        "seq=48",
        "MiB",
    ] {
        assert!(chart.contains(label), "{label} missing");
    }
    // Deterministic: the same command writes the same bytes.
    let again = tmp.path().join("again.svg");
    let out2 = run(&again);
    assert!(out2.status.success());
    assert_eq!(std::fs::read(&again).unwrap(), chart.as_bytes());
    assert_eq!(out2.stdout, text.as_bytes());
}

/// The weights of a generated model are absent: estimate loads them as shapes and dtypes and
/// says so; the commands that need weights refuse the same file, naming the missing data.
#[test]
fn structure_only_loads_absent_weights_only_in_estimate() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(&tiny(), tmp.path());
    let e = estimate(&[&path, "--dim", "batch=1", "--dim", "seq=8"]);
    assert_eq!(e.initializers_without_data, 9 * 2 + 2);
    assert_eq!(e.parameters.count, tiny().parameter_count());
    assert_eq!(e.optimizer, None);
    assert_eq!(plan(&e, 0, "none").optimizer_state_bytes, 0);
    for cmd in [
        vec![
            "inspect",
            path.as_str(),
            "--dim",
            "batch=1",
            "--dim",
            "seq=8",
        ],
        vec![
            path.as_str(),
            "--dim",
            "batch=1",
            "--dim",
            "seq=8",
            "--budget",
            "50%",
            "-o",
        ],
    ] {
        let mut cmd = cmd;
        let out_path = tmp.path().join("out.onnx").display().to_string();
        if cmd.last() == Some(&"-o") {
            cmd.push(&out_path);
        }
        let out = common::run_cli(&cmd);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("external data file 'tiny.onnx.weights' cannot be read"),
            "{err}"
        );
    }
    // A data file shorter than the tensors counts as absent too.
    std::fs::write(tmp.path().join("tiny.onnx.weights"), b"short").unwrap();
    let e = estimate(&[&path, "--dim", "batch=1", "--dim", "seq=8"]);
    assert_eq!(e.initializers_without_data, 20);
}

/// Rewrites every external location of the model at `path` to `location`.
fn relocate(path: &str, location: &str) {
    use onnx_ac::onnx::proto::ModelProto;
    use protobuf::Message;
    let mut m = ModelProto::parse_from_bytes(&std::fs::read(path).unwrap()).unwrap();
    for t in &mut m.graph.as_mut().unwrap().initializer {
        for e in &mut t.external_data {
            if e.key() == "location" {
                e.value = Some(location.into());
            }
        }
    }
    std::fs::write(path, m.write_to_bytes().unwrap()).unwrap();
}

/// Structure-only loading keeps the untrusted-input rules: a location leaving the model's
/// folder is refused (exit 2, the tensor named), absent or not.
#[test]
fn structure_only_still_refuses_locations_outside_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(&tiny(), tmp.path());
    for location in ["../outside.bin", "/etc/passwd"] {
        relocate(&path, location);
        let out = common::run_cli(&["estimate", &path, "--dim", "batch=1", "--dim", "seq=8"]);
        assert_eq!(out.status.code(), Some(2), "{location}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("model.embed_tokens.weight"), "{err}");
        assert!(err.contains(location), "{err}");
    }
}

/// A model whose weights are graph inputs (no initializers): `--params-from-inputs` takes
/// the float inputs matching its glob as parameters, with the same bytes as initializers.
#[test]
fn params_from_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = tiny().build("unused");
    let g = &mut m.graph;
    for i in std::mem::take(&mut g.initializers) {
        g.value_mut(i).initializer = None;
        g.inputs.push(i);
    }
    let path = tmp.path().join("inputs.onnx");
    std::fs::write(
        &path,
        onnx_ac::estimate::llama::structure_only_bytes(&m).unwrap(),
    )
    .unwrap();
    let path = path.display().to_string();
    let e = estimate(&[
        &path,
        "--dim",
        "batch=1",
        "--dim",
        "seq=8",
        "--params-from-inputs",
        "model.layers.*",
        "--params-from-inputs",
        "model.embed_tokens.weight",
        "--params-from-inputs",
        "model.norm.*",
        "--optimizer",
        "adamw",
    ]);
    assert_eq!(e.parameters.count, tiny().parameter_count());
    assert_eq!(e.parameters_from_inputs.len(), 20);
    assert_eq!(e.initializers_without_data, 0);
    // Without it, nothing is trainable.
    let out = common::run_cli(&["estimate", &path, "--dim", "batch=1", "--dim", "seq=8"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no trainable parameter"), "{err}");
    // A glob matching no float input names the inputs.
    let out = common::run_cli(&[
        "estimate",
        &path,
        "--dim",
        "batch=1",
        "--dim",
        "seq=8",
        "--params-from-inputs",
        "input_*",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--params-from-inputs 'input_*' matches no float input")
            && err.contains("'position_ids'"),
        "{err}"
    );
}

/// Usage errors: exit 2 with a message naming the flag.
#[test]
fn clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(&tiny(), tmp.path());
    let cases: [(&[&str], &str); 5] = [
        (
            &["--dim", "batch=1,2", "--dim", "seq=8,16"],
            "--dim batch and --dim seq both list values",
        ),
        (&["--dim", "seq=8,0"], "the value must be positive"),
        (&["--dim", "seq=8", "--dim", "heads=2"], "heads"),
        (
            &["--dim", "seq=8", "--dim", "seq=16"],
            "--dim seq is given twice",
        ),
        (
            &["--dim", "batch=1", "--dim", "seq=8", "--budget", "150%"],
            "150%",
        ),
    ];
    for (args, expected) in cases {
        let mut a = vec!["estimate", path.as_str()];
        a.extend_from_slice(args);
        let out = common::run_cli(&a);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    // The chart may not overwrite the model.
    let out = common::run_cli(&[
        "estimate", &path, "--dim", "batch=1", "--dim", "seq=8", "--chart", &path,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(tmp.path().join("tiny.onnx").metadata().unwrap().len() > 1000);
    // A missing model file.
    let out = common::run_cli(&["estimate", "/nonexistent/model.onnx"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A model with its weights (the dynamic GPT-2 fixture): nothing counts as absent, the
/// parameters are those the training graph trains (inspect's count), and the plans order as
/// they should: full keeps less than selective, selective no more than none, and none's
/// activations grow with the sequence.
#[test]
fn a_model_with_its_weights() {
    let path = common::fixture("gpt2_dynamic.ts17").display().to_string();
    let e = estimate(&[&path, "--dim", "batch=2", "--dim", "seq=16,32"]);
    assert_eq!(e.initializers_without_data, 0);
    let inspect = common::run_cli(&[
        "inspect", &path, "--dim", "batch=2", "--dim", "seq=16", "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        serde_json::json!(e.parameters.bytes),
        v["parameters"]["bytes"],
        "{v}"
    );
    for k in 0..2 {
        let act = |p| plan(&e, k, p).activations_bytes;
        assert!(act("full") < act("selective") && act("selective") <= act("none"));
    }
    assert!(plan(&e, 1, "none").activations_bytes > plan(&e, 0, "none").activations_bytes);
}

/// An integer initializer without data (a Reshape's target shape) leaves the shapes computed
/// from it unknown: the error says which tensor has no data.
#[test]
fn absent_shape_tensor_is_named() {
    use onnx_ac::onnx::proto::{
        tensor_proto::DataLocation, ModelProto, StringStringEntryProto, TensorProto,
    };
    use protobuf::{EnumOrUnknown, Message};
    let tmp = tempfile::tempdir().unwrap();
    let path = write(&tiny(), tmp.path());
    let mut m = ModelProto::parse_from_bytes(&std::fs::read(&path).unwrap()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let name = "/model.layers.0/self_attn/q/Reshape_shape_output_0";
    let k = g.node.iter().position(|n| n.output[0] == name).unwrap();
    g.node.remove(k);
    let mut t = TensorProto::new();
    t.name = Some(name.into());
    t.data_type = Some(7); // int64
    t.dims = vec![4];
    t.data_location = Some(EnumOrUnknown::new(DataLocation::EXTERNAL));
    for (key, value) in [("location", "shape.bin"), ("offset", "0"), ("length", "32")] {
        let mut e = StringStringEntryProto::new();
        e.key = Some(key.into());
        e.value = Some(value.into());
        t.external_data.push(e);
    }
    g.initializer.push(t);
    std::fs::write(&path, m.write_to_bytes().unwrap()).unwrap();
    let out = common::run_cli(&["estimate", &path, "--dim", "batch=1", "--dim", "seq=8"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "1 non-float initializer(s) have no data ('{name}')"
        )),
        "{err}"
    );
}
