//! The lowering of `LSTM` and `GRU` into standard ops (passes/src/lower_rnn.rs): the lowered
//! forward must give ONNX Runtime's own LSTM/GRU outputs (float32, to 1e-5), and the forms it
//! does not reproduce stay as the node (so training fails with "no gradient rule").

mod common;

use common::run_on_x;
use onnx_ac::runtime::init;
use onnx_ac_passes::autodiff::{build_training_graph, Loss, TrainOptions};
use onnx_ac_passes::infer::infer_shapes;
use onnx_ac_passes::ir::{known_shape, Attribute, DType, Dim, Graph, Model, Node, Tensor, ValueId};

const SEQ: i64 = 3;
const BATCH: i64 = 2;
const INPUT: i64 = 4;
const HIDDEN: i64 = 5;

struct Spec {
    op: &'static str,
    attrs: Vec<Attribute>,
    bias: bool,
    init_h: bool,
    init_c: bool,
    /// A constant `sequence_lens` of all SEQ.
    seq_lens: bool,
}

impl Spec {
    fn new(op: &'static str, attrs: Vec<Attribute>) -> Spec {
        Spec {
            op,
            attrs,
            bias: true,
            init_h: false,
            init_c: false,
            seq_lens: false,
        }
    }
    fn dirs(&self) -> i64 {
        let bi = self.attrs.iter().any(|a| {
            a.name == "direction" && a.value == Attribute::string("d", "bidirectional").value
        });
        if bi {
            2
        } else {
            1
        }
    }
    fn layout1(&self) -> bool {
        self.attrs.iter().any(|a| a.name == "layout")
    }
}

