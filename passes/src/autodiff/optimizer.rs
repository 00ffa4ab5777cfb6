//! The optimizer step inside the training graph (issue #15), so that the emitted graph is a
//! whole training step a loop can run: parameters and optimizer state in, loss and updated
//! parameters and state out, in standard ai.onnx ops.
//!
//! Naming convention (docs/cli.md, "Training step"):
//!
//! - each trainable parameter `P` becomes a graph input; it keeps its initializer, which is
//!   then the input's default (ONNX Runtime lets the caller override it), so the file alone
//!   still runs the first step;
//! - its updated value is the output `P.next`;
//! - state: `P.momentum` (momentum) or `P.exp_avg` and `P.exp_avg_sq` (AdamW, torch's names),
//!   inputs defaulting to zeros, updated as `P.momentum.next`, …;
//! - AdamW's step count: the float scalar input `optimizer.step` (steps taken before this
//!   one, default 0) and the output `optimizer.step.next`.
//!
//! The updates follow `torch.optim` (SGD with `weight_decay` added to the gradient, momentum
//! without dampening, AdamW with decoupled decay and bias correction), so N steps here and
//! there give the same weights up to float rounding (tests/optimizer.rs). A gradient is no
//! output any more: it is freed once its update is made.

use super::builder::{Builder, GradResult};
use crate::ir::{Tensor, ValueId};

/// Which update rule, with its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    Sgd,
    Momentum { momentum: f64 },
    AdamW { beta1: f64, beta2: f64, eps: f64 },
}

/// An optimizer step to append to the training graph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Optimizer {
    pub rule: Rule,
    pub lr: f64,
    pub weight_decay: f64,
}

impl Rule {
    /// The rule's name as the command line spells it: `sgd`, `momentum`, `adamw`.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Sgd => "sgd",
            Rule::Momentum { .. } => "momentum",
            Rule::AdamW { .. } => "adamw",
        }
    }
}

