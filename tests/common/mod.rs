//! Shared helpers of the whole-pipeline tests.
#![allow(dead_code)]

use onnx_ac_passes::autodiff::TrainingInfo;
use onnx_ac_passes::ir::Model;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `fixtures/models/STEM.onnx`.
pub fn fixture(stem: &str) -> PathBuf {
    root().join(format!("fixtures/models/{stem}.onnx"))
}

/// The training graph of the fixture model at `path` with `dims` bound: cross-entropy of
/// its `logits` output against a new `labels` input (what every fixture is exported for).
/// Simulations model the fixed host profile tests use (a 2-core AVX2 machine), never the
/// machine the tests run on.
pub fn training_at(path: &Path, dims: &BTreeMap<String, i64>) -> (Model, TrainingInfo) {
    fixed_host();
    onnx_ac::load_training_graph(path, dims, &onnx_ac_passes::synth::cross_entropy())
        .unwrap_or_else(|e| panic!("training graph of {}: {e}", path.display()))
}

/// Makes this test process's simulations model [`onnx_ac::plan::host::TEST_PROFILE`].
pub fn fixed_host() {
    let host = onnx_ac::plan::host::Host::parse(onnx_ac::plan::host::TEST_PROFILE).unwrap();
    assert!(onnx_ac::plan::host::set(host), "another host was set first");
}

/// [`training_at`] of `fixtures/models/STEM.onnx`, e.g. `training("bert_dynamic.ts17",
/// &[("batch", 2), ("seq", 16)])`.
pub fn training(stem: &str, dims: &[(&str, i64)]) -> (Model, TrainingInfo) {
    let dims = dims.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    training_at(&fixture(stem), &dims)
}

/// Every fixture model of `fixtures/export.py` (sorted): those with reference data
/// (`STEM.ref.pb`). `gpt2_deep.ts17` (`fixtures/export_deep.py`) has none and is tested by
/// `tests/deep.rs`.
pub fn fixture_models() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures/models"))
        .expect("fixtures/models")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .filter(|p| p.with_extension("ref.pb").exists())
        .collect();
    v.sort();
    v
}

/// `mlp.ts17` for `fixtures/models/mlp.ts17.onnx`.
pub fn stem(p: &Path) -> String {
    p.file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".onnx")
        .to_string()
}

/// The project venv's Python (made by scripts/setup.sh); tests that need onnx or
/// onnxruntime in Python fail loudly without it rather than skip.
pub fn python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `bash scripts/setup.sh` first",
        p.display()
    );
    p
}

/// Runs a script from scripts/ with the venv's Python; returns stdout, panics with the
/// script's output if it fails.
pub fn run_py(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(root().join("scripts").join(script))
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// Saves `m` to `path` and runs it in ONNX Runtime (optimizations off, one thread) on its
/// single float input `x`: every output, as f64.
pub fn run_on_x(m: &Model, path: &Path, x_dims: &[i64], x: &[f32]) -> Vec<Vec<f64>> {
    use onnx_ac::runtime::{GraphOpt, HostTensor, ModelSession, RunOptions};
    onnx_ac::onnx::save(m, path, &Default::default()).expect("save");
    let opts = RunOptions {
        graph_opt: GraphOpt::Disabled,
        intra_threads: Some(1),
        ..RunOptions::default()
    };
    let mut s = ModelSession::prepare(path, &opts).expect("session");
    let input = HostTensor::from_f32("x", x_dims, x).expect("x");
    let out = s.run(&[input]).expect("run");
    out.outputs
        .iter()
        .map(|t| t.to_f64().expect("f64"))
        .collect()
}

/// Runs the onnx-ac binary from the repository root, its simulations modelling the tests'
/// host profile (never this machine), without Rust backtraces in its messages.
pub fn run_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_onnx-ac"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env(
            onnx_ac::plan::host::HOST_ENV,
            onnx_ac::plan::host::TEST_PROFILE,
        )
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("run onnx-ac")
}

/// Plants in `dir` what a hostile working directory would hold: an `onnxruntime.py` that
/// writes the returned marker file when imported, and a `.venv` whose libonnxruntime is not a
/// library.
pub fn plant_runtime_trap(dir: &Path) -> PathBuf {
    let marker = dir.join("PWNED");
    std::fs::write(
        dir.join("onnxruntime.py"),
        format!(
            "open({:?}, 'w').write('imported')\n",
            marker.display().to_string()
        ),
    )
    .unwrap();
    let capi = dir.join(".venv/lib/python3.11/site-packages/onnxruntime/capi");
    std::fs::create_dir_all(&capi).unwrap();
    std::fs::write(capi.join("libonnxruntime.so.1.31.1"), b"not a library").unwrap();
    marker
}

/// The optimizer flags matching `OPTIMIZERS` in fixtures/optimizer_refs.py (whose torch
/// references tests/optimizer.rs and tests/train_state.rs compare with).
pub const OPTIMIZER_CASES: &[(&str, &[&str])] = &[
    ("sgd", &["--lr", "0.1", "--weight-decay", "0.01"]),
    (
        "momentum",
        &["--lr", "0.1", "--momentum", "0.9", "--weight-decay", "0.01"],
    ),
    (
        "adamw",
        &[
            "--lr",
            "0.01",
            "--betas",
            "0.9,0.999",
            "--eps",
            "1e-8",
            "--weight-decay",
            "0.01",
        ],
    ),
];

/// The standard output of a run that must have succeeded (exit 0; its stderr in the message).
pub fn stdout_of_success(out: &std::process::Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A float or other tensor's `ValueInfoProto` with static dims (for graphs the tests build).
pub fn value_info(
    name: &str,
    dtype: onnx_ac_passes::ir::DType,
    dims: &[i64],
) -> onnx_ac::onnx::proto::ValueInfoProto {
    use onnx_ac::onnx::proto::{tensor_shape_proto, type_proto, TensorShapeProto, TypeProto};
    let mut shape = TensorShapeProto::new();
    for &d in dims {
        let mut dim = tensor_shape_proto::Dimension::new();
        dim.set_dim_value(d);
        shape.dim.push(dim);
    }
    let mut tensor = type_proto::Tensor::new();
    tensor.elem_type = Some(dtype.to_onnx());
    tensor.shape = protobuf::MessageField::some(shape);
    let mut ty = TypeProto::new();
    ty.set_tensor_type(tensor);
    let mut v = onnx_ac::onnx::proto::ValueInfoProto::new();
    v.name = Some(name.to_string());
    v.type_ = protobuf::MessageField::some(ty);
    v
}
