//! Profile files, random inputs and cost models, without ONNX Runtime: the JSON format and its
//! errors, inputs in range on the GPT-2 and BERT fixtures, the analytic FLOP formulas, the fixed
//! and measured models and the model selection.

mod common;

use common::{fixture, training};
use onnx_ac::cost::{
    graph_time, node_bytes, node_flops, select_cost_model, spearman, AnalyticCost, CostModel,
    Device, DeviceSpec, FixedCost, MeasuredCost,
};
use onnx_ac::profile::{
    check_node_names, input_kind, prepare_for_ort, random_inputs, InputKind, NodeProfile, Profile,
    ProfileError, FORMAT, VERSION,
};
use onnx_ac_passes::ir::{known_shape, Attribute, DType, Graph, Node, NodeId, ValueId};
use std::collections::BTreeMap;
use std::path::Path;

fn sample_profile() -> Profile {
    let mut nodes = BTreeMap::new();
    // Inserted out of order: the file must come out sorted anyway.
    for (name, op, t) in [
        ("zeta/MatMul", "MatMul", 3e-4),
        ("alpha/Relu", "Relu", 1e-5),
        ("mid/Add", "Add", 2e-5),
    ] {
        nodes.insert(
            name.to_string(),
            NodeProfile {
                op: op.to_string(),
                time_s: t,
            },
        );
    }
    let values = [("y", 4096u64), ("a", 64), ("m", 1024)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    Profile {
        format: FORMAT.to_string(),
        version: VERSION,
        model: "model.onnx".to_string(),
        ep: "cpu".to_string(),
        ort_version: "1.31.1".to_string(),
        graph_optimization: "disabled".to_string(),
        runs: 5,
        warmup: 1,
        seed: 0,
        nodes,
        values,
        measured_peak_bytes: Some(10_000),
        runtime_peak_bytes: Some(6_000),
        runtime_baseline_bytes: Some(100),
        parameter_bytes: 4_000,
        input_bytes: 100,
        step_time_s: 4e-4,
        kernel_time_s: 3.3e-4,
        warnings: vec![],
    }
}

#[test]
fn profile_json_round_trip_with_stable_key_order() {
    let p = sample_profile();
    let json = p.to_json();
    // Top-level keys in a fixed order, format and version first.
    let pos = |k: &str| {
        json.find(&format!("\"{k}\""))
            .unwrap_or_else(|| panic!("{k} missing in {json}"))
    };
    assert!(json
        .trim_start()
        .starts_with("{\n  \"format\": \"onnx-ac-profile\""));
    assert!(pos("format") < pos("version"));
    assert!(pos("version") < pos("nodes"));
    assert!(pos("nodes") < pos("values"));
    assert!(pos("values") < pos("measured_peak_bytes"));
    // Node and value names sorted.
    assert!(pos("alpha/Relu") < pos("mid/Add") && pos("mid/Add") < pos("zeta/MatMul"));
    assert!(pos("a") < pos("m") && pos("m") < pos("y"));
    assert!(json.contains("\"time_s\""));
    assert!(json.contains("\"op\": \"MatMul\""));

    let back = Profile::from_json(&json).unwrap();
    assert_eq!(back, p);
    assert_eq!(back.to_json(), json, "serialization is deterministic");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.json");
    p.save(&path).unwrap();
    assert_eq!(Profile::load(&path).unwrap(), p);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{json}\n"));
}

#[test]
fn profile_load_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let msg = |p: &Path| Profile::load(p).unwrap_err().to_string();

    let m = msg(&dir.path().join("absent.json"));
    assert!(m.contains("absent.json"), "{m}");

    let m = msg(&write("garbage.json", "not json"));
    assert!(m.contains("not a JSON file"), "{m}");

    let m = msg(&write(
        "other.json",
        r#"{"format": "chrome-trace", "version": 1}"#,
    ));
    assert!(
        m.contains("not an onnx-ac profile") && m.contains("onnx-ac profile MODEL"),
        "{m}"
    );

    let m = msg(&write("noformat.json", r#"[1, 2]"#));
    assert!(m.contains("\"format\" is missing"), "{m}");

    let mut v: serde_json::Value = serde_json::from_str(&sample_profile().to_json()).unwrap();
    v["version"] = serde_json::json!(2);
    let m = msg(&write("v2.json", &v.to_string()));
    assert!(
        m.contains("version 2") && m.contains("reads version 1"),
        "{m}"
    );

    v["version"] = serde_json::json!(1);
    v["nodes"]["alpha/Relu"]["time_s"] = serde_json::json!("fast");
    let m = msg(&write("bad.json", &v.to_string()));
    assert!(m.contains("malformed onnx-ac profile"), "{m}");
    assert!(matches!(
        Profile::load(&dir.path().join("bad.json")),
        Err(ProfileError::Format { .. })
    ));
}

fn i64s(t: &onnx_ac::runtime::HostTensor) -> Vec<i64> {
    t.to_i64().unwrap()
}

#[test]
fn random_inputs_in_range_gpt2() {
    let m = training("gpt2.ts17", &[]).0;
    let g = &m.graph;
    let vocab = 512; // transformer.wte.weight is [512, 128]; logits [2, 16, 512]
    let inputs = random_inputs(g, 7).unwrap();
    let names: Vec<&str> = inputs.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["input_ids", "attention_mask", "labels"]);
    for t in &inputs {
        assert_eq!(t.dims, [2, 16]);
    }
    let ids = i64s(&inputs[0]);
    assert!(ids.iter().all(|&i| (0..vocab).contains(&i)), "{ids:?}");
    assert!(
        *ids.iter().max().unwrap() >= vocab / 4,
        "ids spread over the vocabulary"
    );
    assert!(i64s(&inputs[1]).iter().all(|&x| x == 1), "mask is all ones");
    let labels = i64s(&inputs[2]);
    assert!(
        labels.iter().all(|&i| (0..vocab).contains(&i)),
        "{labels:?}"
    );

    let by_name = g.value_by_name();
    assert_eq!(input_kind(g, by_name["input_ids"]), InputKind::Below(vocab));
    assert_eq!(input_kind(g, by_name["labels"]), InputKind::Below(vocab));
    assert_eq!(input_kind(g, by_name["attention_mask"]), InputKind::Ones);

    // Deterministic for a seed, different across seeds.
    assert_eq!(random_inputs(g, 7).unwrap(), inputs);
    assert_ne!(random_inputs(g, 8).unwrap()[0], inputs[0]);
}

#[test]
fn random_inputs_in_range_bert() {
    let m = training("bert.ts17", &[]).0;
    let g = &m.graph;
    let inputs = random_inputs(g, 0).unwrap();
    let get = |n: &str| inputs.iter().find(|t| t.name == n).unwrap();
    // bert.embeddings.word_embeddings.weight is [512, 128]; logits [2, 3].
    let ids = i64s(get("input_ids"));
    assert!(ids.iter().all(|&i| (0..512).contains(&i)), "{ids:?}");
    assert!(i64s(get("attention_mask")).iter().all(|&x| x == 1));
    assert!(i64s(get("token_type_ids")).iter().all(|&x| x == 0));
    let labels = i64s(get("labels"));
    assert_eq!(get("labels").dims, [2]);
    assert!(labels.iter().all(|&i| (0..3).contains(&i)), "{labels:?}");
    let by_name = g.value_by_name();
    assert_eq!(input_kind(g, by_name["labels"]), InputKind::Below(3));
    assert_eq!(input_kind(g, by_name["token_type_ids"]), InputKind::Zeros);
}

#[test]
fn float_inputs_uniform_in_minus_one_one() {
    let m = training("mlp.ts17", &[]).0;
    let inputs = random_inputs(&m.graph, 3).unwrap();
    let x = inputs[0].to_f32().unwrap();
    assert_eq!(inputs[0].dims, [8, 64]);
    assert!(x.iter().all(|v| (-1.0..1.0).contains(v)));
    assert!(x.iter().any(|&v| v < -0.5) && x.iter().any(|&v| v > 0.5));
    assert!(i64s(&inputs[1]).iter().all(|&l| (0..10).contains(&l)));
}

// A small graph built by hand, for the formulas.
struct G {
    g: Graph,
}

impl G {
    fn new() -> G {
        G {
            g: Graph::default(),
        }
    }
    fn val(&mut self, name: &str, dims: &[i64]) -> ValueId {
        let v = self.g.new_value(name);
        let value = self.g.value_mut(v);
        value.dtype = Some(DType::Float);
        value.shape = Some(known_shape(dims));
        v
    }
    fn node(&mut self, op: &str, ins: &[ValueId], out: &[i64], attrs: Vec<Attribute>) -> NodeId {
        let name = format!("n{}", self.g.nodes.len());
        let o = self.val(&format!("{name}_out"), out);
        let mut n = Node::new(op, ins.iter().map(|&i| Some(i)).collect(), vec![Some(o)]);
        n.name = name;
        n.attrs = attrs;
        self.g.add_node(n)
    }
}

#[test]
fn analytic_flop_formulas() {
    let mut t = G::new();
    let a = t.val("a", &[2, 3, 4]);
    let b = t.val("b", &[4, 5]);
    let mm = t.node("MatMul", &[a, b], &[2, 3, 5], vec![]);
    assert_eq!(node_flops(&t.g, mm), 2.0 * 2.0 * 3.0 * 5.0 * 4.0);
    assert_eq!(node_bytes(&t.g, mm), 4.0 * (24.0 + 20.0 + 30.0));

    let x = t.val("x", &[4, 8]);
    let w = t.val("w", &[6, 8]);
    let c = t.val("c", &[6]);
    let gemm = t.node(
        "Gemm",
        &[x, w, c],
        &[4, 6],
        vec![Attribute::int("transB", 1)],
    );
    assert_eq!(node_flops(&t.g, gemm), 2.0 * 4.0 * 6.0 * 8.0 + 24.0);
    let xt = t.val("xt", &[8, 4]);
    let gemm_t = t.node(
        "Gemm",
        &[xt, w],
        &[4, 6],
        vec![Attribute::int("transA", 1), Attribute::int("transB", 1)],
    );
    assert_eq!(node_flops(&t.g, gemm_t), 2.0 * 4.0 * 6.0 * 8.0);

    // Conv: N=2, C_in=4, group=2, C_out=6, 3x3 kernel, 5x5 output.
    let img = t.val("img", &[2, 4, 7, 7]);
    let k = t.val("k", &[6, 2, 3, 3]);
    let conv = t.node(
        "Conv",
        &[img, k],
        &[2, 6, 5, 5],
        vec![Attribute::int("group", 2)],
    );
    assert_eq!(node_flops(&t.g, conv), 2.0 * 2.0 * 6.0 * 25.0 * 2.0 * 9.0);
    // ConvTranspose: W [C_in=4, C_out=3, 2, 2]; each input element feeds 3*2*2 outputs.
    let kt = t.val("kt", &[4, 3, 2, 2]);
    let convt = t.node("ConvTranspose", &[img, kt], &[2, 3, 14, 14], vec![]);
    assert_eq!(node_flops(&t.g, convt), 2.0 * (2.0 * 4.0 * 49.0) * 12.0);

    let e = t.val("e", &[10, 10]);
    let add = t.node("Add", &[e, e], &[10, 10], vec![]);
    let erf = t.node("Erf", &[e], &[10, 10], vec![]);
    let exp = t.node("Exp", &[e], &[10, 10], vec![]);
    assert_eq!(node_flops(&t.g, add), 100.0);
    assert!(node_flops(&t.g, erf) > node_flops(&t.g, exp));
    assert!(node_flops(&t.g, exp) > node_flops(&t.g, add));
    let red = t.node("ReduceSum", &[e], &[10, 1], vec![]);
    assert_eq!(node_flops(&t.g, red), 100.0);
    let sm = t.node("Softmax", &[e], &[10, 10], vec![]);
    assert!(node_flops(&t.g, sm) > node_flops(&t.g, add));
    let ln = t.node("LayerNormalization", &[e], &[10, 10], vec![]);
    assert!(node_flops(&t.g, ln) > node_flops(&t.g, add));

    // Data movement: bytes, no FLOPs; aliasing ops: neither.
    let tr = t.node("Transpose", &[e], &[10, 10], vec![]);
    assert_eq!(node_flops(&t.g, tr), 0.0);
    assert_eq!(node_bytes(&t.g, tr), 800.0);
    let rs = t.node("Reshape", &[e], &[100], vec![]);
    assert_eq!((node_flops(&t.g, rs), node_bytes(&t.g, rs)), (0.0, 0.0));
    let table = t.val("table", &[1000, 10]);
    let idx = t.val("idx", &[3]);
    t.g.value_mut(idx).dtype = Some(DType::Int64);
    let gather = t.node("Gather", &[table, idx], &[3, 10], vec![]);
    assert_eq!(
        node_bytes(&t.g, gather),
        2.0 * 120.0 + 24.0,
        "reads rows, not the table"
    );

    // The roofline: the cost is the larger of compute and memory time plus the overhead.
    let spec = DeviceSpec {
        name: "toy".into(),
        peak_flops: 1e9,
        bandwidth: 1e9,
        launch_s: 1e-6,
    };
    let model = AnalyticCost::new(spec);
    let flops = node_flops(&t.g, mm);
    let bytes = node_bytes(&t.g, mm);
    let want = flops.max(bytes) / 1e9 + 1e-6;
    assert!((model.node_time(&t.g, mm) - want).abs() < 1e-15);
    assert_eq!(model.name(), "analytic(toy)");
    let konst = t.node("Constant", &[], &[10], vec![]);
    assert_eq!(model.node_time(&t.g, konst), 0.0);
    assert!(model.node_time(&t.g, rs) > 0.0, "launch overhead");
}

#[test]
fn device_table_orders_devices() {
    let cpu = DeviceSpec::from(Device::Cpu);
    let a100 = DeviceSpec::from(Device::A100);
    let h100 = DeviceSpec::from(Device::H100);
    assert_eq!(a100.peak_flops, 19.5e12);
    assert_eq!(a100.bandwidth, 2039e9);
    assert_eq!(h100.peak_flops, 67e12);
    assert_eq!(h100.bandwidth, 3350e9);
    assert!(cpu.peak_flops < a100.peak_flops && cpu.bandwidth < a100.bandwidth);
    assert!(
        a100.describe().contains("19.5 TFLOP/s"),
        "{}",
        a100.describe()
    );
    let g = training("gpt2.ts17", &[]).0.graph;
    let t: Vec<f64> = [Device::Cpu, Device::A100, Device::H100]
        .iter()
        .map(|&d| graph_time(&AnalyticCost::new(d), &g))
        .collect();
    assert!(t[0] > t[1] && t[1] >= t[2], "{t:?}");
}

#[test]
fn fixed_cost_is_a_table() {
    let mut t = G::new();
    let a = t.val("a", &[4, 4]);
    let mm = t.node("MatMul", &[a, a], &[4, 4], vec![]);
    let conv = t.node("Conv", &[a, a], &[4, 4], vec![]);
    let relu = t.node("Relu", &[a], &[4, 4], vec![]);
    let convt = t.node("ConvTranspose", &[a, a], &[4, 4], vec![]);
    let f = FixedCost::default();
    assert_eq!(f.node_time(&t.g, mm), 1e-5);
    assert_eq!(f.node_time(&t.g, conv), 1e-5);
    assert_eq!(f.node_time(&t.g, convt), 1e-5);
    assert_eq!(f.node_time(&t.g, relu), 1e-6);
    assert_eq!(f.name(), "fixed");
    let f = FixedCost::uniform(2.0).with("Relu", 3.0);
    assert_eq!(f.node_time(&t.g, mm), 2.0);
    assert_eq!(f.node_time(&t.g, relu), 3.0);
}

#[test]
fn measured_cost_uses_profile_recompute_originals_then_scaled_analytic() {
    let mut t = G::new();
    let a = t.val("a", &[64, 64]);
    let mm = t.node("MatMul", &[a, a], &[64, 64], vec![]);
    let relu = t.node("Relu", &[a], &[64, 64], vec![]);
    let copy = t.node("Relu", &[a], &[64, 64], vec![]);
    t.g.node_mut(copy).name = format!("{}/recompute_1", t.g.node(relu).name);
    let unknown = t.node("Add", &[a, a], &[64, 64], vec![]);

    let mut p = sample_profile();
    p.nodes.clear();
    for (n, time) in [(mm, 2e-3), (relu, 1e-4)] {
        let node = t.g.node(n);
        p.nodes.insert(
            node.name.clone(),
            NodeProfile {
                op: node.op_type.clone(),
                time_s: time,
            },
        );
    }
    let analytic = AnalyticCost::new(Device::Cpu);
    let m = MeasuredCost::new(p, analytic.clone());
    assert_eq!(m.name(), "measured");
    assert_eq!(m.node_time(&t.g, mm), 2e-3);
    assert_eq!(
        m.node_time(&t.g, copy),
        1e-4,
        "a recompute copy costs its original"
    );
    assert_eq!(m.time_of_name("n0"), Some(2e-3));
    assert_eq!(m.time_of_name("nope"), None);
    let scale = (2e-3 + 1e-4) / (analytic.node_time(&t.g, mm) + analytic.node_time(&t.g, relu));
    let got = m.node_time(&t.g, unknown);
    let want = analytic.node_time(&t.g, unknown) * scale;
    assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
}

#[test]
fn select_cost_model_explains_its_choice() {
    let g = Graph::default();
    let (m, why) = select_cost_model(Some(sample_profile()), &g, true, Device::A100);
    assert_eq!(m.name(), "calibrated");
    assert!(
        why.contains("calibrated") && why.contains("model.onnx") && why.contains("5 runs"),
        "{why}"
    );
    let (m, why) = select_cost_model(None, &g, true, Device::A100);
    assert_eq!(m.name(), "analytic(a100)");
    assert!(
        why.contains("no profile given") && why.contains("onnx-ac profile"),
        "{why}"
    );
    let (m, why) = select_cost_model(None, &g, false, Device::Cpu);
    assert_eq!(m.name(), "analytic(cpu)");
    assert!(why.contains("ONNX Runtime not available"), "{why}");
    assert!(!why.contains('\n'));
}

#[test]
fn node_names_must_be_unique_and_non_empty() {
    let mut t = G::new();
    let a = t.val("a", &[2]);
    let n0 = t.node("Relu", &[a], &[2], vec![]);
    let n1 = t.node("Relu", &[a], &[2], vec![]);
    let n2 = t.node("Relu", &[a], &[2], vec![]);
    check_node_names(&t.g, Path::new("m.onnx")).unwrap();
    t.g.node_mut(n1).name = t.g.node(n0).name.clone();
    t.g.node_mut(n2).name.clear();
    let e = check_node_names(&t.g, Path::new("m.onnx"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m.onnx") && e.contains("1 node(s) have no name"),
        "{e}"
    );
    assert!(
        e.contains("'n0'") && e.contains("unique, non-empty name"),
        "{e}"
    );
    for f in ["mlp.ts17", "cnn.ts17", "gpt2.ts17", "bert.ts17"] {
        check_node_names(&training(f, &[]).0.graph, &fixture(f)).unwrap();
    }
}

#[test]
fn spearman_handles_ties() {
    assert_eq!(
        spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 4.0, 9.0, 16.0]),
        Some(1.0)
    );
    let r = spearman(&[1.0, 1.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert!(r > 0.9 && r < 1.0);
    assert_eq!(spearman(&[1.0], &[2.0]), None);
}

#[test]
fn castlike_becomes_a_cast_of_the_same_name_for_onnx_runtime() {
    // The torch dynamo exports use CastLike, which ONNX Runtime inlines under generated names.
    let m = training("cnn.dyn18", &[]).0;
    let g = &m.graph;
    let castlikes: Vec<usize> = (0..g.nodes.len())
        .filter(|&i| g.nodes[i].op_type == "CastLike")
        .collect();
    assert!(!castlikes.is_empty());
    let lowered = prepare_for_ort(&m).expect("something to replace");
    for &i in &castlikes {
        let (before, after) = (&g.nodes[i], &lowered.graph.nodes[i]);
        assert_eq!(after.op_type, "Cast");
        assert_eq!(after.name, before.name);
        assert_eq!(after.inputs, before.inputs[..1]);
        assert_eq!(after.outputs, before.outputs);
        let target = g.value(before.input(1).unwrap()).dtype.unwrap();
        assert_eq!(after.attr_int("to"), Some(i64::from(target.to_onnx())));
    }
    assert!(prepare_for_ort(&training("cnn.ts17", &[]).0).is_none());
}
