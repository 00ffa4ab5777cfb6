//! `onnx-ac train` with a state file and a batches file (issue #15): `--init-state` writes the
//! step's initial parameters and optimizer state (safetensors), `train --state` starts from it
//! and `--save-state` writes where it ended — the same tensors a hand loop reaches, the same
//! as the `-o` step's defaults, the same with and without IO binding, and resumable; `--data`
//! batches give torch.optim's losses; README's demo (GPT-2, AdamW, 50 steps, with and without
//! a 30%act plan) ends at torch's losses and weights; bad state and batches files are exit 2
//! naming the tensor.

mod common;

use onnx_ac::runtime::{HostTensor, ModelSession, RunOptions};
use onnx_ac_passes::ir::{Tensor, TensorData};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

fn run_ok(args: &[&str]) -> String {
    let out = common::run_cli(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs the CLI expecting exit 2; returns stderr.
fn run_2(args: &[&str]) -> String {
    let out = common::run_cli(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An `.npy` array: its type code, shape and bytes.
fn npy(descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: String = shape.iter().map(|d| format!("{d}, ")).collect();
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({}), }}",
        if fortran { "True" } else { "False" },
        dims.trim_end()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// An archive's arrays: (name, `.npy` bytes).
type Arrays<'a> = Vec<(&'a str, Vec<u8>)>;

/// Writes an `.npz` (stored, as `numpy.savez` does) of `arrays` (name, `.npy` bytes).
fn write_npz(path: &Path, arrays: &[(&str, Vec<u8>)]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in arrays {
        z.start_file(format!("{name}.npy"), opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

fn host(name: &str, t: &Tensor) -> HostTensor {
    let TensorData::Raw(b) = &t.data else {
        panic!("{name} is not raw");
    };
    HostTensor::new(name, t.dtype, t.dims.clone(), b.to_vec()).unwrap()
}

/// The MLP fixture's saved batch (x [8, 64] f32, labels [8] i64).
fn reference_batch() -> Vec<HostTensor> {
    let data: BTreeMap<String, Tensor> =
        onnx_ac::onnx::load_tensors(&common::root().join("fixtures/models/mlp.ts17.ref.pb"))
            .unwrap()
            .into_iter()
            .collect();
    vec![host("x", &data["x"]), host("labels", &data["labels"])]
}

/// An `.npz` of `batches` (each the step's data inputs, x then labels).
fn batches_npz(path: &Path, batches: &[Vec<HostTensor>]) {
    let arrays: Vec<(&str, Vec<u8>)> = ["x", "labels"]
        .iter()
        .enumerate()
        .map(|(i, &name)| {
            let t = &batches[0][i];
            let mut shape = vec![batches.len()];
            shape.extend(t.dims.iter().map(|&d| d as usize));
            let data: Vec<u8> = batches.iter().flat_map(|b| b[i].data.clone()).collect();
            let descr = if name == "x" { "<f4" } else { "<i8" };
            (name, npy(descr, false, &shape, &data))
        })
        .collect();
    write_npz(path, &arrays);
}

/// The state a step's state file holds, by name.
fn read_state(step: &Path, file: &Path) -> BTreeMap<String, HostTensor> {
    let m = onnx_ac::onnx::load(step).unwrap();
    let names = onnx_ac::train::state_names(&m);
    onnx_ac::state::read(file, &onnx_ac::state::slots(&m, &names))
        .unwrap()
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect()
}

fn losses(stdout: &str) -> Vec<f64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("step "))
        .map(|l| l.split("loss ").nth(1).unwrap().trim().parse().unwrap())
        .collect()
}

/// A momentum step of the MLP fixture and its `--init-state` file.
fn momentum_step(dir: &Path) -> (PathBuf, PathBuf) {
    let step = dir.join("step.onnx");
    let init = dir.join("init.safetensors");
    run_ok(&[
        "train-graph",
        s(&common::fixture("mlp.ts17")),
        "--optimizer",
        "momentum",
        "--lr",
        "0.05",
        "-o",
        s(&step),
        "--init-state",
        s(&init),
    ]);
    (step, init)
}

#[test]
fn a_state_file_round_trips_through_training() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (step, init) = momentum_step(d);
    // The initial state is the step's defaults: the weights and zero momenta.
    let m = onnx_ac::onnx::load(&step).unwrap();
    let state0 = read_state(&step, &init);
    assert_eq!(state0.len(), 12, "6 parameters and their momenta");
    for (name, t) in &state0 {
        let v = m.graph.value(m.graph.value_by_name()[name.as_str()]);
        assert_eq!(host(name, v.initializer.as_ref().unwrap()), *t, "{name}");
        if name.ends_with(".momentum") {
            assert!(t.data.iter().all(|&b| b == 0), "{name} is not zero");
        }
    }

    // Three different batches, cycled over 5 steps.
    let batches: Vec<Vec<HostTensor>> = (0..3)
        .map(|k| onnx_ac::profile::random_inputs(&m.graph, 100 + k).unwrap())
        .collect();
    let npz = d.join("b.npz");
    batches_npz(&npz, &batches);
    let (saved, out) = (d.join("s5.safetensors"), d.join("t5.onnx"));
    let text = run_ok(&[
        "train",
        s(&step),
        "--state",
        s(&init),
        "--data",
        s(&npz),
        "--steps",
        "5",
        "--save-state",
        s(&saved),
        "-o",
        s(&out),
    ]);
    assert!(
        text.contains(&format!("wrote {}", saved.display())),
        "{text}"
    );
    let trained = read_state(&step, &saved);

    // The same 5 steps by hand, host copies in and out.
    let mut session = ModelSession::prepare(&step, &RunOptions::default()).unwrap();
    let mut state: Vec<HostTensor> = state0.values().cloned().collect();
    let mut hand = Vec::new();
    for k in 0..5 {
        let feeds: Vec<HostTensor> = batches[k % 3]
            .iter()
            .cloned()
            .chain(state.drain(..))
            .collect();
        for mut t in session.run(&feeds).unwrap().outputs {
            if t.name == "loss" {
                hand.push(t.to_f64().unwrap()[0]);
            } else if let Some(n) = t.name.strip_suffix(".next").map(str::to_string) {
                t.name = n;
                state.push(t);
            }
        }
    }
    for t in &state {
        assert!(
            trained[&t.name] == *t,
            "{}: --save-state differs from the hand loop",
            t.name
        );
    }
    let printed = losses(&text);
    assert_eq!(printed.len(), 5);
    for (a, b) in printed.iter().zip(&hand) {
        assert!((a - b).abs() < 1e-6, "{printed:?} vs {hand:?}");
    }
    // -o's defaults are the same state.
    let written = onnx_ac::onnx::load(&out).unwrap();
    let by_name = written.graph.value_by_name();
    for (name, t) in &trained {
        let v = written.graph.value(by_name[name.as_str()]);
        assert_eq!(host(name, v.initializer.as_ref().unwrap()), *t, "{name}");
    }
    // Without IO binding: the same bits.
    let plain = d.join("plain.safetensors");
    run_ok(&[
        "train",
        s(&step),
        "--state",
        s(&init),
        "--data",
        s(&npz),
        "--steps",
        "5",
        "--no-io-binding",
        "--save-state",
        s(&plain),
    ]);
    assert!(
        read_state(&step, &plain) == trained,
        "IO binding changed the result"
    );

    // Resumed: 2 steps, then 3 from the saved state, on one repeated batch, equal 5 at once.
    let one = d.join("one.npz");
    batches_npz(&one, &batches[..1]);
    let (s2, s23, s5) = (d.join("s2"), d.join("s23"), d.join("s5b"));
    let train = |from: &Path, steps: &str, to: &Path| {
        run_ok(&[
            "train",
            s(&step),
            "--state",
            s(from),
            "--data",
            s(&one),
            "--steps",
            steps,
            "--save-state",
            s(to),
        ])
    };
    train(&init, "2", &s2);
    train(&s2, "3", &s23);
    train(&init, "5", &s5);
    assert!(
        read_state(&step, &s23) == read_state(&step, &s5),
        "resuming changed the result"
    );
}

/// `train --data` on the fixture's saved batch gives torch.optim's losses (float64 torch, the
/// tolerance of tests/optimizer.rs) from a state written by `--init-state` of a rewritten step.
#[test]
fn data_file_batches_give_torch_losses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let refs: BTreeMap<String, Tensor> =
        onnx_ac::onnx::load_tensors(&common::root().join("fixtures/models/mlp.ts17.optim.ref.pb"))
            .unwrap()
            .into_iter()
            .collect();
    let npz = d.join("b.npz");
    batches_npz(&npz, &[reference_batch()]);
    for (opt, flags) in common::OPTIMIZER_CASES {
        let (step, init) = (d.join(format!("{opt}.onnx")), d.join(format!("{opt}.st")));
        let mut args = vec![
            s(&common::fixture("mlp.ts17")).to_string(),
            "--optimizer".into(),
            opt.to_string(),
            "--budget".into(),
            "100%".into(),
            "--planner".into(),
            "full".into(),
            "--cost".into(),
            "analytic".into(),
            "-o".into(),
            s(&step).into(),
            "--init-state".into(),
            s(&init).into(),
        ];
        args.extend(flags.iter().map(|f| f.to_string()));
        run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let text = run_ok(&[
            "train",
            s(&step),
            "--state",
            s(&init),
            "--data",
            s(&npz),
            "--steps",
            "3",
        ]);
        let got = losses(&text);
        assert_eq!(got.len(), 3, "{text}");
        for (k, loss) in got.iter().enumerate() {
            let want = refs[&format!("{opt}/loss_{k}")].as_f64().unwrap()[0];
            assert!(
                (loss - want).abs() <= 5e-5 * want.abs().max(1.0),
                "{opt}: loss before step {k} {loss} vs torch {want}"
            );
        }
    }
}

#[test]
fn bad_state_and_batches_files_are_exit_2_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (step, init) = momentum_step(d);
    let npz = d.join("b.npz");
    batches_npz(&npz, &[reference_batch()]);
    let state0 = read_state(&step, &init);
    let write_state = |name: &str, tensors: Vec<HostTensor>| {
        let p = d.join(name);
        std::fs::write(&p, onnx_ac::state::to_bytes(&tensors).unwrap()).unwrap();
        p
    };
    let with = |f: &dyn Fn(&mut Vec<HostTensor>)| {
        let mut v: Vec<HostTensor> = state0.values().cloned().collect();
        f(&mut v);
        v
    };
    let bad_shape = write_state(
        "shape.st",
        with(&|v| {
            let t = v.iter_mut().find(|t| t.name == "fc2.bias").unwrap();
            t.dims = vec![64];
            t.data.truncate(64 * 4);
        }),
    );
    let missing = write_state(
        "missing.st",
        with(&|v| v.retain(|t| t.name != "fc3.weight.momentum")),
    );
    let extra = write_state(
        "extra.st",
        with(&|v| v.push(HostTensor::from_f32("fc9.weight", &[1], &[0.0]).unwrap())),
    );
    let dtype = write_state(
        "dtype.st",
        with(&|v| {
            let t = v.iter_mut().find(|t| t.name == "fc1.bias").unwrap();
            *t = HostTensor::from_i32("fc1.bias", &[128], &[0; 128]).unwrap();
        }),
    );
    let truncated = d.join("truncated.st");
    let bytes = std::fs::read(&init).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    for (file, want) in [
        (&bad_shape, "tensor fc2.bias: shape [64]"),
        (&missing, "tensor fc3.weight.momentum: missing"),
        (&extra, "tensor fc9.weight: the step has no such"),
        (&dtype, "tensor fc1.bias: element type I32"),
        (&truncated, "not a safetensors file"),
        (&d.to_path_buf(), "cannot read the state file"),
    ] {
        let err = run_2(&[
            "train",
            s(&step),
            "--state",
            s(file),
            "--data",
            s(&npz),
            "--steps",
            "1",
        ]);
        assert!(err.contains(want), "{}: {err}", file.display());
    }

    let [x, labels] = reference_batch().try_into().unwrap();
    let x_npy = npy("<f4", false, &[1, 8, 64], &x.data);
    let labels_npy = npy("<i8", false, &[1, 8], &labels.data);
    let cases: Vec<(&str, Arrays, &str)> = vec![
        (
            "missing",
            vec![("x", x_npy.clone())],
            "array labels: missing",
        ),
        (
            "extra",
            vec![
                ("x", x_npy.clone()),
                ("labels", labels_npy.clone()),
                ("y", labels_npy.clone()),
            ],
            "array y: the step has no data input",
        ),
        (
            "dtype",
            vec![
                ("x", x_npy.clone()),
                ("labels", npy("<i4", false, &[2, 8], &labels.data)),
            ],
            "array labels: element type '<i4'",
        ),
        (
            "shape",
            vec![
                ("x", npy("<f4", false, &[2, 64, 4], &x.data)),
                ("labels", labels_npy.clone()),
            ],
            "array x: shape [2, 64, 4]",
        ),
        (
            "fortran",
            vec![
                ("x", npy("<f4", true, &[1, 8, 64], &x.data)),
                ("labels", labels_npy.clone()),
            ],
            "array x: Fortran order",
        ),
        (
            "short",
            vec![
                ("x", x_npy[..x_npy.len() - 4].to_vec()),
                ("labels", labels_npy.clone()),
            ],
            "array x: truncated data",
        ),
        (
            "counts",
            vec![
                ("x", x_npy.clone()),
                (
                    "labels",
                    npy(
                        "<i8",
                        false,
                        &[2, 8],
                        &[labels.data.clone(), labels.data.clone()].concat(),
                    ),
                ),
            ],
            "array labels: 2 batches, but array x has 1",
        ),
    ];
    for (name, arrays, want) in cases {
        let p = d.join(format!("{name}.npz"));
        write_npz(&p, &arrays);
        let err = run_2(&["train", s(&step), "--data", s(&p), "--steps", "1"]);
        assert!(err.contains(want), "{name}: {err}");
    }
    // Labels index the logits: out of [0, 10) is refused (ONNX Runtime would fail on 100
    // and silently count -5 from the end).
    for bad in [100i64, -5] {
        let mut l = labels.data.clone();
        l[8..16].copy_from_slice(&bad.to_le_bytes());
        let p = d.join("labels.npz");
        write_npz(
            &p,
            &[
                ("x", x_npy.clone()),
                ("labels", npy("<i8", false, &[1, 8], &l)),
            ],
        );
        let err = run_2(&["train", s(&step), "--data", s(&p), "--steps", "1"]);
        assert!(
            err.contains(&format!(
                "array labels: value {bad} at flat index 1 is outside [0, 10)"
            )),
            "{err}"
        );
    }
    let err = run_2(&["train", s(&step), "--data", s(&init), "--steps", "1"]);
    assert!(err.contains("not an .npz"), "{err}");

    // Outputs never overwrite inputs; --init-state needs parameters as inputs.
    let err = run_2(&[
        "train",
        s(&step),
        "--state",
        s(&init),
        "--data",
        s(&npz),
        "--save-state",
        s(&init),
    ]);
    assert!(err.contains("refusing to overwrite an input"), "{err}");
    let err = run_2(&[
        "train-graph",
        s(&common::fixture("mlp.ts17")),
        "-o",
        s(&d.join("g.onnx")),
        "--init-state",
        s(&d.join("g.st")),
    ]);
    assert!(err.contains("--init-state needs"), "{err}");
    // --data and --random are exclusive, and one is needed.
    let out = common::run_cli(&["train", s(&step), "--random", "--data", s(&npz)]);
    assert_eq!(out.status.code(), Some(2));
    let out = common::run_cli(&["train", s(&step)]);
    assert_eq!(out.status.code(), Some(2));
}

