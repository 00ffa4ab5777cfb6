//! The ONNX Runtime layer against the real library (found as `onnx_ac::runtime::init` finds it:
//! in CI, the project's `.venv`). These tests fail, with the loader's message, when ONNX Runtime
//! is missing: they are never skipped.
//!
//! Test models are built here with the protobuf types of `onnx_ac::onnx::proto`.

mod common;
use common::value_info;

use onnx_ac::onnx::proto::{
    tensor_proto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto,
};
use onnx_ac::runtime::{
    available_providers, init, loaded_library, run_model, Ep, GraphOpt, HostTensor, LibrarySource,
    ModelSession, RunOptions, RuntimeError,
};
use onnx_ac_passes::ir::DType;
use protobuf::{EnumOrUnknown, Message, MessageField};
use std::path::{Path, PathBuf};

const MIB4: u64 = 4 * 1024 * 1024;
const N: i64 = 1024; // a [N, N] float tensor is 4 MiB

fn require_ort() {
    if let Err(e) = init(None) {
        panic!("this test needs ONNX Runtime 1.31: {e}");
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = Some(op.to_string());
    n.name = Some(name.to_string());
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = outputs.iter().map(|s| s.to_string()).collect();
    n
}

fn scalar(name: &str, v: f32) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = Some(name.to_string());
    t.data_type = Some(DType::Float.to_onnx());
    t.float_data = vec![v];
    t
}

fn save(graph: GraphProto, path: &Path) {
    let mut m = ModelProto::new();
    m.ir_version = Some(8);
    let mut opset = OperatorSetIdProto::new();
    opset.domain = Some(String::new());
    opset.version = Some(17);
    m.opset_import.push(opset);
    m.graph = MessageField::some(graph);
    std::fs::write(path, m.write_to_bytes().expect("serialize model")).expect("write model");
}

/// `y_i = x * c_i` for i < width (all kept alive), then `s = Sum(y_0..y_width-1)`.
fn wide_model(dir: &Path, width: usize) -> PathBuf {
    let mut g = GraphProto::new();
    g.name = Some("wide".into());
    g.input.push(value_info("x", DType::Float, &[N, N]));
    g.output.push(value_info("s", DType::Float, &[N, N]));
    let ys: Vec<String> = (0..width).map(|i| format!("y{i}")).collect();
    for (i, y) in ys.iter().enumerate() {
        let c = format!("c{i}");
        g.initializer.push(scalar(&c, 1.0 + i as f32));
        g.node
            .push(node("Mul", &format!("mul{i}"), &["x", &c], &[y]));
    }
    let refs: Vec<&str> = ys.iter().map(String::as_str).collect();
    g.node.push(node("Sum", "sum", &refs, &["s"]));
    let p = dir.join(format!("wide{width}.onnx"));
    save(g, &p);
    p
}

/// `y_0 = x * c_0`, `y_i = y_(i-1) * c_i`, the last one is the output `s`.
fn chain_model(dir: &Path, len: usize) -> PathBuf {
    let mut g = GraphProto::new();
    g.name = Some("chain".into());
    g.input.push(value_info("x", DType::Float, &[N, N]));
    g.output.push(value_info("s", DType::Float, &[N, N]));
    let mut prev = "x".to_string();
    for i in 0..len {
        let c = format!("c{i}");
        g.initializer.push(scalar(&c, 1.0 + i as f32));
        let out = if i + 1 == len {
            "s".to_string()
        } else {
            format!("y{i}")
        };
        g.node
            .push(node("Mul", &format!("mul{i}"), &[&prev, &c], &[&out]));
        prev = out;
    }
    let p = dir.join(format!("chain{len}.onnx"));
    save(g, &p);
    p
}

fn ones_input() -> HostTensor {
    HostTensor::from_f32("x", &[N, N], &vec![1.0; (N * N) as usize]).expect("input")
}

fn measured() -> RunOptions {
    RunOptions {
        measure_peak: true,
        ..RunOptions::default()
    }
}

