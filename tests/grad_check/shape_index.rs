//! Shape ops (reshape, pad, slice, ...) and indexing (gather, scatter).

use super::*;

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
