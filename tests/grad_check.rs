//! Finite-difference gradient checks of every autodiff rule, through ONNX Runtime (CPU).
//!
//! Each case builds a tiny forward (the op under test with random inputs), a training graph
//! of it, and compares the gradients with central differences of the same forward; see
//! `grad_check/harness.rs` and docs/gradients.md (tolerances, float32 ops, measured errors).
//! All cases of a family run before the test fails, and the failure lists every one.
//! `GRAD_CHECK_FILTER=<substring>` runs only the matching cases; `--nocapture` prints one
//! `GRADCHECK` line per case with its worst error and the values it saves;
//! `GRAD_CHECK_PROBE_F64=1` runs the float32 cases in float64 (to re-check which ops ONNX
//! Runtime still lacks float64 kernels for: those cases then fail to load).

#[path = "grad_check/harness.rs"]
mod harness;

use harness::{case, run_family, Case, Gb};
use onnx_ac_passes::ir::{AttrValue, Attribute, Tensor};

fn int(name: &str, v: i64) -> Attribute {
    Attribute::int(name, v)
}
fn ints(name: &str, v: &[i64]) -> Attribute {
    Attribute::ints(name, v.to_vec())
}
fn float(name: &str, v: f32) -> Attribute {
    Attribute::float(name, v)
}
fn string(name: &str, v: &str) -> Attribute {
    Attribute::string(name, v)
}

/// `op(x)` with `x` uniform in [lo, hi], at least 0.2 away from `kinks`.
fn unary(
    op: &'static str,
    name: &str,
    dims: &'static [i64],
    attrs: Vec<Attribute>,
    (lo, hi): (f64, f64),
    kinks: &'static [f64],
) -> Case {
    case(op, name, move |g: &mut Gb| {
        let x = g.param_with(dims, |r| r.away(lo, hi, kinks, 0.2));
        vec![g.op(op, &[x], attrs.clone())]
    })
}

/// `op(a, b)` with both inputs trained, uniform in [-1, 1] (the divisor in ±[0.5, 1.5]).
fn binary(op: &'static str, a: &'static [i64], b: &'static [i64]) -> Case {
    case(op, &format!("{op} {a:?} {b:?}"), move |g: &mut Gb| {
        let x = g.param(a);
        let y = if op == "Div" {
            g.param_with(b, |r| r.signed(0.5, 1.5))
        } else {
            g.param(b)
        };
        vec![g.op(op, &[x, y], vec![])]
    })
}

#[test]
fn elementwise_binary() {
    let shapes: [(&'static [i64], &'static [i64]); 6] = [
        (&[2, 3], &[2, 3]),
        (&[2, 3], &[3]),
        (&[2, 1, 4], &[3, 1]),
        (&[], &[2, 3]),
        (&[1, 3], &[2, 1]),
        (&[2, 3], &[1]),
    ];
    let mut cases = Vec::new();
    for op in ["Add", "Sub", "Mul", "Div"] {
        for (a, b) in shapes {
            cases.push(binary(op, a, b));
        }
        cases.push(case(op, &format!("{op} param with constant"), move |g| {
            let x = g.param(&[2, 3]);
            let k = g.fconst(&[3], &[0.7, -1.3, 0.9]);
            vec![g.op(op, &[x, k], vec![])]
        }));
        cases.push(case(op, &format!("{op} constant with param"), move |g| {
            let k = g.fconst(&[2, 1], &[0.7, -1.3]);
            let x = g.param_with(&[3], |r| r.signed(0.5, 1.5));
            vec![g.op(op, &[k, x], vec![])]
        }));
        cases.push(case(op, &format!("{op} same input twice"), move |g| {
            let x = g.param_with(&[2, 3], |r| r.signed(0.5, 1.5));
            vec![g.op(op, &[x, x], vec![])]
        }));
    }
    cases.extend([
        case("Pow", "Pow base and exponent, broadcast", |g| {
            let x = g.param_with(&[2, 3], |r| r.uniform(0.5, 2.0));
            let e = g.param_with(&[3], |r| r.uniform(-1.5, 2.5));
            vec![g.op("Pow", &[x, e], vec![])]
        }),
        case("Pow", "Pow base broadcast against exponent", |g| {
            let x = g.param_with(&[3], |r| r.uniform(0.5, 2.0));
            let e = g.param_with(&[2, 3], |r| r.uniform(-1.5, 2.5));
            vec![g.op("Pow", &[x, e], vec![])]
        }),
        case("Pow", "Pow base, constant exponent 3", |g| {
            let x = g.param(&[2, 3]);
            let e = g.fconst(&[], &[3.0]);
            vec![g.op("Pow", &[x, e], vec![])]
        }),
        case("Pow", "Pow base, int64 exponent 2", |g| {
            let x = g.param(&[2, 3]);
            let e = g.konst(Tensor::from_i64(vec![], &[2]));
            vec![g.op("Pow", &[x, e], vec![])]
        }),
        case("Pow", "Pow exponent only", |g| {
            let x = g.fconst(&[3], &[0.6, 1.7, 2.2]);
            let e = g.param_with(&[2, 3], |r| r.uniform(-2.0, 2.0));
            vec![g.op("Pow", &[x, e], vec![])]
        }),
    ]);
    run_family("elementwise_binary", cases);
}

/// One unary op of the table: attributes, input range and points to stay away from.
struct Unary {
    op: &'static str,
    label: &'static str,
    attrs: Vec<Attribute>,
    range: (f64, f64),
    kinks: &'static [f64],
    opset: i64,
    f32: bool,
}

fn u(op: &'static str, range: (f64, f64), kinks: &'static [f64]) -> Unary {
    Unary {
        op,
        label: op,
        attrs: vec![],
        range,
        kinks,
        opset: 18,
        f32: false,
    }
}