/// `inspect --optimizer` shows the optimizer state: AdamW's two moments per parameter and its
/// step count, momentum's one buffer per parameter, none for SGD (the MLP's 6 parameters hold
/// 26122 float32 elements, 104488 bytes).
#[test]
fn inspect_shows_the_optimizer_state() {
    for (opt, tensors, bytes) in [
        ("adamw", 13, 2 * 104488 + 4),
        ("momentum", 6, 104488),
        ("sgd", 0, 0),
    ] {
        let out = run_ok(&[
            "inspect",
            s(&common::fixture("mlp.ts17")),
            "--optimizer",
            opt,
            "--json",
        ]);
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        let o = &j["activations"]["optimizer_state"];
        assert_eq!(
            (o["tensors"].as_u64(), o["bytes"].as_u64()),
            (Some(tensors), Some(bytes)),
            "{opt}: {o}"
        );
    }
    let text = run_ok(&["inspect", s(&common::fixture("mlp.ts17"))]);
    assert!(!text.contains("optimizer state"), "{text}");
}

/// Files numpy wrote (fixtures/fail/train/, scripts/make_train_fail_fixtures.py): a
/// compressed archive trains; Fortran order, big-endian and pickled arrays and a state with a
/// short tensor are exit 2 naming the array or tensor.
#[test]
fn files_numpy_writes_are_read_or_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (step, init) = momentum_step(dir.path());
    let f = |name: &str| common::root().join("fixtures/fail/train").join(name);
    let text = run_ok(&[
        "train",
        s(&step),
        "--data",
        s(&f("good_compressed.npz")),
        "--steps",
        "3",
    ]);
    assert_eq!(losses(&text).len(), 3, "{text}");
    for (file, want) in [
        ("fortran.npz", "array x: Fortran order"),
        ("big_endian.npz", "array x: element type '>f4'"),
        ("pickled.npz", "array labels: element type '|O'"),
    ] {
        let err = run_2(&["train", s(&step), "--data", s(&f(file)), "--steps", "1"]);
        assert!(err.contains(want) && err.contains(file), "{file}: {err}");
    }
    let err = run_2(&[
        "train",
        s(&step),
        "--state",
        s(&f("short_bias.safetensors")),
        "--data",
        s(&f("good_compressed.npz")),
    ]);
    assert!(
        err.contains("tensor fc2.bias: shape [64], the step's input is [128]"),
        "{err}"
    );
    drop(init);
}