/// Deterministic values in [-1, 1).
fn values(seed: &mut u64, n: i64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn typed(g: &mut Graph, name: &str, dims: &[i64]) -> ValueId {
    let v = g.new_value(name);
    g.value_mut(v).dtype = Some(DType::Float);
    g.value_mut(v).shape = Some(known_shape(dims));
    v
}

/// The node alone: `x` a graph input, everything else initializers; all outputs declared.
/// Returns the model and X's values. `reference`: layout 1 is written as the layout-0 node
/// between Transposes (ONNX Runtime's CPU kernels support layout 0 only).
fn model(spec: &Spec, x_dims: [i64; 3], reference: bool) -> (Model, Vec<f32>) {
    let gates = if spec.op == "LSTM" { 4 } else { 3 };
    let dirs = spec.dirs();
    let mut seed = 0x5eed_u64 + spec.attrs.len() as u64;
    let mut g = Graph {
        name: "rnn".into(),
        ..Graph::default()
    };
    let x = typed(&mut g, "x", &x_dims);
    g.inputs.push(x);
    let x_vals = values(&mut seed, x_dims.iter().product());
    let mut init = |g: &mut Graph, name: &str, dims: &[i64]| {
        let v = values(&mut seed, dims.iter().product());
        g.add_initializer(name, Tensor::from_f32(dims.to_vec(), &v))
    };
    let w = init(&mut g, "w", &[dirs, gates * HIDDEN, INPUT]);
    let r = init(&mut g, "r", &[dirs, gates * HIDDEN, HIDDEN]);
    let b = spec
        .bias
        .then(|| init(&mut g, "b", &[dirs, 2 * gates * HIDDEN]));
    let state = if spec.layout1() {
        [BATCH, dirs, HIDDEN]
    } else {
        [dirs, BATCH, HIDDEN]
    };
    let h0 = spec.init_h.then(|| init(&mut g, "h0", &state));
    let c0 = spec.init_c.then(|| init(&mut g, "c0", &state));
    let sl = spec.seq_lens.then(|| {
        g.add_initializer(
            "seq_lens",
            Tensor::raw(
                DType::Int32,
                vec![BATCH],
                (0..BATCH)
                    .flat_map(|_| (SEQ as i32).to_le_bytes())
                    .collect(),
            ),
        )
    });
    let y_dims = if spec.layout1() {
        [BATCH, SEQ, dirs, HIDDEN]
    } else {
        [SEQ, dirs, BATCH, HIDDEN]
    };
    let mut outs = vec![typed(&mut g, "y", &y_dims), typed(&mut g, "y_h", &state)];
    if spec.op == "LSTM" {
        outs.push(typed(&mut g, "y_c", &state));
    }
    g.outputs = outs.clone();
    let mut attrs = spec.attrs.clone();
    attrs.push(Attribute::int("hidden_size", HIDDEN));
    let wrap = reference && spec.layout1();
    let transpose = |g: &mut Graph, v: ValueId, perm: &[i64], out: Option<ValueId>| {
        let o = out.unwrap_or_else(|| {
            let name = format!("{}_t", g.value(v).name);
            g.new_value(name)
        });
        let mut n = Node::new("Transpose", vec![Some(v)], vec![Some(o)]);
        n.attrs = vec![Attribute::ints("perm", perm.to_vec())];
        g.add_node(n);
        o
    };
    let (x, h0, c0) = if wrap {
        attrs.retain(|a| a.name != "layout");
        let x = transpose(&mut g, x, &[1, 0, 2], None);
        let h0 = h0.map(|v| transpose(&mut g, v, &[1, 0, 2], None));
        let c0 = c0.map(|v| transpose(&mut g, v, &[1, 0, 2], None));
        (x, h0, c0)
    } else {
        (x, h0, c0)
    };
    let node_outs: Vec<ValueId> = if wrap {
        outs.iter()
            .map(|&o| {
                let name = format!("{}_raw", g.value(o).name);
                g.new_value(name)
            })
            .collect()
    } else {
        outs.clone()
    };
    let mut ins = vec![Some(x), Some(w), Some(r), b, sl, h0];
    if spec.op == "LSTM" {
        ins.push(c0);
    }
    let mut n = Node::new(spec.op, ins, node_outs.iter().map(|&o| Some(o)).collect());
    n.name = "rnn".into();
    n.attrs = attrs;
    g.add_node(n);
    if wrap {
        transpose(&mut g, node_outs[0], &[2, 0, 1, 3], Some(outs[0]));
        for k in 1..outs.len() {
            transpose(&mut g, node_outs[k], &[1, 0, 2], Some(outs[k]));
        }
    }
    let m = Model {
        ir_version: 10,
        opset_imports: vec![(String::new(), 18)],
        producer_name: "rnn_lowering".into(),
        graph: g,
        ..Model::default()
    };
    (m, x_vals)
}

fn ops(m: &Model) -> Vec<String> {
    m.graph.nodes.iter().map(|n| n.op_type.clone()).collect()
}

/// Lowers `spec` and compares every output with ONNX Runtime's LSTM/GRU.
fn check(spec: Spec) {
    init(None).expect("this test needs ONNX Runtime");
    let x_dims = if spec.layout1() {
        [BATCH, SEQ, INPUT]
    } else {
        [SEQ, BATCH, INPUT]
    };
    let (orig, x) = model(&spec, x_dims, true);
    let (mut lowered, _) = model(&spec, x_dims, false);
    infer_shapes(&mut lowered.graph, 18).expect("infer");
    onnx_ac_passes::ir::verify(&lowered.graph).expect("lowered graph is well formed");
    let lowered_ops = ops(&lowered);
    assert!(
        !lowered_ops.iter().any(|o| o == spec.op),
        "{} was not lowered: {lowered_ops:?}",
        spec.op
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let want = run_on_x(&orig, &dir.path().join("orig.onnx"), &x_dims, &x);
    let got = run_on_x(&lowered, &dir.path().join("lowered.onnx"), &x_dims, &x);
    assert_eq!(want.len(), got.len());
    for (k, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w.len(), g.len(), "output {k} size");
        for (i, (a, b)) in w.iter().zip(g).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5,
                "{} {:?}: output {k}[{i}]: ORT {a} vs lowered {b}",
                spec.op,
                spec.attrs
            );
        }
    }
}

fn s(name: &str, v: &str) -> Attribute {
    Attribute::string(name, v)
}
fn i(name: &str, v: i64) -> Attribute {
    Attribute::int(name, v)
}

#[test]
fn lstm_forward_matches_onnx_runtime() {
    check(Spec::new("LSTM", vec![]));
}

#[test]
fn lstm_bidirectional_with_states_matches_onnx_runtime() {
    check(Spec {
        init_h: true,
        init_c: true,
        seq_lens: true,
        ..Spec::new("LSTM", vec![s("direction", "bidirectional")])
    });
}