#[test]
fn elementwise_unary() {
    let table = vec![
        u("Relu", (-2.0, 2.0), &[0.0]),
        Unary {
            label: "LeakyRelu default alpha",
            ..u("LeakyRelu", (-2.0, 2.0), &[0.0])
        },
        Unary {
            label: "LeakyRelu alpha 0.3",
            attrs: vec![float("alpha", 0.3)],
            ..u("LeakyRelu", (-2.0, 2.0), &[0.0])
        },
        u("Sigmoid", (-3.0, 3.0), &[]),
        u("Tanh", (-2.0, 2.0), &[]),
        Unary {
            f32: true,
            ..u("Erf", (-2.0, 2.0), &[])
        },
        Unary {
            label: "Gelu exact",
            opset: 20,
            f32: true,
            ..u("Gelu", (-3.0, 3.0), &[])
        },
        Unary {
            label: "Gelu tanh",
            attrs: vec![string("approximate", "tanh")],
            opset: 20,
            ..u("Gelu", (-3.0, 3.0), &[])
        },
        Unary {
            label: "HardSigmoid default",
            ..u("HardSigmoid", (-4.0, 4.0), &[-2.5, 2.5])
        },
        Unary {
            label: "HardSigmoid alpha 0.3 beta 0.4",
            attrs: vec![float("alpha", 0.3), float("beta", 0.4)],
            ..u("HardSigmoid", (-3.0, 3.0), &[-4.0 / 3.0, 2.0])
        },
        u("HardSwish", (-5.0, 5.0), &[-3.0, 3.0]),
        u("Exp", (-2.0, 2.0), &[]),
        u("Sin", (-3.0, 3.0), &[]),
        u("Cos", (-3.0, 3.0), &[]),
        // ONNX Runtime 1.31's CPU provider has Tan in float32 only.
        Unary {
            f32: true,
            ..u("Tan", (-1.0, 1.0), &[])
        },
        u("Log", (0.2, 3.0), &[]),
        u("Sqrt", (0.2, 3.0), &[]),
        u("Reciprocal", (-2.0, 2.0), &[0.0]),
        u("Neg", (-2.0, 2.0), &[]),
        u("Abs", (-2.0, 2.0), &[0.0]),
        u("Softplus", (-3.0, 3.0), &[]),
        u("Identity", (-2.0, 2.0), &[]),
    ];
    let mut cases = Vec::new();
    for t in &table {
        let shapes: [&'static [i64]; 3] = [&[3, 4], &[2, 3, 2], &[]];
        for dims in shapes {
            let c = unary(
                t.op,
                &format!("{} {dims:?}", t.label),
                dims,
                t.attrs.clone(),
                t.range,
                t.kinks,
            )
            .opset(t.opset);
            cases.push(if t.f32 { c.f32() } else { c });
        }
    }
    cases.extend([
        case("Tanh", "Tanh(x) * x (fan-out)", |g| {
            let x = g.param(&[3, 4]);
            let t = g.op("Tanh", &[x], vec![]);
            vec![g.op("Mul", &[t, x], vec![])]
        }),
        case("Exp", "Exp and Log of one input (two outputs)", |g| {
            let x = g.param_with(&[3, 4], |r| r.uniform(0.2, 2.0));
            vec![g.op("Exp", &[x], vec![]), g.op("Log", &[x], vec![])]
        }),
    ]);
    run_family("elementwise_unary", cases);
}

#[test]
fn elementwise_misc() {
    let cases = vec![
        case("Where", "Where x [2,3] y [3]", |g| {
            let c = g.bools(&[2, 3], &[true, false, true, false, false, true]);
            let x = g.param(&[2, 3]);
            let y = g.param(&[3]);
            vec![g.op("Where", &[c, x, y], vec![])]
        }),
        case("Where", "Where cond [3] x [2,3] y scalar", |g| {
            let c = g.bools(&[3], &[true, false, true]);
            let x = g.param(&[2, 3]);
            let y = g.param(&[]);
            vec![g.op("Where", &[c, x, y], vec![])]
        }),
        case("Where", "Where constant y", |g| {
            let c = g.bools(&[2, 1], &[true, false]);
            let x = g.param(&[2, 3]);
            let y = g.fconst(&[], &[0.25]);
            vec![g.op("Where", &[c, x, y], vec![])]
        }),
        case("Cast", "Cast float32 -> float64", |g| {
            let x = g.param(&[2, 3]);
            vec![g.op("Cast", &[x], vec![int("to", 11)])]
        })
        .f32(),
        case("Cast", "Cast float64 -> float32", |g| {
            let x = g.param(&[2, 3]);
            vec![g.op("Cast", &[x], vec![int("to", 1)])]
        })
        .loose(),
        case("Cast", "Cast float64 -> float64", |g| {
            let x = g.param(&[2, 3]);
            let y = g.op("Cast", &[x], vec![int("to", 11)]);
            vec![g.op("Mul", &[y, y], vec![])]
        }),
        case("CastLike", "CastLike float32 like float64", |g| {
            let x = g.param(&[2, 3]);
            let like = g.konst(
                Tensor::from_f64_as(onnx_ac_passes::ir::DType::Double, vec![], &[0.0]).unwrap(),
            );
            vec![g.op("CastLike", &[x, like], vec![])]
        })
        .f32(),
        case("Dropout", "Dropout inference, ratio 0.5", |g| {
            let x = g.param(&[2, 3]);
            let ratio = g.fconst(&[], &[0.5]);
            vec![g.op("Dropout", &[x, ratio], vec![])]
        }),
        case("Dropout", "Dropout training, ratio 0", |g| {
            let x = g.param(&[2, 3]);
            let ratio = g.fconst(&[], &[0.0]);
            let t = g.bools(&[], &[true]);
            vec![g.node("Dropout", &[Some(x), Some(ratio), Some(t)], vec![], 2)[0]]
        }),
        case("Dropout", "Dropout no ratio (opset 13)", |g| {
            let x = g.param(&[2, 3]);
            vec![g.op("Dropout", &[x], vec![])]
        })
        .opset(13),
        case("Clip", "Clip min and max", |g| {
            let x = g.param_with(&[3, 4], |r| r.away(-2.0, 2.0, &[-0.5, 0.7], 0.05));
            let lo = g.fconst(&[], &[-0.5]);
            let hi = g.fconst(&[], &[0.7]);
            vec![g.op("Clip", &[x, lo, hi], vec![])]
        }),
        case("Clip", "Clip max only", |g| {
            let x = g.param_with(&[3, 4], |r| r.away(-2.0, 2.0, &[0.3], 0.05));
            let hi = g.fconst(&[], &[0.3]);
            vec![g.node("Clip", &[Some(x), None, Some(hi)], vec![], 1)[0]]
        }),
        case("Clip", "Clip min only", |g| {
            let x = g.param_with(&[3, 4], |r| r.away(-2.0, 2.0, &[-0.2], 0.05));
            let lo = g.fconst(&[], &[-0.2]);
            vec![g.op("Clip", &[x, lo], vec![])]
        }),
        case("Clip", "Clip no bounds", |g| {
            let x = g.param(&[3, 4]);
            vec![g.op("Clip", &[x], vec![])]
        }),
        max_min("Max", &[2, 3], &[3]),
        max_min("Min", &[2, 3], &[3]),
        max_min("Max", &[2, 1], &[1, 3]),
        max_min("Min", &[2, 3], &[2, 3]),
        case("Sum", "Sum of three, broadcast", |g| {
            let a = g.param(&[2, 3]);
            let b = g.param(&[3]);
            let c = g.param(&[2, 1]);
            vec![g.op("Sum", &[a, b, c], vec![])]
        }),
        case("Sum", "Sum of one", |g| {
            let a = g.param(&[2, 3]);
            vec![g.op("Sum", &[a], vec![])]
        }),
        case("Sum", "Sum of x, x, y", |g| {
            let a = g.param(&[2, 3]);
            let b = g.param(&[1, 3]);
            vec![g.op("Sum", &[a, a, b], vec![])]
        }),
        case("Mean", "Mean of three, broadcast", |g| {
            let a = g.param(&[2, 3]);
            let b = g.param(&[3]);
            let c = g.param(&[2, 1]);
            vec![g.op("Mean", &[a, b, c], vec![])]
        })
        .f32(),
        case("Mean", "Mean of two", |g| {
            let a = g.param(&[2, 3]);
            let b = g.param(&[2, 3]);
            vec![g.op("Mean", &[a, b], vec![])]
        })
        .f32(),
    ];
    run_family("elementwise_misc", cases);
}

/// Max/Min of two inputs whose elements are at least 0.1 apart (no ties within ±h).
fn max_min(op: &'static str, a: &'static [i64], b: &'static [i64]) -> Case {
    case(op, &format!("{op} {a:?} {b:?}"), move |g| {
        // b is drawn from a coarse grid and a from its midpoints: |a - b| >= 0.1.
        let x = g.param_with(a, |r| (r.uniform(-10.0, 10.0).floor() + 0.5) * 0.2);
        let y = g.param_with(b, |r| r.uniform(-10.0, 10.0).floor() * 0.2);
        vec![g.op(op, &[x, y], vec![])]
    })
}

fn matmul(a: &'static [i64], b: &'static [i64]) -> Case {
    case("MatMul", &format!("MatMul {a:?} x {b:?}"), move |g| {
        let x = g.param(a);
        let y = g.param(b);
        vec![g.op("MatMul", &[x, y], vec![])]
    })
}

/// Gemm with A [2,3] (or its transpose), B [3,4] (or its transpose) and C of `c` dims.
fn gemm(ta: bool, tb: bool, c: Option<&'static [i64]>, alpha: f32, beta: f32) -> Case {
    let name = format!(
        "Gemm transA={} transB={} C={c:?} alpha={alpha} beta={beta}",
        ta as i64, tb as i64
    );
    case("Gemm", &name, move |g| {
        let a = g.param(if ta { &[3, 2] } else { &[2, 3] });
        let b = g.param(if tb { &[4, 3] } else { &[3, 4] });
        let mut ins = vec![Some(a), Some(b)];
        if let Some(cd) = c {
            ins.push(Some(g.param(cd)));
        }
        let mut attrs = vec![int("transA", ta as i64), int("transB", tb as i64)];
        if alpha != 1.0 {
            attrs.push(float("alpha", alpha));
        }
        if beta != 1.0 {
            attrs.push(float("beta", beta));
        }
        vec![g.node("Gemm", &ins, attrs, 1)[0]]
    })
}

#[test]
fn linalg() {
    let mut cases = vec![
        matmul(&[2, 3], &[3, 4]),
        matmul(&[2, 2, 3], &[2, 3, 4]),
        matmul(&[2, 1, 2, 3], &[3, 3, 2]),
        matmul(&[2, 2, 3], &[3, 2]),
        matmul(&[3, 2], &[2, 2, 4]),
        matmul(&[3], &[3, 4]),
        matmul(&[2, 3], &[3]),
        matmul(&[3], &[3]),
        matmul(&[3], &[2, 3, 4]),
        matmul(&[2, 2, 3], &[3]),
        case("MatMul", "MatMul x @ x", |g| {
            let x = g.param(&[3, 3]);
            vec![g.op("MatMul", &[x, x], vec![])]
        }),
    ];
    for ta in [false, true] {
        for tb in [false, true] {
            cases.push(gemm(ta, tb, Some(&[4]), 1.0, 1.0));
        }
    }
    cases.extend([
        gemm(false, false, Some(&[2, 4]), 0.5, 2.0),
        gemm(true, true, Some(&[2, 1]), 1.5, 0.5),
        gemm(false, true, Some(&[]), 1.0, 1.0),
        gemm(true, false, Some(&[1, 4]), 1.0, -1.0),
        gemm(true, true, None, 2.0, 1.0),
    ]);
    run_family("linalg", cases);
}

fn softmax(op: &'static str, axis: i64) -> Case {
    case(op, &format!("{op} axis {axis}"), move |g| {
        let x = g.param_with(&[2, 3, 4], |r| r.uniform(-2.0, 2.0));
        vec![g.op(op, &[x], vec![int("axis", axis)])]
    })
}

/// ReduceSum/ReduceMean of x [2,3,4] over `axes` (None: all), at `opset`.
fn reduce(op: &'static str, opset: i64, axes: Option<&'static [i64]>, keep: i64) -> Case {
    let name = format!("{op} opset {opset} axes {axes:?} keepdims {keep}");
    case(op, &name, move |g| {
        let x = g.param(&[2, 3, 4]);
        let axes_input = op == "ReduceSum" || opset >= 18;
        let mut attrs = vec![int("keepdims", keep)];
        let mut ins = vec![Some(x)];
        if let Some(a) = axes {
            if axes_input {
                ins.push(Some(g.ints(a)));
            } else {
                attrs.push(ints("axes", a));
            }
        }
        vec![g.node(op, &ins, attrs, 1)[0]]
    })
    .opset(opset)
}

fn layer_norm(name: &str, x: &'static [i64], axis: i64, bias: bool, stats: bool) -> Case {
    case("LayerNormalization", name, move |g| {
        let xv = g.param_with(x, |r| r.uniform(-2.0, 2.0));
        let r = x.len() as i64;
        let a = if axis < 0 { axis + r } else { axis } as usize;
        let sd = &x[a..];
        let s = g.param_with(sd, |r| r.uniform(0.5, 1.5));
        let mut ins = vec![Some(xv), Some(s)];
        if bias {
            ins.push(Some(g.param(sd)));
        }
        let n_out = if stats { 3 } else { 1 };
        let attrs = vec![int("axis", axis), float("epsilon", 1e-3)];
        vec![g.node("LayerNormalization", &ins, attrs, n_out)[0]]
    })
}

fn batch_norm(name: &str, x: &'static [i64], train: bool) -> Case {
    let c = case("BatchNormalization", name, move |g| {
        let xv = g.param_with(x, |r| r.uniform(-2.0, 2.0));
        let ch = x[1];
        let s = g.param_with(&[ch], |r| r.uniform(0.5, 1.5));
        let b = g.param(&[ch]);
        let mean = g.fconst_with(&[ch], |r| r.uniform(-0.5, 0.5));
        let var = g.fconst_with(&[ch], |r| r.uniform(0.5, 1.5));
        let attrs = vec![float("epsilon", 1e-3)];
        vec![g.op("BatchNormalization", &[xv, s, b, mean, var], attrs)]
    })
    .opset(15);
    if train {
        c.bn_train()
    } else {
        c
    }
}

/// InstanceNormalization with trained scale and bias, or (`params` false) x only with
/// constant ones/zeros as torch exports GroupNorm with groups == channels.
fn instance_norm(name: &str, x: &'static [i64], params: bool) -> Case {
    case("InstanceNormalization", name, move |g| {
        let xv = g.param_with(x, |r| r.uniform(-2.0, 2.0));
        let ch = x[1];
        let (s, b) = if params {
            let s = g.param_with(&[ch], |r| r.uniform(0.5, 1.5));
            (s, g.param(&[ch]))
        } else {
            let ones = vec![1.0; ch as usize];
            let zeros = vec![0.0; ch as usize];
            (g.fconst(&[ch], &ones), g.fconst(&[ch], &zeros))
        };
        let attrs = vec![float("epsilon", 1e-3)];
        vec![g.op("InstanceNormalization", &[xv, s, b], attrs)]
    })
    .f32()
}

#[test]
fn normalization_and_reductions() {
    let mut cases = vec![
        softmax("Softmax", -1),
        softmax("Softmax", 1),
        softmax("Softmax", 0),
        softmax("LogSoftmax", -1),
        softmax("LogSoftmax", 1),
        softmax("LogSoftmax", 0),
        layer_norm("LayerNormalization axis -1", &[2, 3, 4], -1, true, false),
        layer_norm("LayerNormalization axis 1", &[2, 3, 4], 1, true, false),
        layer_norm("LayerNormalization no bias", &[3, 5], -1, false, false),
        layer_norm(
            "LayerNormalization with Mean/InvStdDev outputs",
            &[2, 3, 4],
            -1,
            true,
            true,
        ),
        layer_norm(
            "LayerNormalization f32 with Mean/InvStdDev outputs",
            &[2, 6],
            1,
            true,
            true,
        )
        .f32(),
        batch_norm(
            "BatchNormalization as exported [2,3,2,2]",
            &[2, 3, 2, 2],
            false,
        ),
        batch_norm("BatchNormalization as exported [2,3,4]", &[2, 3, 4], false),
        batch_norm("BatchNormalization training [2,3,2,2]", &[2, 3, 2, 2], true),
        batch_norm("BatchNormalization training [4,3]", &[4, 3], true),
        batch_norm("BatchNormalization training opset 14", &[2, 2, 3], true).opset(14),
        // Training mode needs BatchNormalization-14's `training_mode`: at opset 13 the
        // switched graph is invalid (see docs/gradients.md), so it is not checked here.
        batch_norm("BatchNormalization as exported opset 13", &[2, 2, 3], false).opset(13),
        case(
            "BatchNormalization",
            "BatchNormalization as exported, x only",
            |g| {
                let x = g.param_with(&[2, 3, 2], |r| r.uniform(-2.0, 2.0));
                let s = g.fconst(&[3], &[0.8, 1.2, -0.7]);
                let b = g.fconst(&[3], &[0.1, -0.2, 0.3]);
                let mean = g.fconst(&[3], &[0.2, -0.1, 0.0]);
                let var = g.fconst(&[3], &[0.9, 1.4, 0.6]);
                vec![g.op("BatchNormalization", &[x, s, b, mean, var], vec![])]
            },
        )
        .opset(15),
        case(
            "BatchNormalization",
            "BatchNormalization training, x only",
            |g| {
                let x = g.param_with(&[3, 2, 2], |r| r.uniform(-2.0, 2.0));
                let s = g.fconst(&[2], &[0.8, -1.2]);
                let b = g.fconst(&[2], &[0.1, -0.2]);
                let mean = g.fconst(&[2], &[0.2, -0.1]);
                let var = g.fconst(&[2], &[0.9, 1.4]);
                vec![g.op("BatchNormalization", &[x, s, b, mean, var], vec![])]
            },
        )
        .opset(15)
        .bn_train(),
        layer_norm("LayerNormalization axis 0", &[3, 4], 0, true, false),
        case(
            "LayerNormalization",
            "LayerNormalization scale broadcast",
            |g| {
                let x = g.param_with(&[2, 3, 4], |r| r.uniform(-2.0, 2.0));
                let s = g.param_with(&[4], |r| r.uniform(0.5, 1.5));
                let b = g.param(&[1, 4]);
                vec![g.op("LayerNormalization", &[x, s, b], vec![int("axis", 1)])]
            },
        ),
        case("ReduceSum", "ReduceSum noop_with_empty_axes", |g| {
            let x = g.param(&[2, 3]);
            vec![g.op("ReduceSum", &[x], vec![int("noop_with_empty_axes", 1)])]
        }),
        case("LayerNormalization", "LayerNormalization x only", |g| {
            let x = g.param_with(&[2, 5], |r| r.uniform(-2.0, 2.0));
            let s = g.fconst(&[5], &[0.8, 1.2, -0.7, 1.0, 0.5]);
            vec![g.op("LayerNormalization", &[x, s], vec![])]
        }),
    ];
    cases.extend([
        reduce("ReduceSum", 13, Some(&[0, 2]), 1),
        reduce("ReduceMean", 13, Some(&[1]), 0),
        case("Softmax", "Softmax rank 1", |g| {
            let x = g.param(&[5]);
            vec![g.op("Softmax", &[x], vec![])]
        }),
        case("LogSoftmax", "LogSoftmax opset 13", |g| {
            let x = g.param(&[2, 5]);
            vec![g.op("LogSoftmax", &[x], vec![])]
        })
        .opset(13),
    ]);
    for op in ["ReduceSum", "ReduceMean"] {
        for opset in [17, 18] {
            cases.extend([
                reduce(op, opset, Some(&[1]), 1),
                reduce(op, opset, Some(&[0, 2]), 0),
                reduce(op, opset, Some(&[-1]), 0),
                reduce(op, opset, Some(&[0, 1, 2]), 1),
                reduce(op, opset, None, 0),
            ]);
        }
    }
    cases.extend([
        instance_norm("InstanceNormalization [2,3,2,3]", &[2, 3, 2, 3], true),
        instance_norm("InstanceNormalization 1-D [2,2,5]", &[2, 2, 5], true),
        instance_norm(
            "InstanceNormalization 3-D [1,2,2,2,2]",
            &[1, 2, 2, 2, 2],
            true,
        ),
        instance_norm("InstanceNormalization x only", &[2, 3, 4], false),
    ]);
    run_family("normalization_and_reductions", cases);
}

/// ReduceL1/L2/SumSquare/LogSum/LogSumExp/Max/Min of x [2,3,4] over `axes` (None: all),
/// at `opset`; inputs drawn for the op (away from 0 for L1, positive for LogSum, distinct
/// values for Max/Min).
fn reduce_other(op: &'static str, opset: i64, axes: Option<&'static [i64]>, keep: i64) -> Case {
    let name = format!("{op} opset {opset} axes {axes:?} keepdims {keep}");
    case(op, &name, move |g| {
        let dims = [2, 3, 4];
        let x = match op {
            "ReduceL1" => g.param_with(&dims, |r| r.signed(0.2, 1.5)),
            "ReduceLogSum" => g.param_with(&dims, |r| r.uniform(0.3, 2.0)),
            "ReduceMax" | "ReduceMin" => {
                let v = g.rng.distinct(24, 0.1);
                g.param_vals(&dims, v)
            }
            _ => g.param_with(&dims, |r| r.uniform(-1.5, 1.5)),
        };
        let mut attrs = vec![int("keepdims", keep)];
        let mut ins = vec![Some(x)];
        if let Some(a) = axes {
            if opset >= 18 {
                ins.push(Some(g.ints(a)));
            } else {
                attrs.push(ints("axes", a));
            }
        }
        vec![g.node(op, &ins, attrs, 1)[0]]
    })
    .opset(opset)
}

#[test]
fn reductions() {
    let mut cases = Vec::new();
    for op in [
        "ReduceL2",
        "ReduceL1",
        "ReduceSumSquare",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceMax",
        "ReduceMin",
    ] {
        for opset in [13, 18] {
            cases.extend([
                reduce_other(op, opset, Some(&[1]), 1),
                reduce_other(op, opset, Some(&[0, 2]), 0),
                reduce_other(op, opset, Some(&[-1]), 0),
                reduce_other(op, opset, None, 1),
            ]);
        }
    }
    cases.extend([
        case("ReduceL2", "ReduceL2 noop_with_empty_axes", |g| {
            let x = g.param_with(&[2, 3], |r| r.signed(0.2, 1.5));
            vec![g.op("ReduceL2", &[x], vec![int("noop_with_empty_axes", 1)])]
        }),
        // The norm of a zero row: the gradient is 0 there (central differences give 0 too).
        case("ReduceL2", "ReduceL2 with a zero row", |g| {
            let vals = vec![0.0, 0.0, 0.0, 0.4, -1.2, 0.7];
            let x = g.param_vals(&[2, 3], vals);
            let a = g.ints(&[1]);
            vec![g.op("ReduceL2", &[x, a], vec![])]
        }),
        // A tie of two: each gets dy/2, which is also what central differences measure.
        case("ReduceMax", "ReduceMax tie of two", |g| {
            let vals = vec![0.9, 0.3, 0.9, -0.5, 0.2, 0.2, 0.1, -0.7];
            let x = g.param_vals(&[2, 4], vals);
            let a = g.ints(&[1]);
            vec![g.op("ReduceMax", &[x, a], vec![int("keepdims", 0)])]
        }),
        case("ReduceMin", "ReduceMin tie of two", |g| {
            let vals = vec![-0.9, 0.3, -0.9, 0.5, 0.2, 0.2, 0.1, 0.7];
            let x = g.param_vals(&[2, 4], vals);
            let a = g.ints(&[1]);
            vec![g.op("ReduceMin", &[x, a], vec![])]
        }),
        case("Cos", "Sin and Cos of one input (rotary tables)", |g| {
            let x = g.param_with(&[4, 3], |r| r.uniform(-3.0, 3.0));
            vec![g.op("Sin", &[x], vec![]), g.op("Cos", &[x], vec![])]
        }),
    ]);
    run_family("reductions", cases);
}

/// CumSum of x [3,4] along a constant axis, with `exclusive`/`reverse` when given.
fn cum_sum(name: &str, axis: i64, exclusive: i64, reverse: i64) -> Case {
    case("CumSum", name, move |g| {
        let x = g.param(&[3, 4]);
        let a = g.ints_shaped(&[], &[axis]);
        let attrs = vec![int("exclusive", exclusive), int("reverse", reverse)];
        vec![g.op("CumSum", &[x, a], attrs)]
    })
}

/// DepthToSpace/SpaceToDepth, lowered to Reshape → Transpose → Reshape at inference.
fn depth_space(op: &'static str, name: &str, x: &'static [i64], attrs: Vec<Attribute>) -> Case {
    with_attrs(op, name, x, attrs)
}

#[test]
fn scans_and_rearrangements() {
    let cases = vec![
        cum_sum("CumSum axis 0", 0, 0, 0),
        cum_sum("CumSum axis 1 reverse", 1, 0, 1),
        cum_sum("CumSum axis -1 exclusive", -1, 1, 0),
        cum_sum("CumSum axis 0 exclusive reverse", 0, 1, 1),
        depth_space(
            "DepthToSpace",
            "DepthToSpace DCR blocksize 2",
            &[2, 8, 2, 3],
            vec![int("blocksize", 2)],
        ),
        depth_space(
            "DepthToSpace",
            "DepthToSpace CRD blocksize 2 (PixelShuffle)",
            &[1, 12, 2, 2],
            vec![int("blocksize", 2), string("mode", "CRD")],
        ),
        depth_space(
            "DepthToSpace",
            "DepthToSpace CRD blocksize 3",
            &[1, 18, 1, 2],
            vec![int("blocksize", 3), string("mode", "CRD")],
        ),
        depth_space(
            "SpaceToDepth",
            "SpaceToDepth blocksize 2",
            &[2, 2, 4, 6],
            vec![int("blocksize", 2)],
        ),
        // x.new_zeros(...) exports as CastLike(zeros, x): the mask built on it carries no
        // gradient (CastLike's second input only gives a type), so ScatterND needs no rule.
        case("CastLike", "CastLike target only gives the type", |g| {
            let x = g.param(&[2, 3]);
            let zeros = g.fconst(&[2, 3], &[0.0; 6]);
            let z = g.op("CastLike", &[zeros, x], vec![]);
            let idx = g.ints_shaped(&[2, 2], &[0, 1, 1, 2]);
            let ones = g.fconst(&[2], &[1.0, 1.0]);
            let mask = g.op("ScatterND", &[z, idx, ones], vec![]);
            vec![g.op("Mul", &[x, mask], vec![])]
        }),
    ];
    run_family("scans_and_rearrangements", cases);
}

/// `op(x, <int64 constant>)`, x uniform.
fn with_ints(
    op: &'static str,
    name: &str,
    x: &'static [i64],
    k: &'static [i64],
    attrs: Vec<Attribute>,
) -> Case {
    case(op, name, move |g| {
        let xv = g.param(x);
        let kv = g.ints(k);
        vec![g.op(op, &[xv, kv], attrs.clone())]
    })
}

fn with_attrs(op: &'static str, name: &str, x: &'static [i64], attrs: Vec<Attribute>) -> Case {
    case(op, name, move |g| {
        let xv = g.param(x);
        vec![g.op(op, &[xv], attrs.clone())]
    })
}

/// Pad (mode "constant") of x with constant pads (and axes, opset 18, when given).
fn pad(
    name: &str,
    x: &'static [i64],
    pads: &'static [i64],
    value: Option<f64>,
    axes: Option<&'static [i64]>,
) -> Case {
    case("Pad", name, move |g| {
        let xv = g.param(x);
        let mut ins = vec![Some(xv), Some(g.ints(pads))];
        if value.is_some() || axes.is_some() {
            ins.push(value.map(|v| g.fconst(&[], &[v])));
        }
        if let Some(a) = axes {
            ins.push(Some(g.ints(a)));
        }
        let attrs = vec![string("mode", "constant")];
        vec![g.node("Pad", &ins, attrs, 1)[0]]
    })
}

/// Slice of x [3,5] with constant starts/ends (and axes/steps when given).
fn slice(
    name: &str,
    starts: &'static [i64],
    ends: &'static [i64],
    axes: Option<&'static [i64]>,
    steps: Option<&'static [i64]>,
) -> Case {
    case("Slice", name, move |g| {
        let x = g.param(&[3, 5]);
        let mut ins = vec![Some(x), Some(g.ints(starts)), Some(g.ints(ends))];
        if axes.is_some() || steps.is_some() {
            ins.push(axes.map(|a| g.ints(a)));
        }
        if let Some(s) = steps {
            ins.push(Some(g.ints(s)));
        }
        vec![g.node("Slice", &ins, vec![], 1)[0]]
    })
}

#[test]
fn shape_ops() {
    let cases = vec![
        with_ints(
            "Reshape",
            "Reshape [2,3,4] -> [4,6]",
            &[2, 3, 4],
            &[4, 6],
            vec![],
        ),
        with_ints(
            "Reshape",
            "Reshape [2,3,4] -> [0,-1]",
            &[2, 3, 4],
            &[0, -1],
            vec![],
        ),
        with_attrs(
            "Flatten",
            "Flatten axis 2",
            &[2, 3, 4],
            vec![int("axis", 2)],
        ),
        with_attrs(
            "Flatten",
            "Flatten axis 0",
            &[2, 3, 2],
            vec![int("axis", 0)],
        ),
        with_attrs("Flatten", "Flatten default axis", &[2, 3, 2], vec![]),
        with_attrs(
            "Transpose",
            "Transpose perm [2,0,1]",
            &[2, 3, 4],
            vec![ints("perm", &[2, 0, 1])],
        ),
        with_attrs(
            "Transpose",
            "Transpose perm [1,2,0]",
            &[2, 3, 4],
            vec![ints("perm", &[1, 2, 0])],
        ),
        with_attrs("Transpose", "Transpose default perm", &[2, 3, 4], vec![]),
        with_ints(
            "Squeeze",
            "Squeeze axes [1,3]",
            &[2, 1, 3, 1],
            &[1, 3],
            vec![],
        ),
        with_ints("Squeeze", "Squeeze axes [-1]", &[2, 3, 1], &[-1], vec![]),
        with_attrs("Squeeze", "Squeeze all unit axes", &[2, 1, 3], vec![]),
        with_ints(
            "Unsqueeze",
            "Unsqueeze axes [0,2]",
            &[2, 3],
            &[0, 2],
            vec![],
        ),
        with_ints("Unsqueeze", "Unsqueeze axes [-1]", &[2, 3], &[-1], vec![]),
        with_ints(
            "Expand",
            "Expand [3,1] -> [2,3,4]",
            &[3, 1],
            &[2, 3, 4],
            vec![],
        ),
        with_ints("Expand", "Expand [4] -> [2,3,4]", &[4], &[2, 3, 4], vec![]),
        with_ints(
            "Expand",
            "Expand [2,1,4] by [3,1]",
            &[2, 1, 4],
            &[3, 1],
            vec![],
        ),
        with_ints(
            "Expand",
            "Expand [1,3] -> [1,3] (no-op)",
            &[1, 3],
            &[1, 3],
            vec![],
        ),
        case("Concat", "Concat axis 1, three inputs", |g| {
            let a = g.param(&[2, 1]);
            let b = g.param(&[2, 3]);
            let c = g.param(&[2, 2]);
            vec![g.op("Concat", &[a, b, c], vec![int("axis", 1)])]
        }),
        case("Concat", "Concat axis -1 with a constant", |g| {
            let a = g.param(&[2, 2, 1]);
            let k = g.fconst(&[2, 2, 2], &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]);
            let b = g.param(&[2, 2, 2]);
            vec![g.op("Concat", &[a, k, b], vec![int("axis", -1)])]
        }),
        case("Concat", "Concat x with x, axis 0", |g| {
            let a = g.param(&[2, 3]);
            vec![g.op("Concat", &[a, a], vec![int("axis", 0)])]
        }),
        case("Split", "Split axis 1 split [2,4]", |g| {
            let x = g.param(&[2, 6]);
            let s = g.ints(&[2, 4]);
            g.node("Split", &[Some(x), Some(s)], vec![int("axis", 1)], 2)
        }),
        case("Split", "Split num_outputs 3 (opset 18)", |g| {
            let x = g.param(&[3, 6]);
            g.node(
                "Split",
                &[Some(x)],
                vec![int("axis", 1), int("num_outputs", 3)],
                3,
            )
        }),
        case("Split", "Split, only the middle output used", |g| {
            let x = g.param(&[3, 4]);
            let s = g.ints(&[1, 1, 2]);
            let outs = g.node("Split", &[Some(x), Some(s)], vec![int("axis", 1)], 3);
            vec![outs[1]]
        }),
        case("Split", "Split equal halves (opset 13)", |g| {
            let x = g.param(&[4, 3]);
            g.node("Split", &[Some(x)], vec![], 2)
        })
        .opset(13),
        slice(
            "Slice starts [1,0] ends [3,4] axes [0,1]",
            &[1, 0],
            &[3, 4],
            Some(&[0, 1]),
            None,
        ),
        slice(
            "Slice negative start/end on axis 1",
            &[-3],
            &[-1],
            Some(&[1]),
            None,
        ),
        slice(
            "Slice ends past the end, no axes",
            &[1, 2],
            &[i64::MAX, 100],
            None,
            None,
        ),
        slice(
            "Slice negative axis, steps 1",
            &[1],
            &[4],
            Some(&[-1]),
            Some(&[1]),
        ),
        slice("Slice step 2", &[0], &[5], Some(&[1]), Some(&[2])),
        slice("Slice step 2 from 1", &[1], &[5], Some(&[1]), Some(&[2])),
        slice(
            "Slice step 3, end not aligned",
            &[0],
            &[4],
            Some(&[1]),
            Some(&[3]),
        ),
        slice("Slice step -1", &[-1], &[i64::MIN], Some(&[0]), Some(&[-1])),
        slice("Slice step -2", &[4], &[0], Some(&[1]), Some(&[-2])),
        slice(
            "Slice steps 2 and -1, two axes",
            &[0, 3],
            &[3, 0],
            Some(&[0, 1]),
            Some(&[2, -1]),
        ),
        slice("Slice empty", &[2], &[2], Some(&[1]), None),
        with_ints("Tile", "Tile [2,3] x [2,2]", &[2, 3], &[2, 2], vec![]),
        with_ints(
            "Tile",
            "Tile [3,1,2] x [1,3,2]",
            &[3, 1, 2],
            &[1, 3, 2],
            vec![],
        ),
        pad("Pad 2-D", &[3, 4], &[1, 0, 2, 1], None, None),
        pad(
            "Pad 4-D spatial, value 0.5",
            &[1, 2, 3, 3],
            &[0, 0, 1, 2, 0, 0, 2, 1],
            Some(0.5),
            None,
        ),
        pad("Pad mixed negative", &[3, 5], &[-1, 2, 1, -2], None, None),
        pad(
            "Pad axes (opset 18), negative axis",
            &[2, 3, 4],
            &[1, -1, 2, 0],
            None,
            Some(&[-1, 1]),
        ),
        pad("Pad opset 11", &[2, 3], &[0, 1, 1, 0], None, None).opset(11),
        case("Identity", "Identity then Mul", |g| {
            let x = g.param(&[2, 3]);
            let y = g.op("Identity", &[x], vec![]);
            vec![g.op("Mul", &[x, y], vec![])]
        }),
    ];
    run_family("shape_ops", cases);
}

