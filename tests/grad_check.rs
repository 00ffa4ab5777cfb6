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

#[path = "grad_check/conv.rs"]
mod conv;
#[path = "grad_check/elementwise.rs"]
mod elementwise;
#[path = "grad_check/linalg_norm.rs"]
mod linalg_norm;
#[path = "grad_check/resize_rnn.rs"]
mod resize_rnn;
#[path = "grad_check/shape_index.rs"]
mod shape_index;
