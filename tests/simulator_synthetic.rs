//! The memory simulator against ONNX Runtime on small graphs whose live set is known: each
//! graph is built with the IR, saved, run once with a counting allocator (the runtime layer's
//! `measure_peak`), and the measured peak must equal the bytes worked out by hand below AND the
//! simulated peak, exactly, with optimizations on (ONNX Runtime's default) and off.
//!
//! These tests need ONNX Runtime 1.31 (the project's `.venv`); they fail without it.

use onnx_ac::plan::simulate::{self, OptLevel, SimOptions};
use onnx_ac::runtime::{init, run_model, GraphOpt, HostTensor, RunOptions};
use onnx_ac_passes::ir::{known_shape, Attribute, DType, Graph, Model, Node, Tensor, ValueId};

/// A [32, 32] float tensor: 4 KiB.
const B: u64 = 4096;

struct Builder {
    g: Graph,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            g: Graph {
                name: "synthetic".into(),
                ..Graph::default()
            },
        }
    }

    fn value(&mut self, name: &str, dtype: DType, dims: &[i64]) -> ValueId {
        let v = self.g.new_value(name);
        let val = self.g.value_mut(v);
        val.dtype = Some(dtype);
        val.shape = Some(known_shape(dims));
        v
    }

    fn input(&mut self, name: &str, dims: &[i64]) -> ValueId {
        let v = self.value(name, DType::Float, dims);
        self.g.inputs.push(v);
        v
    }

    fn ints(&mut self, name: &str, vals: &[i64]) -> ValueId {
        self.g
            .add_initializer(name, Tensor::from_i64(vec![vals.len() as i64], vals))
    }

    fn floats(&mut self, name: &str, dims: &[i64], seed: f32) -> ValueId {
        let n: i64 = dims.iter().product();
        let vals: Vec<f32> = (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect();
        self.g
            .add_initializer(name, Tensor::from_f32(dims.to_vec(), &vals))
    }

    fn op(&mut self, op: &str, ins: &[ValueId], dims: &[i64], attrs: Vec<Attribute>) -> ValueId {
        self.op_typed(op, ins, DType::Float, dims, attrs)
    }

    fn op_typed(
        &mut self,
        op: &str,
        ins: &[ValueId],
        dtype: DType,
        dims: &[i64],
        attrs: Vec<Attribute>,
    ) -> ValueId {
        let name = format!("{}_{}", op.to_lowercase(), self.g.nodes.len());
        let out = self.value(&name, dtype, dims);
        let mut n = Node::new(op, ins.iter().map(|&v| Some(v)).collect(), vec![Some(out)]);
        n.name = format!("n{}_{op}", self.g.nodes.len());
        n.attrs = attrs;
        self.g.add_node(n);
        out
    }

    fn output(&mut self, v: ValueId) {
        self.g.outputs.push(v);
    }
}

/// Saves `g`, measures its peak with ONNX Runtime at both optimization levels, and checks
/// measured == expected == simulated (and the same for the persistent baseline).
fn check(name: &str, g: Graph, expected_run: u64, expected_baseline: u64) {
    check_levels(name, g, expected_run, [expected_baseline; 2]);
}

