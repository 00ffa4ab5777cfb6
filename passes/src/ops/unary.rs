//! Unary math and activations (Abs … ThresholdedRelu, Clip, Identity, Not, IsNaN, IsInf):
//! the output has input 0's shape; a few fold on constants. Gradient rules for the
//! differentiable ones; cost: one to twenty operations per element by transcendental weight.
//! Spec: https://onnx.ai/onnx/operators/ (per op `onnx__<Op>.html`, e.g.
//! https://onnx.ai/onnx/operators/onnx__Relu.html), opsets 13–24.
//!
//! Gradients saved: Neg and Identity nothing; Relu, Sigmoid, Tanh, Tan, Exp, Sqrt,
//! Reciprocal the output; Erf, Gelu, LeakyRelu, Log, Abs, HardSigmoid, HardSwish, Softplus,
//! Clip, Sin, Cos the input.

use super::ctx::{same, OpCtx, OutInfo, RuleResult};
use super::fold;
use crate::autodiff::{dy0, GradCtx, GradResult, Grads};
use crate::ir::{DType, ValueId};

// Shape and type rules.

/// Output = input 0's type and shape; folds a few unary ops on constants.
pub fn unary(c: &OpCtx) -> RuleResult {
    let dt = c.dtype(0)?;
    if let Some(t) = c.constant(0) {
        let f: Option<fn(f64) -> f64> = match c.node.op_type.as_str() {
            "Identity" => Some(|x| x),
            "Neg" => Some(|x| -x),
            "Abs" => Some(f64::abs),
            "Sqrt" => Some(f64::sqrt),
            "Floor" => Some(f64::floor),
            "Ceil" => Some(f64::ceil),
            "Reciprocal" => Some(|x| 1.0 / x),
            "Relu" => Some(|x| x.max(0.0)),
            "Sign" => Some(|x: f64| if x == 0.0 { 0.0 } else { x.signum() }),
            _ => None,
        };
        if let Some(v) = f.and_then(|f| fold::unary(t, dt, f)) {
            return Ok(vec![OutInfo::constant(v)]);
        }
    }
    Ok(vec![same(c, 0, dt)])
}

/// Not, IsNaN, IsInf: same shape, bool output.
pub fn unary_bool(c: &OpCtx) -> RuleResult {
    c.dtype(0)?;
    if c.node.op_type == "Not" {
        if let Some(v) = c
            .constant(0)
            .and_then(|t| fold::unary(t, DType::Bool, |x| f64::from(u8::from(x == 0.0))))
        {
            return Ok(vec![OutInfo::constant(v)]);
        }
    }
    Ok(vec![same(c, 0, DType::Bool)])
}

// Gradient rules.

pub fn identity_grad(_c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    Ok(vec![Some(dy0(dys)?)])
}

pub fn neg_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    Ok(vec![Some(c.b.neg(dy0(dys)?)?)])
}

pub fn abs_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let s = c.b.op("Sign", &[c.x(0)?])?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, s])?)])
}

/// dy where the output is positive: reads only the output.
pub fn relu_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let y = c.y(0)?;
    let zero = c.b.scalar(c.b.dtype(y)?, 0.0)?;
    let pos = c.b.op("Greater", &[y, zero])?;
    Ok(vec![Some(c.b.op("Where", &[pos, dy0(dys)?, zero])?)])
}

pub fn leaky_relu_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let g = dy0(dys)?;
    let alpha = c.node.attr_float("alpha").unwrap_or(0.01);
    let zero = c.b.scalar(c.b.dtype(x)?, 0.0)?;
    let pos = c.b.op("Greater", &[x, zero])?;
    let ga = c.b.scale(g, f64::from(alpha))?;
    Ok(vec![Some(c.b.op("Where", &[pos, g, ga])?)])
}

pub fn sigmoid_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let y = c.y(0)?;
    let one = c.b.scalar(c.b.dtype(y)?, 1.0)?;
    let om = c.b.op("Sub", &[one, y])?;
    let d = c.b.op("Mul", &[y, om])?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, d])?)])
}

pub fn tanh_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let y = c.y(0)?;
    let one = c.b.scalar(c.b.dtype(y)?, 1.0)?;
    let y2 = c.b.op("Mul", &[y, y])?;
    let d = c.b.op("Sub", &[one, y2])?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, d])?)])
}

/// 2/sqrt(pi) * exp(-x^2).
pub fn erf_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let x2 = c.b.op("Mul", &[x, x])?;
    let nx2 = c.b.neg(x2)?;
    let e = c.b.op("Exp", &[nx2])?;
    let d = c.b.scale(e, 2.0 / std::f64::consts::PI.sqrt())?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, d])?)])
}