fn gather(
    name: &str,
    data: &'static [i64],
    idx_dims: &'static [i64],
    idx: &'static [i64],
    axis: i64,
) -> Case {
    case("Gather", name, move |g| {
        let d = g.param(data);
        let i = g.ints_shaped(idx_dims, idx);
        vec![g.op("Gather", &[d, i], vec![int("axis", axis)])]
    })
}

fn gather_nd(
    name: &str,
    data: &'static [i64],
    idx_dims: &'static [i64],
    idx: &'static [i64],
    batch_dims: i64,
) -> Case {
    case("GatherND", name, move |g| {
        let d = g.param(data);
        let i = g.ints_shaped(idx_dims, idx);
        let attrs = vec![int("batch_dims", batch_dims)];
        vec![g.op("GatherND", &[d, i], attrs)]
    })
}

fn gather_elements(
    name: &str,
    data: &'static [i64],
    idx_dims: &'static [i64],
    idx: &'static [i64],
    axis: i64,
) -> Case {
    case("GatherElements", name, move |g| {
        let d = g.param(data);
        let i = g.ints_shaped(idx_dims, idx);
        vec![g.op("GatherElements", &[d, i], vec![int("axis", axis)])]
    })
}

#[test]
fn indexing() {
    let cases = vec![
        gather(
            "Gather embedding, repeated indices",
            &[5, 3],
            &[2, 3],
            &[0, 2, 2, 4, 0, 2],
            0,
        ),
        gather("Gather axis 1, repeated", &[2, 4, 3], &[3], &[1, 3, 1], 1),
        gather("Gather rank-1 data", &[5], &[2, 2], &[4, 1, 1, -2], 0),
        gather("Gather negative indices", &[4, 3], &[4], &[-1, 0, -1, 2], 0),
        gather(
            "Gather axis -1, negative, 2-D indices",
            &[2, 5],
            &[2, 2],
            &[-1, 0, 3, -5],
            -1,
        ),
        gather("Gather scalar index axis 1", &[2, 4, 3], &[], &[2], 1),
        gather(
            "Gather axis 2, 2-D indices",
            &[2, 2, 4],
            &[2, 2],
            &[3, 0, 0, 3],
            2,
        ),
        case("Gather", "Gather int32 indices", |g| {
            let d = g.param(&[4, 3]);
            let bytes = [3i32, 1, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
            let i = g.konst(Tensor::raw(
                onnx_ac_passes::ir::DType::Int32,
                vec![3],
                bytes,
            ));
            vec![g.op("Gather", &[d, i], vec![])]
        }),
        gather_nd(
            "GatherND k=1, repeated and negative",
            &[4, 3],
            &[5, 1],
            &[0, 2, 2, -1, 0],
            0,
        ),
        gather_nd(
            "GatherND k=2, rows of 3-D data",
            &[3, 4, 2],
            &[2, 3, 2],
            &[0, 1, 2, -1, 0, 1, -3, 3, 1, 0, 0, 1],
            0,
        ),
        gather_nd(
            "GatherND full index, repeated",
            &[3, 4],
            &[2, 2, 2],
            &[1, 2, 1, 2, -1, -4, 0, 3],
            0,
        ),
        gather_nd(
            "GatherND batch_dims 1",
            &[2, 3, 4],
            &[2, 2, 1],
            &[0, -1, 2, 2],
            1,
        ),
        gather_nd(
            "GatherND batch_dims 1, full index",
            &[2, 3, 4],
            &[2, 3, 2],
            &[0, 1, 2, 3, 0, 1, -1, 0, 1, 1, 1, 1],
            1,
        ),
        gather_elements(
            "GatherElements axis 1, repeated",
            &[3, 4],
            &[3, 2],
            &[0, 0, 3, 1, 2, 2],
            1,
        ),
        gather_elements(
            "GatherElements axis 0, negative",
            &[3, 4],
            &[2, 4],
            &[-1, 0, 2, -3, 0, 0, 1, 2],
            0,
        ),
        gather_elements(
            "GatherElements axis -1, 3-D",
            &[2, 2, 3],
            &[2, 2, 2],
            &[0, 2, 1, 1, 2, 2, 0, 0],
            -1,
        ),
        case(
            "ScatterElements",
            "ScatterElements data and updates, axis 0",
            |g| {
                let x = g.param(&[3, 4]);
                let idx = g.ints_shaped(&[2, 3], &[1, 0, 2, 2, 1, 0]);
                let u = g.param(&[2, 3]);
                vec![g.op("ScatterElements", &[x, idx, u], vec![int("axis", 0)])]
            },
        ),
        case(
            "ScatterElements",
            "ScatterElements axis -1, negative index",
            |g| {
                let x = g.param(&[2, 4]);
                let idx = g.ints_shaped(&[2, 2], &[3, -4, -1, 1]);
                let u = g.param(&[2, 2]);
                vec![g.op("ScatterElements", &[x, idx, u], vec![int("axis", -1)])]
            },
        ),
        case("ScatterElements", "ScatterElements add, repeated", |g| {
            let x = g.param(&[3, 2]);
            let idx = g.ints_shaped(&[4, 2], &[0, 2, 0, 2, 1, 0, 0, 1]);
            let u = g.param(&[4, 2]);
            let attrs = vec![int("axis", 0), string("reduction", "add")];
            vec![g.op("ScatterElements", &[x, idx, u], attrs)]
        }),
        case(
            "ScatterElements",
            "ScatterElements updates only (MoE)",
            |g| {
                let x = g.fconst(&[3, 2], &[0.0; 6]);
                let idx = g.ints_shaped(&[2, 2], &[2, 2, 0, 0]);
                let u = g.param(&[2, 2]);
                vec![g.op("ScatterElements", &[x, idx, u], vec![int("axis", 0)])]
            },
        ),
    ];
    run_family("indexing", cases);
}

fn conv(
    name: &str,
    x: &'static [i64],
    w: &'static [i64],
    bias: bool,
    attrs: Vec<Attribute>,
) -> Case {
    case("Conv", name, move |g| {
        let xv = g.param(x);
        let wv = g.param(w);
        let mut ins = vec![Some(xv), Some(wv)];
        if bias {
            ins.push(Some(g.param(&[w[0]])));
        }
        vec![g.node("Conv", &ins, attrs.clone(), 1)[0]]
    })
    .f32()
}

fn max_pool(name: &str, x: &'static [i64], attrs: Vec<Attribute>, with_indices: bool) -> Case {
    case("MaxPool", name, move |g| {
        let n = x.iter().product::<i64>() as usize;
        let vals = g.rng.distinct(n, 0.1);
        let xv = g.param_vals(x, vals);
        let n_out = if with_indices { 2 } else { 1 };
        vec![g.node("MaxPool", &[Some(xv)], attrs.clone(), n_out)[0]]
    })
}

fn pool(op: &'static str, name: &str, x: &'static [i64], attrs: Vec<Attribute>) -> Case {
    case(op, name, move |g| {
        let xv = g.param(x);
        vec![g.op(op, &[xv], attrs.clone())]
    })
    .f32()
}

fn conv_transpose(
    name: &str,
    x: &'static [i64],
    w: &'static [i64],
    bias: bool,
    attrs: Vec<Attribute>,
) -> Case {
    case("ConvTranspose", name, move |g| {
        let xv = g.param(x);
        let wv = g.param(w);
        let mut ins = vec![Some(xv), Some(wv)];
        if bias {
            let group = attrs
                .iter()
                .find_map(|a| match (a.name.as_str(), &a.value) {
                    ("group", AttrValue::Int(v)) => Some(*v),
                    _ => None,
                })
                .unwrap_or(1);
            ins.push(Some(g.param(&[w[1] * group])));
        }
        vec![g.node("ConvTranspose", &ins, attrs.clone(), 1)[0]]
    })
    .f32()
}

#[test]
fn conv_and_pools() {
    let mut cases = vec![
        conv(
            "Conv 2x2 kernel, bias",
            &[1, 2, 4, 4],
            &[3, 2, 2, 2],
            true,
            vec![],
        ),
        conv(
            "Conv batch 2, stride 2, pads 1",
            &[2, 1, 5, 5],
            &[2, 1, 3, 3],
            true,
            vec![ints("strides", &[2, 2]), ints("pads", &[1, 1, 1, 1])],
        ),
        conv(
            "Conv dilations 2, pads 1",
            &[1, 1, 5, 5],
            &[2, 1, 2, 2],
            false,
            vec![ints("dilations", &[2, 2]), ints("pads", &[1, 1, 1, 1])],
        ),
        conv(
            "Conv group 2",
            &[1, 4, 3, 3],
            &[4, 2, 2, 2],
            true,
            vec![int("group", 2)],
        ),
        conv(
            "Conv group 2, batch 2",
            &[2, 2, 3, 3],
            &[2, 1, 2, 2],
            false,
            vec![int("group", 2)],
        ),
        conv(
            "Conv depthwise",
            &[1, 3, 3, 3],
            &[3, 1, 2, 2],
            true,
            vec![int("group", 3)],
        ),
        conv(
            "Conv auto_pad SAME_UPPER stride 2",
            &[1, 1, 6, 6],
            &[2, 1, 3, 3],
            false,
            vec![string("auto_pad", "SAME_UPPER"), ints("strides", &[2, 2])],
        ),
        conv(
            "Conv stride 2 with a leftover row",
            &[1, 1, 6, 6],
            &[1, 1, 3, 3],
            false,
            vec![ints("strides", &[2, 2])],
        ),
        conv(
            "Conv asymmetric pads",
            &[1, 2, 3, 3],
            &[2, 2, 2, 2],
            false,
            vec![ints("pads", &[0, 1, 1, 0])],
        ),
        conv(
            "Conv 1-D stride 2 pads 1",
            &[2, 2, 6],
            &[3, 2, 3],
            true,
            vec![ints("strides", &[2]), ints("pads", &[1, 1])],
        ),
        conv(
            "Conv stride 2 dilation 2 group 2",
            &[1, 2, 6, 6],
            &[2, 1, 2, 2],
            false,
            vec![
                ints("strides", &[2, 2]),
                ints("dilations", &[2, 2]),
                int("group", 2),
            ],
        ),
        max_pool(
            "MaxPool 2x2 stride 2",
            &[1, 2, 4, 4],
            vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
            false,
        ),
        max_pool(
            "MaxPool 3x3 stride 1 pads 1 (overlapping)",
            &[1, 1, 4, 4],
            vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])],
            false,
        ),
        max_pool(
            "MaxPool with Indices output, batch 2",
            &[2, 2, 3, 3],
            vec![ints("kernel_shape", &[2, 2])],
            true,
        ),
        max_pool(
            "MaxPool 1-D dilation 2",
            &[2, 2, 6],
            vec![ints("kernel_shape", &[2]), ints("dilations", &[2])],
            false,
        ),
        max_pool(
            "MaxPool auto_pad SAME_UPPER stride 2",
            &[1, 2, 5, 5],
            vec![
                ints("kernel_shape", &[2, 2]),
                ints("strides", &[2, 2]),
                string("auto_pad", "SAME_UPPER"),
            ],
            false,
        ),
        pool(
            "AveragePool",
            "AveragePool 3x3 pads 1 count_include_pad 0",
            &[1, 2, 4, 4],
            vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])],
        ),
        pool(
            "AveragePool",
            "AveragePool 3x3 pads 1 count_include_pad 1",
            &[1, 2, 4, 4],
            vec![
                ints("kernel_shape", &[3, 3]),
                ints("pads", &[1, 1, 1, 1]),
                int("count_include_pad", 1),
            ],
        ),
        pool(
            "AveragePool",
            "AveragePool 2x2 stride 2, batch 2",
            &[2, 1, 4, 4],
            vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
        ),
        pool(
            "AveragePool",
            "AveragePool auto_pad SAME_UPPER stride 2",
            &[1, 1, 5, 5],
            vec![
                ints("kernel_shape", &[3, 3]),
                ints("strides", &[2, 2]),
                string("auto_pad", "SAME_UPPER"),
            ],
        ),
        pool(
            "AveragePool",
            "AveragePool asymmetric pads, stride 2",
            &[1, 1, 5, 5],
            vec![
                ints("kernel_shape", &[2, 2]),
                ints("strides", &[2, 2]),
                ints("pads", &[1, 0, 0, 1]),
            ],
        ),
        pool(
            "AveragePool",
            "AveragePool 1-D pads 1",
            &[2, 2, 5],
            vec![ints("kernel_shape", &[3]), ints("pads", &[1, 1])],
        ),
        pool(
            "AveragePool",
            "AveragePool dilations 2 pads 1 (opset 19)",
            &[1, 1, 5, 5],
            vec![
                ints("kernel_shape", &[2, 2]),
                ints("dilations", &[2, 2]),
                ints("pads", &[1, 1, 1, 1]),
            ],
        )
        .opset(19),
        max_pool(
            "MaxPool ceil_mode 1",
            &[1, 1, 5, 5],
            vec![
                ints("kernel_shape", &[2, 2]),
                ints("strides", &[2, 2]),
                int("ceil_mode", 1),
            ],
            false,
        ),
        conv(
            "Conv auto_pad SAME_LOWER",
            &[1, 1, 4, 4],
            &[2, 1, 2, 2],
            true,
            vec![string("auto_pad", "SAME_LOWER")],
        ),
        case("Conv", "Conv weight only (constant input)", |g| {
            let x = g.fconst_with(&[1, 2, 4, 4], |r| r.uniform(-1.0, 1.0));
            let w = g.param(&[2, 2, 2, 2]);
            vec![g.op("Conv", &[x, w], vec![ints("strides", &[2, 2])])]
        })
        .f32(),
        case("Conv", "Conv input only (constant weight)", |g| {
            let x = g.param(&[1, 2, 4, 4]);
            let w = g.fconst_with(&[2, 2, 3, 3], |r| r.uniform(-1.0, 1.0));
            vec![g.op("Conv", &[x, w], vec![ints("pads", &[1, 1, 1, 1])])]
        })
        .f32(),
        pool(
            "GlobalAveragePool",
            "GlobalAveragePool 2-D",
            &[2, 3, 2, 2],
            vec![],
        ),
        pool(
            "GlobalAveragePool",
            "GlobalAveragePool 1-D",
            &[2, 2, 3],
            vec![],
        ),
    ];
    cases.extend([
        conv_transpose(
            "ConvTranspose 2x2 stride 2, bias (U-Net up)",
            &[1, 4, 3, 3],
            &[4, 2, 2, 2],
            true,
            vec![ints("strides", &[2, 2])],
        ),
        conv_transpose(
            "ConvTranspose stride 2 pads 1 output_padding 1, batch 2",
            &[2, 2, 3, 3],
            &[2, 3, 3, 3],
            true,
            vec![
                ints("strides", &[2, 2]),
                ints("pads", &[1, 1, 1, 1]),
                ints("output_padding", &[1, 1]),
            ],
        ),
        conv_transpose(
            "ConvTranspose group 2 dilations 2",
            &[1, 4, 3, 3],
            &[4, 1, 2, 2],
            true,
            vec![int("group", 2), ints("dilations", &[2, 2])],
        ),
        conv_transpose(
            "ConvTranspose 1-D stride 3 asymmetric pads output_padding 2",
            &[2, 2, 4],
            &[2, 2, 3],
            true,
            vec![
                ints("strides", &[3]),
                ints("pads", &[1, 0]),
                ints("output_padding", &[2]),
            ],
        ),
        conv_transpose(
            "ConvTranspose stride 2 with output_shape",
            &[1, 2, 3, 3],
            &[2, 2, 3, 3],
            false,
            vec![
                ints("strides", &[2, 2]),
                ints("pads", &[1, 1, 1, 1]),
                ints("output_padding", &[1, 0]),
                ints("output_shape", &[6, 5]),
            ],
        ),
        conv_transpose(
            "ConvTranspose auto_pad VALID depthwise",
            &[1, 3, 3, 3],
            &[3, 1, 2, 2],
            false,
            vec![string("auto_pad", "VALID"), int("group", 3)],
        ),
        case(
            "ConvTranspose",
            "ConvTranspose weight only (constant input)",
            |g| {
                let x = g.fconst_with(&[1, 2, 3, 3], |r| r.uniform(-1.0, 1.0));
                let w = g.param(&[2, 2, 3, 3]);
                vec![g.op("ConvTranspose", &[x, w], vec![ints("strides", &[2, 2])])]
            },
        )
        .f32(),
        case(
            "ConvTranspose",
            "ConvTranspose input only (constant weight)",
            |g| {
                let x = g.param(&[1, 2, 3, 3]);
                let w = g.fconst_with(&[2, 2, 2, 2], |r| r.uniform(-1.0, 1.0));
                let attrs = vec![ints("strides", &[2, 2]), ints("pads", &[0, 1, 1, 0])];
                vec![g.op("ConvTranspose", &[x, w], attrs)]
            },
        )
        .f32(),
    ]);
    run_family("conv_and_pools", cases);
}

