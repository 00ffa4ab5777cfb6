//! Convolutions and pools.

use super::*;

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
