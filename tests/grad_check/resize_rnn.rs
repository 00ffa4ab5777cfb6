//! Resize and the recurrent layers (lowered).

use super::*;

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
