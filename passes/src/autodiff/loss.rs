//! The loss appended to the forward, and its gradient in closed form.
//!
//! cross-entropy: mean over all positions of −log softmax(logits)[label], the class axis
//! last (torch's `cross_entropy` on `logits.reshape(-1, C)`); gradient
//! (softmax − onehot) / N. mse: mean((output − target)²); gradient 2(output − target)/numel.

use super::builder::{Builder, GradResult};
use super::AutodiffError;
use crate::ir::{known_shape, Attribute, DType, Tensor, ValueId};

#[derive(Clone, Debug, Default, PartialEq)]
pub enum Loss {
    /// The model's single scalar float output is the loss.
    #[default]
    Auto,
    CrossEntropy {
        logits: String,
        labels: String,
    },
    Mse {
        output: Option<String>,
        target: String,
    },
}

impl Loss {
    pub fn describe(&self) -> String {
        match self {
            Loss::Auto => "model-output".into(),
            Loss::CrossEntropy { logits, labels } => {
                format!("cross-entropy(logits={logits}, labels={labels})")
            }
            Loss::Mse { output, target } => format!(
                "mse(output={}, target={target})",
                output.as_deref().unwrap_or("<single output>")
            ),
        }
    }
}

pub(crate) enum Kind {
    Given,
    CrossEntropy {
        logp: ValueId,
        labels2d: ValueId,
        n: i64,
        classes: i64,
    },
    Mse {
        diff: ValueId,
        numel: i64,
    },
}

pub(crate) struct LossParts {
    pub loss: ValueId,
    /// The value whose gradient `seed_gradient` returns (logits, output, or the loss).
    pub input: ValueId,
    pub kind: Kind,
    pub new_inputs: Vec<ValueId>,
}

fn find_output(b: &Builder, name: &str) -> Result<ValueId, AutodiffError> {
    let g = &*b.graph;
    g.outputs
        .iter()
        .copied()
        .find(|&o| g.value(o).name == name)
        .or_else(|| {
            g.value_ids()
                .find(|&v| g.value(v).name == name && g.value(v).producer.is_some())
        })
        .ok_or_else(|| {
            let outs: Vec<&str> = g
                .outputs
                .iter()
                .map(|&o| g.value(o).name.as_str())
                .collect();
            AutodiffError::Loss(format!(
                "the model has no value named '{name}' (its outputs: {})",
                outs.join(", ")
            ))
        })
}

fn single_output(b: &Builder) -> Result<ValueId, AutodiffError> {
    match b.graph.outputs.as_slice() {
        [one] => Ok(*one),
        many => {
            let outs: Vec<&str> = many
                .iter()
                .map(|&o| b.graph.value(o).name.as_str())
                .collect();
            Err(AutodiffError::Loss(format!(
                "the model has {} outputs ({}); choose the loss with --loss cross-entropy --logits NAME, or --loss mse --target NAME [--output NAME]",
                many.len(),
                outs.join(", ")
            )))
        }
    }
}

/// The most classes cross-entropy accepts: its gradient holds a constant int64 tensor of
/// `[0, classes)` (128 MiB at this limit; vocabularies are below 2^18).
pub const MAX_CLASSES: i64 = 1 << 24;

fn new_input(
    b: &mut Builder,
    name: &str,
    dtype: DType,
    dims: &[i64],
) -> Result<ValueId, AutodiffError> {
    if b.graph.values.iter().any(|v| v.name == name) {
        return Err(AutodiffError::Loss(format!(
            "the model already has a value named '{name}'; pick another name for the new input"
        )));
    }
    if name.is_empty() {
        return Err(AutodiffError::Loss(
            "the name of the new input is empty; pass a non-empty --labels/--target NAME".into(),
        ));
    }
    if name == "loss" || name.ends_with(".grad") {
        // The training graph's outputs are `loss` and `<param>.grad`: the new input would
        // take the name and the output would be renamed silently.
        return Err(AutodiffError::Loss(format!(
            "the name '{name}' is reserved for an output of the training graph (loss, <param>.grad); pick another name for the new input"
        )));
    }
    let real = b.named(name);
    if real != name {
        // Taken by a node or another name in the model: a silent rename would make the
        // caller feed an input that does not exist.
        return Err(AutodiffError::Loss(format!(
            "the name '{name}' is already used in the model; pick another name for the new input"
        )));
    }
    let id = b.graph.new_value(real);
    let v = b.graph.value_mut(id);
    v.dtype = Some(dtype);
    v.shape = Some(known_shape(dims));
    b.graph.inputs.push(id);
    Ok(id)
}