#[test]
fn reports_the_loaded_library() {
    require_ort();
    let lib = loaded_library().expect("loaded after init");
    assert!(lib.path.is_file(), "{lib}");
    assert!(lib.version.starts_with("1."), "{lib}");
    let minor: u32 = lib
        .version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(minor >= 31, "{lib}");
    assert!(lib.to_string().contains(&lib.path.display().to_string()));
    // Initialization happens once: a second call returns the same library.
    let again = init(None).expect("second init");
    assert!(std::ptr::eq(lib, again));
    // Asking for a different explicit library afterwards is refused, not silently ignored.
    let dir = tempfile::tempdir().expect("tempdir");
    let other = dir.path().join("libonnxruntime.so");
    std::fs::write(&other, b"not a library").expect("write");
    match init(Some(&other)) {
        Err(RuntimeError::AlreadyLoaded { .. }) => {}
        other => panic!("expected AlreadyLoaded, got {other:?}"),
    }
    // ... but the same library again is fine.
    init(Some(&lib.path)).expect("same explicit library");
    if lib.source == LibrarySource::ProjectVenv {
        assert!(lib.path.to_string_lossy().contains(".venv"));
    }
}

/// Ten 4 MiB products of the input all alive when `Sum` runs: the counting allocator sees
/// 10 x 4 MiB (y_0..y_9) + 4 MiB (the output s) + 4 MiB (Sum's scratch buffer for its running
/// total: Sum of more than two inputs allocates one; widths 2/3/4 measure 3/5/6 x 4 MiB)
/// = 12 x 4 MiB = 50,331,648 bytes on top of the 10 scalar initializers (40 bytes), which the
/// session holds from creation on. The input x is the caller's and not counted.
#[test]
fn peak_of_ten_live_intermediates_is_exact_and_reproducible() {
    require_ort();
    let dir = tempfile::tempdir().expect("tempdir");
    let model = wide_model(dir.path(), 10);
    let x = ones_input();
    for graph_opt in [GraphOpt::All, GraphOpt::Disabled] {
        let opts = RunOptions {
            graph_opt,
            ..measured()
        };
        for _session in 0..2 {
            let mut s = ModelSession::prepare(&model, &opts).expect("prepare");
            assert_eq!(s.resident_bytes(), Some(40));
            for _run in 0..2 {
                let r = s.run(std::slice::from_ref(&x)).expect("run");
                assert!(r.warnings.is_empty(), "{:?}", r.warnings);
                assert_eq!(r.baseline_bytes, Some(40));
                assert_eq!(r.peak_bytes, Some(50_331_648 + 40), "{graph_opt:?}");
                assert_eq!(r.peak_bytes.unwrap() - r.baseline_bytes.unwrap(), 12 * MIB4);
                // 1 + 2 + ... + 10 = 55
                assert_eq!(r.outputs[0].to_f32().unwrap()[..3], [55.0; 3]);
            }
            // Every run's tensors were freed again.
            assert_eq!(s.resident_bytes(), Some(40));
        }
    }
}

/// A chain of ten 4 MiB Muls frees each product after its consumer: at most the consumer's
/// input and output are alive, 2 x 4 MiB = 8,388,608 bytes (+ 40 bytes of initializers).
#[test]
fn peak_of_a_chain_that_frees_is_two_tensors() {
    require_ort();
    let dir = tempfile::tempdir().expect("tempdir");
    let model = chain_model(dir.path(), 10);
    let x = ones_input();
    let mut peaks = Vec::new();
    for _ in 0..2 {
        let r = run_model(&model, std::slice::from_ref(&x), None, &measured()).expect("run");
        peaks.push(r.peak_bytes);
        assert_eq!(r.outputs[0].to_f32().unwrap()[0], 3_628_800.0); // 10!
    }
    assert_eq!(peaks, vec![Some(8_388_608 + 40); 2]);
}

#[test]
fn peak_is_absent_unless_asked_for() {
    require_ort();
    let dir = tempfile::tempdir().expect("tempdir");
    let model = chain_model(dir.path(), 2);
    let r = run_model(&model, &[ones_input()], None, &RunOptions::default()).expect("run");
    assert_eq!(r.peak_bytes, None);
    assert_eq!(r.baseline_bytes, None);
    assert!(r.node_times.is_empty());
}