#[test]
fn lstm_reverse_layout1_matches_onnx_runtime() {
    check(Spec {
        bias: false,
        init_c: true,
        ..Spec::new("LSTM", vec![s("direction", "reverse"), i("layout", 1)])
    });
}

#[test]
fn gru_linear_before_reset_matches_onnx_runtime() {
    check(Spec::new("GRU", vec![i("linear_before_reset", 1)]));
    check(Spec {
        init_h: true,
        ..Spec::new(
            "GRU",
            vec![i("linear_before_reset", 1), s("direction", "reverse")],
        )
    });
}

#[test]
fn gru_default_reset_matches_onnx_runtime() {
    check(Spec {
        init_h: true,
        ..Spec::new("GRU", vec![s("direction", "bidirectional")])
    });
    check(Spec {
        bias: false,
        ..Spec::new("GRU", vec![i("layout", 1)])
    });
}

/// A change to the model [`model`] builds.
type Edit = fn(&mut Model);

/// Forms the lowering does not reproduce stay as the node, and training then reports it.
#[test]
fn unsupported_forms_are_left_alone() {
    let refused: Vec<(&str, Spec, Option<Edit>)> = vec![
        (
            "clip",
            Spec::new("LSTM", vec![Attribute::float("clip", 1.0)]),
            None,
        ),
        (
            "input_forget",
            Spec::new("LSTM", vec![i("input_forget", 1)]),
            None,
        ),
        (
            "activations",
            Spec::new(
                "GRU",
                vec![Attribute::new(
                    "activations",
                    onnx_ac_passes::ir::AttrValue::Strings(vec![
                        b"Relu".to_vec(),
                        b"Tanh".to_vec(),
                    ]),
                )],
            ),
            None,
        ),
        (
            "peepholes",
            Spec::new("LSTM", vec![]),
            Some(|m: &mut Model| {
                let p = m
                    .graph
                    .add_initializer("p", Tensor::from_f32(vec![1, 3 * HIDDEN], &[0.1; 15]));
                let n = &mut m.graph.nodes[0];
                n.inputs.resize(7, None);
                n.inputs.push(Some(p));
            }),
        ),
        (
            "sequence_lens shorter than the sequence",
            Spec::new("GRU", vec![]),
            Some(|m: &mut Model| {
                let sl = m.graph.add_initializer(
                    "sl",
                    Tensor::raw(
                        DType::Int32,
                        vec![2],
                        [3i32, 2].iter().flat_map(|v| v.to_le_bytes()).collect(),
                    ),
                );
                m.graph.nodes[0].inputs[4] = Some(sl);
            }),
        ),
        (
            "dynamic sequence length",
            Spec::new("LSTM", vec![]),
            Some(|m: &mut Model| {
                let x = m.graph.inputs[0];
                m.graph.value_mut(x).shape.as_mut().unwrap()[0] = Dim::Sym("seq".into());
            }),
        ),
    ];
    for (what, spec, edit) in refused {
        let (mut m, _) = model(&spec, [SEQ, BATCH, INPUT], false);
        if let Some(edit) = edit {
            edit(&mut m);
        }
        // loss = ReduceSum(Y_h), a scalar.
        let loss = m.graph.new_value("loss");
        let y_h = m.graph.outputs[1];
        let mut sum = Node::new("ReduceSum", vec![Some(y_h)], vec![Some(loss)]);
        sum.attrs = vec![i("keepdims", 0)];
        m.graph.add_node(sum);
        m.graph.outputs = vec![loss];
        infer_shapes(&mut m.graph, 18).expect("infer");
        assert_eq!(
            ops(&m),
            vec![spec.op.to_string(), "ReduceSum".into()],
            "{what}: the node stays"
        );
        if what.starts_with("dynamic") {
            // Training needs every input dim bound (`--dim`): the node staying is the point.
            continue;
        }
        let opts = TrainOptions {
            loss: Loss::Auto,
            freeze: vec![],
            batch_norm_train: false,
            ..Default::default()
        };
        let err = build_training_graph(&m, &opts).expect_err(what).to_string();
        assert!(
            err.contains(&format!("op {} (node 'rnn') has no gradient rule", spec.op)),
            "{what}: {err}"
        );
    }
}
