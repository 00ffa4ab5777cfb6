//! The lowering of `DepthToSpace` and `SpaceToDepth` into Reshape → Transpose → Reshape
//! (passes/src/lower.rs): the lowered forward must give ONNX Runtime's own kernels' output
//! exactly (it only moves elements), and forms it cannot lower stay as the node.

mod common;

use common::run_on_x;
use onnx_ac::runtime::init;
use onnx_ac_passes::infer::infer_shapes;
use onnx_ac_passes::ir::{known_shape, Attribute, DType, Dim, Graph, Model, Node};

/// `op(x)` alone, x a float32 graph input of `dims` (`None` dims are symbolic).
fn model(op: &str, dims: &[Option<i64>], out: &[i64], attrs: Vec<Attribute>) -> Model {
    let mut g = Graph {
        name: "d2s".into(),
        ..Graph::default()
    };
    let x = g.new_value("x");
    g.value_mut(x).dtype = Some(DType::Float);
    g.value_mut(x).shape = Some(
        dims.iter()
            .enumerate()
            .map(|(k, d)| match d {
                Some(d) => Dim::Known(*d),
                None => Dim::Sym(format!("d{k}")),
            })
            .collect(),
    );
    g.inputs.push(x);
    let y = g.new_value("y");
    g.value_mut(y).dtype = Some(DType::Float);
    g.value_mut(y).shape = Some(known_shape(out));
    g.outputs.push(y);
    let mut n = Node::new(op, vec![Some(x)], vec![Some(y)]);
    n.name = "d2s".into();
    n.attrs = attrs;
    g.add_node(n);
    Model {
        ir_version: 10,
        opset_imports: vec![(String::new(), 18)],
        producer_name: "depth_space_lowering".into(),
        graph: g,
        ..Model::default()
    }
}

fn ops(m: &Model) -> Vec<String> {
    m.graph.nodes.iter().map(|n| n.op_type.clone()).collect()
}

fn check(op: &str, dims: [i64; 4], out: [i64; 4], attrs: Vec<Attribute>, batch_known: bool) {
    init(None).expect("this test needs ONNX Runtime");
    let sym: Vec<Option<i64>> = dims
        .iter()
        .enumerate()
        .map(|(k, &d)| (k > 0 || batch_known).then_some(d))
        .collect();
    let orig = model(op, &sym, &out, attrs.clone());
    let mut lowered = model(op, &sym, &out, attrs.clone());
    infer_shapes(&mut lowered.graph, 18).expect("infer");
    onnx_ac_passes::ir::verify(&lowered.graph).expect("lowered graph is well formed");
    assert_eq!(ops(&lowered), ["Reshape", "Transpose", "Reshape"], "{op}");
    let y = lowered.graph.outputs[0];
    let want_shape: Vec<Dim> = out
        .iter()
        .enumerate()
        .map(|(k, &d)| {
            if k == 0 && !batch_known {
                Dim::Unknown
            } else {
                Dim::Known(d)
            }
        })
        .collect();
    if batch_known {
        assert_eq!(lowered.graph.value(y).shape, Some(want_shape), "{op}");
    }
    let n: i64 = dims.iter().product();
    let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let want = run_on_x(&orig, &dir.path().join("orig.onnx"), &dims, &x).remove(0);
    let got = run_on_x(&lowered, &dir.path().join("lowered.onnx"), &dims, &x).remove(0);
    assert_eq!(
        want, got,
        "{op} {attrs:?}: lowered output differs from ONNX Runtime's"
    );
}

fn blocksize(b: i64) -> Attribute {
    Attribute::int("blocksize", b)
}

#[test]
fn depth_to_space_dcr_matches_onnx_runtime() {
    check(
        "DepthToSpace",
        [2, 8, 2, 3],
        [2, 2, 4, 6],
        vec![blocksize(2)],
        true,
    );
    let dcr = Attribute::string("mode", "DCR");
    check(
        "DepthToSpace",
        [1, 18, 2, 2],
        [1, 2, 6, 6],
        vec![blocksize(3), dcr],
        true,
    );
}

#[test]
fn depth_to_space_crd_matches_onnx_runtime() {
    let crd = || Attribute::string("mode", "CRD");
    check(
        "DepthToSpace",
        [2, 12, 3, 2],
        [2, 3, 6, 4],
        vec![blocksize(2), crd()],
        true,
    );
    // A symbolic batch is kept as -1 in the Reshapes.
    check(
        "DepthToSpace",
        [3, 8, 2, 2],
        [3, 2, 4, 4],
        vec![blocksize(2), crd()],
        false,
    );
}

#[test]
fn space_to_depth_matches_onnx_runtime() {
    check(
        "SpaceToDepth",
        [2, 3, 4, 6],
        [2, 12, 2, 3],
        vec![blocksize(2)],
        true,
    );
    check(
        "SpaceToDepth",
        [1, 2, 6, 3],
        [1, 18, 2, 1],
        vec![blocksize(3)],
        false,
    );
}

/// Unknown C/H/W, a block size that does not divide, or an unknown mode: the node stays.
#[test]
fn unsupported_forms_are_left_alone() {
    let cases = [
        (
            "DepthToSpace",
            vec![Some(1), None, Some(2), Some(2)],
            vec![blocksize(2)],
        ),
        (
            "DepthToSpace",
            vec![Some(1), Some(6), Some(2), Some(2)],
            vec![blocksize(2)],
        ),
        (
            "SpaceToDepth",
            vec![Some(1), Some(2), Some(3), Some(4)],
            vec![blocksize(2)],
        ),
        (
            "DepthToSpace",
            vec![Some(1), Some(8), Some(2), Some(2)],
            vec![blocksize(2), Attribute::string("mode", "XYZ")],
        ),
    ];
    for (op, dims, attrs) in cases {
        let mut m = model(op, &dims, &[1, 1, 1, 1], attrs);
        let _ = infer_shapes(&mut m.graph, 18);
        assert_eq!(ops(&m), [op], "{dims:?}");
    }
}