/// Gelu (opset 20): exact form Φ(x) + x φ(x); tanh form differentiated as written.
pub fn gelu_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let dt = c.b.dtype(x)?;
    let g = dy0(dys)?;
    let approx = c
        .node
        .attr_string("approximate")
        .unwrap_or_else(|| "none".into());
    let half = c.b.scalar(dt, 0.5)?;
    let one = c.b.scalar(dt, 1.0)?;
    let d = if approx == "tanh" {
        // y = 0.5 x (1 + tanh(u)), u = k (x + 0.044715 x^3), k = sqrt(2/pi)
        let k = (2.0 / std::f64::consts::PI).sqrt();
        let x2 = c.b.op("Mul", &[x, x])?;
        let x3 = c.b.op("Mul", &[x2, x])?;
        let a = c.b.scale(x3, 0.044715)?;
        let inner = c.b.op("Add", &[x, a])?;
        let u = c.b.scale(inner, k)?;
        let t = c.b.op("Tanh", &[u])?;
        let opt = c.b.op("Add", &[one, t])?;
        let left = c.b.op("Mul", &[half, opt])?;
        let t2 = c.b.op("Mul", &[t, t])?;
        let sech2 = c.b.op("Sub", &[one, t2])?;
        let du = c.b.scale(x2, 3.0 * 0.044715)?;
        let du = c.b.op("Add", &[one, du])?;
        let du = c.b.scale(du, k)?;
        let r = c.b.op("Mul", &[sech2, du])?;
        let r = c.b.op("Mul", &[r, x])?;
        let r = c.b.op("Mul", &[r, half])?;
        c.b.op("Add", &[left, r])?
    } else {
        let xs = c.b.scale(x, std::f64::consts::FRAC_1_SQRT_2)?;
        let e = c.b.op("Erf", &[xs])?;
        let cdf = c.b.op("Add", &[one, e])?;
        let cdf = c.b.op("Mul", &[cdf, half])?;
        let x2 = c.b.op("Mul", &[x, x])?;
        let nx2 = c.b.scale(x2, -0.5)?;
        let pdf = c.b.op("Exp", &[nx2])?;
        let pdf = c.b.scale(pdf, 1.0 / (2.0 * std::f64::consts::PI).sqrt())?;
        let xp = c.b.op("Mul", &[x, pdf])?;
        c.b.op("Add", &[cdf, xp])?
    };
    Ok(vec![Some(c.b.op("Mul", &[g, d])?)])
}

fn hard_sigmoid_parts(c: &mut GradCtx, alpha: f32, beta: f32) -> GradResult<(ValueId, ValueId)> {
    // Returns (hardsigmoid(x), slope mask = alpha where 0 < alpha x + beta < 1 else 0).
    let x = c.x(0)?;
    let dt = c.b.dtype(x)?;
    let lin = c.b.scale(x, f64::from(alpha))?;
    let bc = c.b.scalar(dt, f64::from(beta))?;
    let lin = c.b.op("Add", &[lin, bc])?;
    let zero = c.b.scalar(dt, 0.0)?;
    let one = c.b.scalar(dt, 1.0)?;
    let gt = c.b.op("Greater", &[lin, zero])?;
    let lt = c.b.op("Less", &[lin, one])?;
    let inside = c.b.op("And", &[gt, lt])?;
    let a = c.b.scalar(dt, f64::from(alpha))?;
    let slope = c.b.op("Where", &[inside, a, zero])?;
    let hs = c.b.op("Clip", &[lin, zero, one])?;
    Ok((hs, slope))
}

pub fn hard_sigmoid_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let alpha = c.node.attr_float("alpha").unwrap_or(0.2);
    let beta = c.node.attr_float("beta").unwrap_or(0.5);
    let (_, slope) = hard_sigmoid_parts(c, alpha, beta)?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, slope])?)])
}

/// y = x * hardsigmoid(x) with alpha 1/6, beta 0.5: dy (hs + x * slope).
pub fn hard_swish_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let (hs, slope) = hard_sigmoid_parts(c, 1.0 / 6.0, 0.5)?;
    let x = c.x(0)?;
    let xs = c.b.op("Mul", &[x, slope])?;
    let d = c.b.op("Add", &[hs, xs])?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, d])?)])
}

pub fn exp_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let y = c.y(0)?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, y])?)])
}

pub fn sin_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let d = c.b.op("Cos", &[c.x(0)?])?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, d])?)])
}

/// dy·(1 + y²) (= dy / cos² x, without recomputing cos).
pub fn tan_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let y = c.y(0)?;
    let one = c.b.scalar(c.b.dtype(y)?, 1.0)?;
    let y2 = c.b.op("Mul", &[y, y])?;
    let d = c.b.op("Add", &[one, y2])?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, d])?)])
}

/// −dy·sin(x).
pub fn cos_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let s = c.b.op("Sin", &[c.x(0)?])?;
    let t = c.b.op("Mul", &[dy0(dys)?, s])?;
    Ok(vec![Some(c.b.neg(t)?)])
}

pub fn log_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    Ok(vec![Some(c.b.op("Div", &[dy0(dys)?, x])?)])
}

pub fn sqrt_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let y = c.y(0)?;
    let t = c.b.op("Div", &[dy0(dys)?, y])?;
    Ok(vec![Some(c.b.scale(t, 0.5)?)])
}

pub fn reciprocal_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let y = c.y(0)?;
    let y2 = c.b.op("Mul", &[y, y])?;
    let t = c.b.op("Mul", &[dy0(dys)?, y2])?;
    Ok(vec![Some(c.b.neg(t)?)])
}

pub fn softplus_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let s = c.b.op("Sigmoid", &[c.x(0)?])?;
    Ok(vec![Some(c.b.op("Mul", &[dy0(dys)?, s])?)])
}

/// dy where min <= x <= max (bounds are not differentiated).
pub fn clip_grad(c: &mut GradCtx, dys: &[Option<ValueId>]) -> Grads {
    let x = c.x(0)?;
    let g = dy0(dys)?;
    let dt = c.b.dtype(x)?;
    let zero = c.b.scalar(dt, 0.0)?;
    let mut mask: Option<ValueId> = None;
    for (i, cmp) in [(1, "GreaterOrEqual"), (2, "LessOrEqual")] {
        if let Some(bound) = c.node.input(i) {
            let m = c.b.op(cmp, &[x, bound])?;
            mask = Some(match mask {
                Some(prev) => c.b.op("And", &[prev, m])?,
                None => m,
            });
        }
    }
    Ok(vec![Some(match mask {
        Some(m) => c.b.op("Where", &[m, g, zero])?,
        None => g,
    })])
}