/// `Resize(x, roi?, scales)` (opset ≥ 11; `Resize(x, scales)` at opset 10).
fn resize_scales(
    name: &str,
    opset: i64,
    x: &'static [i64],
    scales: &'static [f32],
    attrs: Vec<Attribute>,
) -> Case {
    case("Resize", name, move |g| {
        let xv = g.param(x);
        let s = g.konst(Tensor::from_f32(vec![scales.len() as i64], scales));
        let ins = if opset < 11 {
            vec![Some(xv), Some(s)]
        } else {
            vec![Some(xv), None, Some(s)]
        };
        vec![g.node("Resize", &ins, attrs.clone(), 1)[0]]
    })
    .opset(opset)
    .f32()
}

/// `Resize(x, "", "", sizes)`.
fn resize_sizes(
    name: &str,
    x: &'static [i64],
    sizes: &'static [i64],
    attrs: Vec<Attribute>,
) -> Case {
    case("Resize", name, move |g| {
        let xv = g.param(x);
        let s = g.ints(sizes);
        vec![g.node("Resize", &[Some(xv), None, None, Some(s)], attrs.clone(), 1)[0]]
    })
    .f32()
}

#[test]
fn resize() {
    let nearest = |ctm: &str, nm: &str| {
        vec![
            string("mode", "nearest"),
            string("coordinate_transformation_mode", ctm),
            string("nearest_mode", nm),
        ]
    };
    let linear = |ctm: &str| {
        vec![
            string("mode", "linear"),
            string("coordinate_transformation_mode", ctm),
        ]
    };
    let cases = vec![
        resize_scales(
            "Resize nearest scale 2 (torch: asymmetric, floor)",
            18,
            &[1, 2, 3, 3],
            &[1.0, 1.0, 2.0, 2.0],
            nearest("asymmetric", "floor"),
        ),
        resize_scales(
            "Resize nearest scale 2 (defaults)",
            18,
            &[2, 1, 3, 2],
            &[1.0, 1.0, 2.0, 2.0],
            vec![],
        ),
        resize_scales(
            "Resize nearest scale 0.5 round_prefer_ceil",
            18,
            &[1, 1, 4, 6],
            &[1.0, 1.0, 0.5, 0.5],
            nearest("half_pixel", "round_prefer_ceil"),
        ),
        resize_scales(
            "Resize bilinear align_corners=False (pytorch_half_pixel) scale 2",
            13,
            &[1, 2, 3, 4],
            &[1.0, 1.0, 2.0, 2.0],
            linear("pytorch_half_pixel"),
        ),
        resize_sizes(
            "Resize bilinear align_corners=True, sizes",
            &[1, 2, 3, 4],
            &[1, 2, 5, 7],
            linear("align_corners"),
        ),
        // F.interpolate(x, scale_factor=2, mode="bilinear") as torch.onnx exports it
        // (TorchScript, opset 17: roi "", scales; the dynamo exporter writes the same
        // attributes at opset 18).
        resize_scales(
            "Resize torch bilinear scale_factor=2 (ts17 form)",
            17,
            &[2, 2, 3, 3],
            &[1.0, 1.0, 2.0, 2.0],
            vec![
                string("coordinate_transformation_mode", "half_pixel"),
                float("cubic_coeff_a", -0.75),
                string("mode", "linear"),
                string("nearest_mode", "floor"),
            ],
        ),
        resize_scales(
            "Resize torch bilinear scale_factor=2 (dyn18 form)",
            18,
            &[1, 2, 3, 3],
            &[1.0, 1.0, 2.0, 2.0],
            vec![
                string("keep_aspect_ratio_policy", "stretch"),
                int("antialias", 0),
                float("extrapolation_value", 0.0),
                int("exclude_outside", 0),
                string("nearest_mode", "floor"),
                string("coordinate_transformation_mode", "half_pixel"),
                string("mode", "linear"),
            ],
        ),
        resize_scales(
            "Resize linear scale 1.5 on H only",
            18,
            &[1, 2, 4, 3],
            &[1.0, 1.0, 1.5, 1.0],
            linear("half_pixel"),
        ),
        resize_scales(
            "Resize linear 1-D (3-D input) scale 2",
            18,
            &[2, 2, 4],
            &[1.0, 1.0, 2.0],
            linear("half_pixel"),
        ),
        resize_scales(
            "Resize nearest 3-D (5-D input) scale 2",
            18,
            &[1, 1, 2, 2, 3],
            &[1.0, 1.0, 2.0, 2.0, 2.0],
            nearest("asymmetric", "floor"),
        ),
        resize_scales(
            "Resize cubic scale 2",
            18,
            &[1, 1, 4, 4],
            &[1.0, 1.0, 2.0, 2.0],
            vec![string("mode", "cubic")],
        ),
        resize_scales(
            "Resize linear antialias scale 0.5",
            18,
            &[1, 1, 6, 6],
            &[1.0, 1.0, 0.5, 0.5],
            vec![string("mode", "linear"), int("antialias", 1)],
        ),
        resize_scales(
            "Resize opset 10 nearest scale 2",
            10,
            &[1, 1, 2, 3],
            &[1.0, 1.0, 2.0, 2.0],
            vec![string("mode", "nearest")],
        ),
        case("Resize", "Resize axes [2, 3] scales (opset 18)", |g| {
            let xv = g.param(&[1, 2, 3, 3]);
            let s = g.konst(Tensor::from_f32(vec![2], &[2.0, 1.5]));
            let attrs = vec![string("mode", "linear"), ints("axes", &[2, 3])];
            vec![g.node("Resize", &[Some(xv), None, Some(s)], attrs, 1)[0]]
        })
        .f32(),
    ];
    run_family("resize", cases);
}