/// [`check`] with a different baseline with optimizations on (`[0]`) and off (`[1]`).
fn check_levels(name: &str, g: Graph, expected_run: u64, baselines: [u64; 2]) {
    if let Err(e) = init(None) {
        panic!("this test needs ONNX Runtime 1.31: {e}");
    }
    let model = Model {
        ir_version: 8,
        opset_imports: vec![(String::new(), 17)],
        producer_name: "onnx-ac simulator test".into(),
        graph: g,
        ..Model::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.onnx"));
    onnx_ac::onnx::save(&model, &path, &Default::default()).unwrap();
    let g = &model.graph;
    let inputs: Vec<HostTensor> = g
        .inputs
        .iter()
        .map(|&i| {
            let v = g.value(i);
            let dims = onnx_ac_passes::ir::static_dims(v.shape.as_ref().unwrap()).unwrap();
            HostTensor::zeros(&v.name, v.dtype.unwrap(), &dims).unwrap()
        })
        .collect();
    for (level, opt, expected_baseline) in [
        (OptLevel::All, GraphOpt::All, baselines[0]),
        (OptLevel::Disabled, GraphOpt::Disabled, baselines[1]),
    ] {
        let so = SimOptions {
            level,
            ..SimOptions::default()
        };
        let order = simulate::ort_order(g, &so);
        let sim = simulate::simulate_with(g, &order, None, &so);
        let ro = RunOptions {
            measure_peak: true,
            graph_opt: opt,
            ..RunOptions::default()
        };
        let r = run_model(&path, &inputs, None, &ro).unwrap();
        let measured = r
            .peak_bytes
            .unwrap_or_else(|| panic!("{name}: peak not measured: {:?}", r.warnings));
        let base = r.baseline_bytes.unwrap();
        let expected = expected_baseline + expected_run;
        assert_eq!(
            (measured, base),
            (expected, expected_baseline),
            "{name} ({level:?}): measured peak and baseline vs the hand-worked bytes"
        );
        assert_eq!(
            (
                sim.counted_peak_bytes,
                sim.baseline_bytes,
                sim.activation_peak_bytes
            ),
            (expected, expected_baseline, expected_run),
            "{name} ({level:?}): simulated peak, baseline and run peak"
        );
    }
}

/// Six chained values all read by one Concat: at the Concat all six and its output are live.
#[test]
fn all_alive_until_the_concat() {
    let mut b = Builder::new();
    let x = b.input("x", &[32, 32]);
    let mut prev = x;
    let mut chain = Vec::new();
    for _ in 0..6 {
        prev = b.op("Neg", &[prev], &[32, 32], vec![]);
        chain.push(prev);
    }
    let y = b.op(
        "Concat",
        &chain,
        &[192, 32],
        vec![Attribute::int("axis", 0)],
    );
    b.output(y);
    // a1..a6 (6 B) and the output (6 B); the input is the caller's.
    check("concat", b.g, 12 * B, 0);
}

/// A freed buffer reused by a later value of the same shape stays allocated (idle) in
/// between: t1's buffer is held from its creation until r, which reuses it, has been read.
#[test]
fn a_reused_buffer_stays_allocated_in_between() {
    let mut b = Builder::new();
    let x = b.input("x", &[32, 32]);
    let axes = b.ints("axes", &[1]); // 8 bytes
    let reps = b.ints("reps", &[1, 64]); // 16 bytes
    let starts = b.ints("starts", &[0]);
    let ends = b.ints("ends", &[32]);
    let slice_axes = b.ints("slice_axes", &[-1]); // 3 x 8 bytes
    let t1 = b.op("Neg", &[x], &[32, 32], vec![]);
    let s = b.op("ReduceSum", &[t1, axes], &[32, 1], vec![]);
    let m2 = b.op("Tile", &[s, reps], &[32, 64], vec![]);
    let m3 = b.op("Neg", &[m2], &[32, 64], vec![]);
    // Takes t1's freed buffer (same shape, most recently freed of that shape).
    let r = b.op("Slice", &[m3, starts, ends, slice_axes], &[32, 32], vec![]);
    let y = b.op("Neg", &[r], &[32, 32], vec![]);
    b.output(y);
    // At m3: t1's idle buffer (B) and m2, m3 (2 B each); a fresh buffer for r would give 4 B.
    check("idle_reuse", b.g, 5 * B, 8 + 16 + 24);
}

/// Relu writes in place into its dying input and Reshape aliases its input: one buffer for
/// three values, then the output.
#[test]
fn in_place_and_alias_share_one_buffer() {
    let mut b = Builder::new();
    let x = b.input("x", &[32, 32]);
    let shape = b.ints("shape", &[1024]);
    let a = b.op("Neg", &[x], &[32, 32], vec![]);
    let r = b.op("Relu", &[a], &[32, 32], vec![]);
    let f = b.op("Reshape", &[r, shape], &[1024], vec![]);
    let y = b.op("Neg", &[f], &[1024], vec![]);
    b.output(y);
    check("inplace_alias", b.g, 2 * B, 8);
}

/// Initializers of at most 127 bytes are allocated when the session loads them; with
/// optimizations, single-element constants of equal type, rank and value are merged first.
#[test]
fn small_initializers_are_counted_and_shared() {
    let mut b = Builder::new();
    let x = b.input("x", &[32, 32]);
    let two = b.floats("two", &[], 0.0); // 4 bytes each
    let two_again = b.floats("two_again", &[], 0.0);
    let three = b.floats("three", &[1], 1.0);
    let big = b.floats("big", &[32], 2.0); // 128 bytes: left in the model
    let a = b.op("Mul", &[x, two], &[32, 32], vec![]);
    let c = b.op("Mul", &[a, two_again], &[32, 32], vec![]);
    let d = b.op("Add", &[c, three], &[32, 32], vec![]);
    let y = b.op("Add", &[d, big], &[32, 32], vec![]);
    b.output(y);
    // Two buffers at a time: a and c, then c and d (in a's freed buffer), then d and y.
    check_levels("small_inits", b.g, 2 * B, [4 + 4, 4 + 4 + 4]);
}

/// Sum of three inputs allocates one temporary of the output's size; Where two.
#[test]
fn kernel_scratch_counts_at_its_step() {
    let mut b = Builder::new();
    let x = b.input("x", &[32, 32]);
    let a = b.op("Neg", &[x], &[32, 32], vec![]);
    let c = b.op("Neg", &[a], &[32, 32], vec![]);
    let d = b.op("Sqrt", &[c], &[32, 32], vec![]);
    let s = b.op("Sum", &[a, c, d], &[32, 32], vec![]);
    b.output(s);
    // a, c, d, the output and one temporary.
    check("sum3", b.g, 5 * B, 0);

    let mut b = Builder::new();
    let x = b.input("x", &[32, 32]);
    let a = b.op("Neg", &[x], &[32, 32], vec![]);
    let c = b.op("Sqrt", &[a], &[32, 32], vec![]);
    let cond = b.op_typed("Greater", &[a, c], DType::Bool, &[32, 32], vec![]);
    let w = b.op("Where", &[cond, a, c], &[32, 32], vec![]);
    b.output(w);
    // a, c, the condition (1 KiB), the output and two temporaries.
    check("where", b.g, 5 * B + 1024, 0);
}

/// Constant MatMul and Gemm weights are prepacked once per session (N padded to 16 columns);
/// the weights themselves (over 127 bytes) are not allocated.
#[test]
fn prepacked_weights_are_persistent() {
    let mut b = Builder::new();
    let x = b.input("x", &[8, 64]);
    let w = b.floats("w", &[64, 10], 1.0);
    let wt = b.floats("wt", &[24, 64], 2.0);
    let y = b.op("MatMul", &[x, w], &[8, 10], vec![]);
    let z = b.op(
        "Gemm",
        &[x, wt],
        &[8, 24],
        vec![Attribute::int("transB", 1)],
    );
    b.output(y);
    b.output(z);
    // MatMul: N = 10 -> 16 columns x K = 64 x 4 bytes; Gemm: N = 24 -> 32 x 64 x 4.
    check(
        "prepack",
        b.g,
        8 * 10 * 4 + 8 * 24 * 4,
        16 * 64 * 4 + 32 * 64 * 4,
    );
}

/// Graph outputs keep their own buffers to the end, even when read; a value nobody reads is
/// never released during the run.
#[test]
fn outputs_and_unread_values_are_kept() {
    let mut b = Builder::new();
    let x = b.input("x", &[32, 32]);
    let reps = b.ints("reps", &[1, 2]); // 16 bytes
    let a = b.op("Neg", &[x], &[32, 32], vec![]);
    b.output(a);
    let c = b.op("Sqrt", &[a], &[32, 32], vec![]);
    // Nobody reads `unread` (and no later value has its shape to reuse it).
    let _unread = b.op("Tile", &[c, reps], &[32, 64], vec![]);
    let d = b.op("Neg", &[c], &[32, 32], vec![]);
    let e = b.op("Neg", &[d], &[32, 32], vec![]);
    b.output(e);
    // At e: a (output), unread (2 B), d and e (output); c was released after d.
    check("outputs", b.g, 5 * B, 16);
}
