//! Elementwise unary, binary and the rest of the per-element ops.

use super::*;

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