/// Per-run profile, graph optimizations off: one entry per model node, in execution order,
/// named as in the model; the profile files are deleted afterwards. (The only test here that
/// profiles, so the temp-dir check is not disturbed by parallel tests.)
#[test]
fn profile_gives_one_time_per_node_and_cleans_up() {
    require_ort();
    let dir = tempfile::tempdir().expect("tempdir");
    let model = chain_model(dir.path(), 4);
    let count_profile_dirs = || {
        std::fs::read_dir(std::env::temp_dir())
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with("onnx-ac-profile-")
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let before = count_profile_dirs();
    let opts = RunOptions {
        profile: true,
        graph_opt: GraphOpt::Disabled,
        intra_threads: Some(1),
        ..RunOptions::default()
    };
    let mut s = ModelSession::prepare(&model, &opts).expect("prepare");
    let x = ones_input();
    for _ in 0..3 {
        let r = s.run(std::slice::from_ref(&x)).expect("run");
        let names: Vec<&str> = r.node_times.iter().map(|t| t.node_name.as_str()).collect();
        assert_eq!(names, ["mul0", "mul1", "mul2", "mul3"]);
        for t in &r.node_times {
            assert_eq!(t.op_type, "Mul");
            assert_eq!(t.provider, "CPUExecutionProvider");
            assert!(t.duration_us >= 0.0);
            assert_eq!(t.output_bytes, Some(MIB4));
        }
    }
    drop(s);
    assert_eq!(
        count_profile_dirs(),
        before,
        "profile temp dirs left behind"
    );
}

#[test]
fn dtypes_round_trip() {
    require_ort();
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = vec![
        HostTensor::from_f32("f32", &[3], &[1.5, -0.0, f32::INFINITY]).unwrap(),
        HostTensor::from_f64("f64", &[2], &[1e300, -2.5]).unwrap(),
        HostTensor::from_f32_as_f16("f16", &[2], &[0.5, -65504.0]).unwrap(),
        HostTensor::from_i64("i64", &[2], &[i64::MIN, 7]).unwrap(),
        HostTensor::from_i32("i32", &[1, 2], &[-3, i32::MAX]).unwrap(),
        HostTensor::from_bool("bool", &[3], &[true, false, true]).unwrap(),
        HostTensor::from_u8("u8", &[2], &[0, 255]).unwrap(),
        HostTensor::from_i8("i8", &[2], &[-128, 127]).unwrap(),
        HostTensor::from_f32("scalar", &[], &[42.0]).unwrap(),
        HostTensor::from_f32("empty", &[0, 3], &[]).unwrap(),
    ];
    let mut g = GraphProto::new();
    g.name = Some("identity".into());
    for t in &inputs {
        let out = format!("{}_out", t.name);
        g.input.push(value_info(&t.name, t.dtype, &t.dims));
        g.output.push(value_info(&out, t.dtype, &t.dims));
        g.node.push(node(
            "Identity",
            &format!("id_{}", t.name),
            &[&t.name],
            &[&out],
        ));
    }
    let model = dir.path().join("identity.onnx");
    save(g, &model);
    let r = run_model(&model, &inputs, None, &measured()).expect("run");
    assert_eq!(r.outputs.len(), inputs.len());
    for (i, o) in inputs.iter().zip(&r.outputs) {
        assert_eq!(o.name, format!("{}_out", i.name));
        assert_eq!(
            (o.dtype, &o.dims, &o.data),
            (i.dtype, &i.dims, &i.data),
            "{}",
            i.name
        );
    }
    assert_eq!(r.outputs[2].to_f32().unwrap(), [0.5, -65504.0]);
    assert_eq!(r.outputs[3].to_i64().unwrap(), [i64::MIN, 7]);
    assert_eq!(r.outputs[5].to_bool().unwrap(), [true, false, true]);
    assert_eq!(r.outputs[1].to_f64().unwrap(), [1e300, -2.5]);
    assert_eq!(r.outputs[8].dims, Vec::<i64>::new());
}

#[test]
fn selected_outputs_in_requested_order() {
    require_ort();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = GraphProto::new();
    g.name = Some("two".into());
    g.input.push(value_info("x", DType::Float, &[2]));
    g.output.push(value_info("a", DType::Float, &[2]));
    g.output.push(value_info("b", DType::Float, &[2]));
    g.node.push(node("Neg", "neg", &["x"], &["a"]));
    g.node.push(node("Add", "add", &["x", "x"], &["b"]));
    let model = dir.path().join("two.onnx");
    save(g, &model);
    let x = HostTensor::from_f32("x", &[2], &[1.0, 2.0]).unwrap();
    let mut s = ModelSession::prepare(&model, &RunOptions::default()).expect("prepare");
    assert_eq!(s.input_names(), ["x"]);
    assert_eq!(s.output_names(), ["a", "b"]);
    let wanted = ["b".to_string(), "a".to_string()];
    let r = s
        .run_selected(std::slice::from_ref(&x), Some(&wanted))
        .expect("run");
    let names: Vec<&str> = r.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["b", "a"]);
    assert_eq!(r.outputs[0].to_f32().unwrap(), [2.0, 4.0]);
    assert_eq!(r.outputs[1].to_f32().unwrap(), [-1.0, -2.0]);
    let only = ["a".to_string()];
    let r = s.run_selected(&[x], Some(&only)).expect("run");
    assert_eq!(r.outputs.len(), 1);
    let x = HostTensor::from_f32("x", &[2], &[1.0, 2.0]).unwrap();
    assert!(matches!(
        s.run_selected(&[x], Some(&["nope".to_string()])),
        Err(RuntimeError::UnsupportedOutput { .. })
    ));
}