/// An `LSTM` or `GRU` (lowered to standard ops by shape inference) over `x` [3, 2, 4]
/// (layout 1: [2, 3, 4]) with hidden size 5; W, R, B and the initial states are trained.
/// `read` picks the outputs (Y, Y_h[, Y_c]) that feed the loss.
#[allow(clippy::too_many_arguments)]
fn rnn(
    op: &'static str,
    name: &str,
    dirs: i64,
    attrs: Vec<Attribute>,
    bias: bool,
    init_h: bool,
    init_c: bool,
    read: &'static [usize],
) -> Case {
    case(op, name, move |g| {
        let gates = if op == "LSTM" { 4 } else { 3 };
        let batch_major = attrs.iter().any(|a| a.name == "layout");
        let (seq, batch, input, hidden) = (3, 2, 4, 5);
        let xd = if batch_major {
            [batch, seq, input]
        } else {
            [seq, batch, input]
        };
        let x = g.param(&xd);
        let w = g.param_with(&[dirs, gates * hidden, input], |r| r.uniform(-0.8, 0.8));
        let r = g.param_with(&[dirs, gates * hidden, hidden], |r| r.uniform(-0.8, 0.8));
        let b = bias.then(|| g.param_with(&[dirs, 2 * gates * hidden], |r| r.uniform(-0.5, 0.5)));
        let state = |g: &mut Gb| {
            let dims = if batch_major {
                [batch, dirs, hidden]
            } else {
                [dirs, batch, hidden]
            };
            g.param(&dims)
        };
        let h0 = init_h.then(|| state(g));
        let c0 = init_c.then(|| state(g));
        let mut ins = vec![Some(x), Some(w), Some(r), b, None, h0];
        if op == "LSTM" {
            ins.push(c0);
        }
        let mut attrs = attrs.clone();
        attrs.push(int("hidden_size", hidden));
        let outs = g.node(op, &ins, attrs, if op == "LSTM" { 3 } else { 2 });
        read.iter().map(|&i| outs[i]).collect()
    })
}