impl Optimizer {
    /// The state each parameter carries, as name suffixes.
    pub fn state_suffixes(&self) -> &'static [&'static str] {
        match self.rule {
            Rule::Sgd => &[],
            Rule::Momentum { .. } => &["momentum"],
            Rule::AdamW { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }

    pub fn describe(&self) -> String {
        let wd = self.weight_decay;
        match self.rule {
            Rule::Sgd => format!("sgd(lr={}, weight_decay={wd})", self.lr),
            Rule::Momentum { momentum } => {
                format!(
                    "momentum(lr={}, momentum={momentum}, weight_decay={wd})",
                    self.lr
                )
            }
            Rule::AdamW { beta1, beta2, eps } => format!(
                "adamw(lr={}, betas=({beta1}, {beta2}), eps={eps}, weight_decay={wd})",
                self.lr
            ),
        }
    }
}

/// Name of AdamW's step-count input.
pub const STEP_INPUT: &str = "optimizer.step";

/// What [`append`] added: graph inputs (parameters first, then state) and outputs, in order.
pub struct Appended {
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
}

/// Makes `params` graph inputs; with an optimizer, appends its update of each parameter
/// from its gradient and returns the new inputs and outputs (without one, the outputs are
/// empty: the gradients stay the outputs).
pub fn append(
    b: &mut Builder,
    params: &[ValueId],
    grads: &[ValueId],
    opt: Option<&Optimizer>,
) -> GradResult<Appended> {
    let mut inputs: Vec<ValueId> = params.to_vec();
    let mut outputs = Vec::new();
    let Some(opt) = opt else {
        return Ok(Appended { inputs, outputs });
    };
    // AdamW's bias corrections, shared by every parameter of a dtype: lr / (1 − β1^t) and
    // sqrt(1 − β2^t), t = step + 1.
    let mut step_next = None;
    let mut step_input = None;
    let mut adam_scalars: Vec<(crate::ir::DType, ValueId, ValueId)> = Vec::new();
    // Updates are emitted in the order the backward made the gradients: ONNX Runtime walks
    // the sinks (the updates) in file order reversed by `schedule::sinks_last`, so each
    // update — and the weight gradient it reads — then runs as soon as its gradient can,
    // instead of all at the end of the step holding every layer's recomputed inputs. Inputs
    // and outputs stay in parameter order.
    let made_at = |g: ValueId| b.graph.value(g).producer.map_or(0, |n| n.index());
    let mut order: Vec<usize> = (0..params.len()).collect();
    order.sort_by_key(|&k| made_at(grads[k]));
    let mut state_of: Vec<Vec<ValueId>> = vec![Vec::new(); params.len()];
    let mut outputs_of: Vec<Vec<ValueId>> = vec![Vec::new(); params.len()];
    for k in order {
        let (p, g) = (params[k], grads[k]);
        let dtype = b.dtype(p)?;
        let dims = b.dims(p)?;
        let pname = b.graph.value(p).name.clone();
        let mut state_in = Vec::new();
        for suffix in opt.state_suffixes() {
            let elem = dtype
                .size_bytes()
                .ok_or_else(|| format!("parameter '{pname}' has type {dtype} without a size"))?;
            let numel: u64 = dims.iter().map(|&d| d.max(0) as u64).product();
            let name = b.named(&format!("{pname}.{suffix}"));
            let zeros = Tensor::raw(dtype, dims.clone(), vec![0u8; (numel * elem) as usize]);
            let s = b.graph.add_initializer(name, zeros);
            state_in.push(s);
        }
        let decayed_grad = |b: &mut Builder| -> GradResult<ValueId> {
            if opt.weight_decay == 0.0 {
                return Ok(g);
            }
            let wp = b.scale(p, opt.weight_decay)?;
            b.op("Add", &[g, wp])
        };
        let (p_next, state_next) = match opt.rule {
            Rule::Sgd => {
                let d = decayed_grad(b)?;
                let step = b.scale(d, opt.lr)?;
                (b.op("Sub", &[p, step])?, vec![])
            }
            Rule::Momentum { momentum } => {
                let d = decayed_grad(b)?;
                let kept = b.scale(state_in[0], momentum)?;
                let buf = b.op("Add", &[kept, d])?;
                let step = b.scale(buf, opt.lr)?;
                (b.op("Sub", &[p, step])?, vec![buf])
            }
            Rule::AdamW { beta1, beta2, eps } => {
                let (lr_t, bc2_sqrt) = match adam_scalars.iter().find(|s| s.0 == dtype) {
                    Some(&(_, a, c)) => (a, c),
                    None => {
                        let t = match step_next {
                            Some(t) => t,
                            None => {
                                let step_name = b.named(STEP_INPUT);
                                let step = b.graph.add_initializer(
                                    step_name,
                                    Tensor::scalar_of(crate::ir::DType::Float, 0.0)
                                        .expect("float scalar"),
                                );
                                step_input = Some(step);
                                let one = b.scalar(crate::ir::DType::Float, 1.0)?;
                                let t = b.op("Add", &[step, one])?;
                                step_next = Some(t);
                                t
                            }
                        };
                        let t = if dtype == crate::ir::DType::Float {
                            t
                        } else {
                            b.node(
                                "Cast",
                                &[t],
                                vec![crate::ir::Attribute::int("to", dtype.to_onnx() as i64)],
                            )?
                        };
                        let one = b.scalar(dtype, 1.0)?;
                        let b1 = b.scalar(dtype, beta1)?;
                        let b2 = b.scalar(dtype, beta2)?;
                        let p1 = b.op("Pow", &[b1, t])?;
                        let bc1 = b.op("Sub", &[one, p1])?;
                        let lr = b.scalar(dtype, opt.lr)?;
                        let lr_t = b.op("Div", &[lr, bc1])?;
                        let p2 = b.op("Pow", &[b2, t])?;
                        let bc2 = b.op("Sub", &[one, p2])?;
                        let bc2_sqrt = b.op("Sqrt", &[bc2])?;
                        adam_scalars.push((dtype, lr_t, bc2_sqrt));
                        (lr_t, bc2_sqrt)
                    }
                };
                let decayed = b.scale(p, 1.0 - opt.lr * opt.weight_decay)?;
                let m_old = b.scale(state_in[0], beta1)?;
                let m_new = b.scale(g, 1.0 - beta1)?;
                let m = b.op("Add", &[m_old, m_new])?;
                let v_old = b.scale(state_in[1], beta2)?;
                let g2 = b.op("Mul", &[g, g])?;
                let v_new = b.scale(g2, 1.0 - beta2)?;
                let v = b.op("Add", &[v_old, v_new])?;
                let root = b.op("Sqrt", &[v])?;
                let scaled = b.op("Div", &[root, bc2_sqrt])?;
                let e = b.scalar(dtype, eps)?;
                let denom = b.op("Add", &[scaled, e])?;
                let ratio = b.op("Div", &[m, denom])?;
                let step = b.op("Mul", &[ratio, lr_t])?;
                (b.op("Sub", &[decayed, step])?, vec![m, v])
            }
        };
        let outputs = &mut outputs_of[k];
        outputs.push(rename(b, p_next, &format!("{pname}.next"))?);
        for (s, n) in state_in.iter().zip(state_next) {
            let sname = b.graph.value(*s).name.clone();
            outputs.push(rename(b, n, &format!("{sname}.next"))?);
        }
        state_of[k] = state_in;
    }
    inputs.extend(state_of.into_iter().flatten());
    outputs.extend(outputs_of.into_iter().flatten());
    if let Some(t) = step_next {
        outputs.push(rename(b, t, &format!("{STEP_INPUT}.next"))?);
    }
    inputs.extend(step_input);
    Ok(Appended { inputs, outputs })
}

/// Names the output `v` exactly `name` when `v` is the builder's own value, else through
/// an Identity (a value may be an output once).
fn rename(b: &mut Builder, v: ValueId, name: &str) -> GradResult<ValueId> {
    let name = b.named(name);
    let val = b.graph.value(v);
    let own = val.producer.is_some() && val.initializer.is_none() && !b.graph.outputs.contains(&v);
    if own {
        b.graph.value_mut(v).name = name;
        return Ok(v);
    }
    let out = b.op("Identity", &[v])?;
    b.graph.value_mut(out).name = name;
    Ok(out)
}