/// Loading from a path lets ONNX Runtime find external data next to the model.
///
/// ONNX Runtime does not allocate external initializers through the session allocator (at an
/// aligned or unaligned offset alike), so they are not in the counted bytes; only the output is.
#[test]
fn external_data_next_to_the_model() {
    require_ort();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut file: Vec<u8> = vec![0xAA; 4]; // padding, so the second copy is unaligned
    let w: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut aligned = w.clone();
    file.extend_from_slice(&w);
    aligned.resize(4096, 0);
    std::fs::write(dir.path().join("w.bin"), &aligned).expect("write weights");
    std::fs::write(dir.path().join("w_unaligned.bin"), &file).expect("write weights");
    for (location, offset) in [("w.bin", "0"), ("w_unaligned.bin", "4")] {
        let mut t = TensorProto::new();
        t.name = Some("w".into());
        t.data_type = Some(DType::Float.to_onnx());
        t.dims = vec![4];
        t.data_location = Some(EnumOrUnknown::new(tensor_proto::DataLocation::EXTERNAL));
        for (k, v) in [("location", location), ("offset", offset), ("length", "16")] {
            let mut e = StringStringEntryProto::new();
            e.key = Some(k.into());
            e.value = Some(v.into());
            t.external_data.push(e);
        }
        let mut g = GraphProto::new();
        g.name = Some("ext".into());
        g.input.push(value_info("x", DType::Float, &[4]));
        g.output.push(value_info("y", DType::Float, &[4]));
        g.initializer.push(t);
        g.node.push(node("Mul", "mul", &["x", "w"], &["y"]));
        let model = dir.path().join(format!("ext_{offset}.onnx"));
        save(g, &model);
        let x = HostTensor::from_f32("x", &[4], &[1.0, 1.0, 2.0, 2.0]).unwrap();
        let r = run_model(&model, &[x], None, &measured()).expect("run");
        assert_eq!(r.outputs[0].to_f32().unwrap(), [1.0, 2.0, 6.0, 8.0]);
        assert_eq!(r.baseline_bytes, Some(0), "{location}");
        assert_eq!(r.peak_bytes, Some(16), "{location}");
    }
}

/// Small inline initializers are copied into session memory (counted); larger ones stay in
/// the loaded model buffer and are not (the 10 scalars of `wide_model` are the counted kind).
#[test]
fn only_small_initializers_are_counted() {
    require_ort();
    let dir = tempfile::tempdir().expect("tempdir");
    for (n, counted) in [(16i64, 64u64), (1024, 0)] {
        let mut w = TensorProto::new();
        w.name = Some("w".into());
        w.data_type = Some(DType::Float.to_onnx());
        w.dims = vec![n];
        w.float_data = vec![2.0; n as usize];
        let mut g = GraphProto::new();
        g.name = Some("inline".into());
        g.input.push(value_info("x", DType::Float, &[n]));
        g.output.push(value_info("y", DType::Float, &[n]));
        g.initializer.push(w);
        g.node.push(node("Mul", "mul", &["x", "w"], &["y"]));
        let model = dir.path().join(format!("inline{n}.onnx"));
        save(g, &model);
        let x = HostTensor::from_f32("x", &[n], &vec![1.5; n as usize]).unwrap();
        let r = run_model(&model, &[x], None, &measured()).expect("run");
        assert_eq!(r.outputs[0].to_f32().unwrap(), vec![3.0; n as usize]);
        assert_eq!(r.baseline_bytes, Some(counted), "{n} floats");
        assert_eq!(r.peak_bytes, Some(counted + 4 * n as u64), "{n} floats");
    }
}