#[test]
fn recurrent() {
    let cases = vec![
        rnn(
            "LSTM",
            "LSTM forward",
            1,
            vec![],
            true,
            false,
            false,
            &[0, 1, 2],
        ),
        rnn(
            "LSTM",
            "LSTM bidirectional, initial_h and initial_c",
            2,
            vec![string("direction", "bidirectional")],
            true,
            true,
            true,
            &[0, 1, 2],
        ),
        rnn(
            "LSTM",
            "LSTM reverse, layout 1, no bias, only Y read",
            1,
            vec![string("direction", "reverse"), int("layout", 1)],
            false,
            true,
            false,
            &[0],
        ),
        rnn(
            "LSTM",
            "LSTM forward opset 13, only Y_c read",
            1,
            vec![],
            true,
            false,
            true,
            &[2],
        )
        .opset(13),
        rnn(
            "GRU",
            "GRU forward, linear_before_reset 1",
            1,
            vec![int("linear_before_reset", 1)],
            true,
            false,
            false,
            &[0, 1],
        ),
        rnn(
            "GRU",
            "GRU reverse, linear_before_reset 1, initial_h",
            1,
            vec![
                int("linear_before_reset", 1),
                string("direction", "reverse"),
            ],
            true,
            true,
            false,
            &[0, 1],
        ),
        rnn(
            "GRU",
            "GRU bidirectional, linear_before_reset 0, initial_h",
            2,
            vec![string("direction", "bidirectional")],
            true,
            true,
            false,
            &[0, 1],
        ),
        rnn(
            "GRU",
            "GRU forward, linear_before_reset 0, no bias, layout 1",
            1,
            vec![int("layout", 1)],
            false,
            false,
            false,
            &[0, 1],
        ),
    ];
    run_family("recurrent", cases);
}