pub(crate) fn build(b: &mut Builder, loss: &Loss) -> Result<LossParts, AutodiffError> {
    let e = AutodiffError::Loss;
    match loss {
        Loss::Auto => {
            let out = single_output(b)?;
            let v = b.graph.value(out);
            let scalar = v
                .shape
                .as_ref()
                .is_some_and(|s| s.iter().all(|d| d.known() == Some(1)));
            if !v.dtype.is_some_and(|d| d.is_float()) || !scalar {
                return Err(e(format!(
                    "output '{}' ({}{}) is not a scalar float loss; pass --loss cross-entropy --logits {} --labels labels",
                    v.name,
                    v.dtype.map(|d| d.to_string()).unwrap_or_default(),
                    crate::ir::shape_string(v.shape.as_ref()),
                    v.name
                )));
            }
            Ok(LossParts {
                loss: out,
                input: out,
                kind: Kind::Given,
                new_inputs: vec![],
            })
        }
        Loss::CrossEntropy { logits, labels } => {
            let z = find_output(b, logits)?;
            let zd = b.dims(z).map_err(e)?;
            if !b.dtype(z).map_err(e)?.is_float() || zd.is_empty() {
                return Err(e(format!(
                    "logits '{logits}' must be a float tensor with a class axis"
                )));
            }
            let classes = *zd.last().unwrap();
            if classes > MAX_CLASSES {
                // The gradient compares the labels with a constant [0, classes): 8 bytes a
                // class, allocated here (2^40 classes once aborted on 8 TiB).
                return Err(e(format!(
                    "logits '{logits}' have {classes} classes (last axis), above the most onnx-ac supports ({MAX_CLASSES})"
                )));
            }
            let n: i64 = zd[..zd.len() - 1].iter().product();
            let lead = &zd[..zd.len() - 1];
            let y = new_input(b, labels, DType::Int64, lead)?;
            let build = |b: &mut Builder| -> GradResult<LossParts> {
                let z2 = b.reshape(z, &[n, classes])?;
                let logp = b.node("LogSoftmax", &[z2], vec![Attribute::int("axis", -1)])?;
                let y2 = b.reshape(y, &[n, 1])?;
                let picked = b.node(
                    "GatherElements",
                    &[logp, y2],
                    vec![Attribute::int("axis", 1)],
                )?;
                let mean = b.reduce_mean(picked, &[0, 1], false)?;
                let loss = b.neg(mean)?;
                Ok(LossParts {
                    loss,
                    input: z,
                    kind: Kind::CrossEntropy {
                        logp,
                        labels2d: y2,
                        n,
                        classes,
                    },
                    new_inputs: vec![y],
                })
            };
            let mut parts = build(b).map_err(e)?;
            let name = b.named("loss");
            b.graph.value_mut(parts.loss).name = name;
            parts.new_inputs = vec![y];
            Ok(parts)
        }
        Loss::Mse { output, target } => {
            let o = match output {
                Some(name) => find_output(b, name)?,
                None => single_output(b)?,
            };
            let od = b.dims(o).map_err(e)?;
            let dt = b.dtype(o).map_err(e)?;
            let t = new_input(b, target, dt, &od)?;
            let build = |b: &mut Builder| -> GradResult<LossParts> {
                let diff = b.op("Sub", &[o, t])?;
                let sq = b.op("Mul", &[diff, diff])?;
                let axes: Vec<i64> = (0..od.len() as i64).collect();
                let loss = if axes.is_empty() {
                    sq
                } else {
                    b.reduce_mean(sq, &axes, false)?
                };
                Ok(LossParts {
                    loss,
                    input: o,
                    kind: Kind::Mse {
                        diff,
                        numel: od.iter().product(),
                    },
                    new_inputs: vec![t],
                })
            };
            let parts = build(b).map_err(e)?;
            let name = b.named("loss");
            b.graph.value_mut(parts.loss).name = name;
            Ok(parts)
        }
    }
}

/// The gradient of the loss with respect to `parts.input`.
pub(crate) fn seed_gradient(b: &mut Builder, parts: &LossParts) -> Result<ValueId, String> {
    let dt = b.dtype(parts.input)?;
    match &parts.kind {
        Kind::Given => {
            let dims = b.dims(parts.input)?;
            let one = Tensor::from_f64_as(
                dt,
                dims.clone(),
                &vec![1.0; dims.iter().product::<i64>() as usize],
            )
            .ok_or("unsupported loss type")?;
            Ok(b.constant(one))
        }
        Kind::CrossEntropy {
            logp,
            labels2d,
            n,
            classes,
        } => {
            let p = b.op("Exp", &[*logp])?;
            let range: Vec<i64> = (0..*classes).collect();
            let cls = b.constant(Tensor::from_i64(vec![1, *classes], &range));
            let hot = b.op("Equal", &[*labels2d, cls])?;
            let hot = b.node(
                "Cast",
                &[hot],
                vec![Attribute::int("to", i64::from(dt.to_onnx()))],
            )?;
            let d = b.op("Sub", &[p, hot])?;
            let d = b.scale(d, 1.0 / *n as f64)?;
            let zd = b.dims(parts.input)?;
            b.reshape(d, &zd)
        }
        Kind::Mse { diff, numel } => b.scale(*diff, 2.0 / *numel as f64),
    }
}
