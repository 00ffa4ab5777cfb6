//! MatMul, Gemm, softmax, normalizations, reductions, scans and depth/space moves.

use super::*;

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