#[test]
fn bad_inputs_are_errors() {
    require_ort();
    let dir = tempfile::tempdir().expect("tempdir");
    let model = chain_model(dir.path(), 1);
    let mut s = ModelSession::prepare(&model, &RunOptions::default()).expect("prepare");
    let wrong_name = HostTensor::from_f32("z", &[1], &[1.0]).unwrap();
    let e = s.run(&[wrong_name]).unwrap_err();
    assert!(
        matches!(&e, RuntimeError::BadInput { name, .. } if name == "z"),
        "{e}"
    );
    assert!(e.to_string().contains("inputs: x"), "{e}");
    let e = s.run(&[]).unwrap_err();
    assert!(
        matches!(&e, RuntimeError::BadInput { name, .. } if name == "x"),
        "{e}"
    );
    let short = HostTensor {
        name: "x".into(),
        dtype: DType::Float,
        dims: vec![N, N],
        data: vec![0; 12],
    };
    let e = s.run(&[short]).unwrap_err();
    assert!(e.to_string().contains("needs 4194304 bytes but 12"), "{e}");
    let wrong_shape = HostTensor::from_f32("x", &[2], &[1.0, 2.0]).unwrap();
    assert!(matches!(
        s.run(&[wrong_shape]),
        Err(RuntimeError::Run { .. })
    ));
    let twice = [
        HostTensor::from_f32("x", &[1], &[1.0]).unwrap(),
        HostTensor::from_f32("x", &[1], &[1.0]).unwrap(),
    ];
    assert!(matches!(s.run(&twice), Err(RuntimeError::BadInput { .. })));
}

#[test]
fn bad_model_files_are_errors() {
    require_ort();
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.onnx");
    assert!(matches!(
        ModelSession::prepare(&missing, &RunOptions::default()),
        Err(RuntimeError::Io { .. })
    ));
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"this is not a model").expect("write");
    let e = ModelSession::prepare(&garbage, &measured()).unwrap_err();
    assert!(matches!(e, RuntimeError::ModelLoad { .. }), "{e}");
    assert!(e.to_string().contains("onnx.checker"), "{e}");
}

/// No GPU and the CPU-only wheel here: asking for CUDA is a clear error, never a silent CPU run.
#[test]
fn cuda_is_unavailable_here() {
    require_ort();
    let providers = available_providers().expect("providers");
    assert!(
        providers.iter().any(|p| p == "CPUExecutionProvider"),
        "{providers:?}"
    );
    if providers.iter().any(|p| p == "CUDAExecutionProvider") {
        panic!("this test expects the CPU-only onnxruntime wheel, found {providers:?}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let model = chain_model(dir.path(), 1);
    let opts = RunOptions {
        ep: Ep::Cuda,
        ..RunOptions::default()
    };
    let e = run_model(&model, &[ones_input()], None, &opts).unwrap_err();
    assert!(matches!(e, RuntimeError::CudaUnavailable { .. }), "{e}");
    let msg = e.to_string();
    for needle in [
        "onnxruntime-gpu==1.31.1",
        "--ort-lib",
        "GPU",
        "CPUExecutionProvider",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
    }
}

#[test]
fn session_options_are_applied() {
    require_ort();
    let dir = tempfile::tempdir().expect("tempdir");
    let model = wide_model(dir.path(), 3);
    let opts = RunOptions {
        graph_opt: GraphOpt::Basic,
        disabled_optimizers: vec!["CommonSubexpressionElimination".into()],
        intra_threads: Some(1),
        ..measured()
    };
    let r = run_model(&model, &[ones_input()], None, &opts).expect("run");
    // 3 products + output + Sum's scratch.
    assert_eq!(r.peak_bytes, Some(5 * MIB4 + 12));
    assert_eq!(r.outputs[0].to_f32().unwrap()[0], 6.0);
    for graph_opt in [GraphOpt::Extended, GraphOpt::All] {
        let opts = RunOptions {
            graph_opt,
            ..RunOptions::default()
        };
        run_model(&model, &[ones_input()], None, &opts).expect("run");
    }
}