/// README's demo against torch (issue #15): the 6-layer GPT-2 fixture, AdamW at lr 0.003,
/// 50 steps on one batch from its `--init-state` file, with a 30%act plan and without one,
/// give the losses and weights of torch.optim.AdamW in float64 on the transformers model
/// (`scripts/torch_equivalence.py`, which wrote fixtures/models/gpt2_deep.train.ref.pb:
/// the batch, torch's 50 losses and 8 of its final tensors, the tied embedding among them).
/// Tolerances are against float32 rounding, which AdamW amplifies (each weight moves by
/// about lr a step whatever its gradient's size): torch float32 itself is 1.7e-5 from torch
/// float64 on the loss and 1.1e-4 of a tensor's largest weight on these tensors; onnx-ac
/// measured 2.1e-5 and 1.0e-4. The key third of `c_attn.bias` is not compared: its gradient
/// is zero in exact arithmetic (softmax ignores a per-query constant), so AdamW moves it by
/// ±lr on rounding noise in torch too (torch float32 differs there by 4e-3 of the tensor).
/// Fails (checked by running the step) with `--weight-decay 0` (loss 2.5e-3 off at step 50,
/// weights up to 3e-3) and with `--betas 0.9,0.99` (weights up to 4e-2).
#[test]
fn demo_training_matches_torch_adamw() {
    const STEPS: usize = 50;
    const LOSS_TOL: f64 = 1e-4;
    const WEIGHT_TOL: f64 = 1e-3;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let refs: BTreeMap<String, Tensor> =
        onnx_ac::onnx::load_tensors(&common::root().join("fixtures/models/gpt2_deep.train.ref.pb"))
            .unwrap()
            .into_iter()
            .collect();
    let npz = d.join("batch.npz");
    let arrays: Vec<(&str, Vec<u8>)> = ["input_ids", "attention_mask", "labels"]
        .iter()
        .map(|&name| {
            let TensorData::Raw(b) = &refs[name].data else {
                panic!("{name} is not raw");
            };
            (name, npy("<i8", false, &[1, 8, 64], b))
        })
        .collect();
    write_npz(&npz, &arrays);
    let want_losses = refs["losses"].as_f64().unwrap();
    assert_eq!(want_losses.len(), STEPS);
    let model = "fixtures/models/gpt2_deep.ts17.onnx";
    let adamw = ["--optimizer", "adamw", "--lr", "0.003"];
    for (name, make) in [
        ("30%act", vec![model, "--budget", "30%act"]),
        ("plain", vec!["train-graph", model]),
    ] {
        let (step, init, trained) = (
            d.join(format!("{name}.onnx")),
            d.join(format!("{name}.init.st")),
            d.join(format!("{name}.trained.st")),
        );
        let mut args = make.clone();
        args.extend(adamw);
        args.extend(["-o", s(&step), "--init-state", s(&init)]);
        run_ok(&args);
        let text = run_ok(&[
            "train",
            s(&step),
            "--state",
            s(&init),
            "--data",
            s(&npz),
            "--steps",
            "50",
            "--save-state",
            s(&trained),
        ]);
        // `step K  loss L` lines: steps 1, 5, 10, ..., 50.
        let got: Vec<(usize, f64)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("step "))
            .map(|l| {
                let mut w = l.split_whitespace();
                let k = w.next().unwrap().parse().unwrap();
                (k, w.nth(1).unwrap().parse().unwrap())
            })
            .collect();
        assert_eq!(got.len(), 11, "{name}: {text}");
        for (k, loss) in got {
            let want = want_losses[k - 1];
            assert!(
                (loss - want).abs() <= LOSS_TOL,
                "{name}: loss at step {k} {loss} vs torch {want}"
            );
        }
        assert!(want_losses[STEPS - 1] < 0.1 * want_losses[0]);
        let state = read_state(&step, &trained);
        assert_eq!(
            state["optimizer.step"].to_f64().unwrap(),
            vec![STEPS as f64]
        );
        let mut compared = 0;
        for (pname, t) in &refs {
            if !pname.starts_with("transformer.") {
                continue;
            }
            let want = t.as_f64().unwrap();
            let got = state[pname.as_str()].to_f64().unwrap();
            assert_eq!(got.len(), want.len(), "{pname}");
            let scale = want.iter().fold(0f64, |m, w| m.max(w.abs()));
            let key_bias = pname.ends_with(".attn.c_attn.bias");
            let worst = (0..want.len())
                .filter(|i| !(key_bias && (64..128).contains(i)))
                .map(|i| (got[i] - want[i]).abs())
                .fold(0f64, f64::max);
            assert!(
                worst <= WEIGHT_TOL * scale,
                "{name}: {pname} is {:.2e} of its largest weight from torch's",
                worst / scale
            );
            compared += 1;
        }
        assert_eq!(compared, 8);
    }
}
