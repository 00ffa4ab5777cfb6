//! The subcommands (binary only): turn the parsed arguments into the library's typed options,
//! call it, write and print what it returns.

pub mod estimate;
mod main_command;
mod profile;
mod train;
mod views;

pub use main_command::main_command;
use main_command::TRAINING_GRAPH_KEY;
pub use profile::profile;
pub use train::train;
pub use views::{sweep, tradeoff};

use crate::cli::{
    BatchNormMode, InspectArgs, LossArgs, LossKind, MainArgs, ModelArgs, OptimizerKind, TrainArgs,
    TrainGraphArgs, VerifyArgs,
};
use onnx_ac::pipeline::{plan_and_rewrite, PlanOptions, PlanSource};
use onnx_ac::{Error, Result};
use onnx_ac_passes::autodiff::{self, Loss, TrainOptions};
use onnx_ac_passes::ir::Model;
use onnx_ac_passes::recompute::RewriteOptions;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn dims_map(dims: &[(String, i64)]) -> BTreeMap<String, i64> {
    dims.iter().cloned().collect()
}

fn load(m: &ModelArgs) -> Result<Model> {
    onnx_ac::load_model(&m.model, &dims_map(&m.dims))
}

/// Turns the loss flags into options; without --loss, the model decides (see
/// `inspect::default_loss`).
pub fn train_options(model: &Model, a: &LossArgs) -> Result<TrainOptions> {
    let loss = match a.loss {
        None => match onnx_ac::inspect::default_loss(model) {
            Loss::CrossEntropy { logits, .. } => Loss::CrossEntropy {
                logits: a.logits.clone().unwrap_or(logits),
                labels: a.labels.clone(),
            },
            other => other,
        },
        Some(LossKind::Output) => Loss::Auto,
        Some(LossKind::CrossEntropy) => {
            let logits = match &a.logits {
                Some(l) => l.clone(),
                None => match onnx_ac::inspect::default_loss(model) {
                    Loss::CrossEntropy { logits, .. } => logits,
                    _ => {
                        return Err(Error::Usage(
                            "--loss cross-entropy needs --logits OUTPUT".into(),
                        ))
                    }
                },
            };
            Loss::CrossEntropy {
                logits,
                labels: a.labels.clone(),
            }
        }
        Some(LossKind::Mse) => Loss::Mse {
            output: a.output.clone(),
            target: a.target.clone(),
        },
    };
    Ok(TrainOptions {
        loss,
        freeze: a.freeze.clone(),
        batch_norm_train: a.batch_norm == BatchNormMode::Train,
        params_as_inputs: a.params_as_inputs || a.optimizer.is_some(),
        optimizer: optimizer(a)?,
    })
}

/// The optimizer step of the flags, with their ranges checked.
fn optimizer(a: &LossArgs) -> Result<Option<autodiff::Optimizer>> {
    use autodiff::OptimizerRule as R;
    let Some(kind) = a.optimizer else {
        return Ok(None);
    };
    let bad = |flag: &str, v: f64, range: &str| {
        Err(Error::Usage(format!(
            "{flag} {v} is out of range: it must be {range}"
        )))
    };
    let in_unit = |v: f64| (0.0..1.0).contains(&v);
    if !(a.lr.is_finite() && a.lr > 0.0) {
        return bad("--lr", a.lr, "a positive number");
    }
    let weight_decay = a.weight_decay.unwrap_or(match kind {
        OptimizerKind::Adamw => 0.01,
        _ => 0.0,
    });
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return bad("--weight-decay", weight_decay, "0 or more");
    }
    let rule = match kind {
        OptimizerKind::Sgd => R::Sgd,
        OptimizerKind::Momentum => {
            if !in_unit(a.momentum) {
                return bad("--momentum", a.momentum, "in [0, 1)");
            }
            R::Momentum {
                momentum: a.momentum,
            }
        }
        OptimizerKind::Adamw => {
            let [beta1, beta2] = a.betas[..] else {
                return Err(Error::Usage(format!(
                    "--betas takes two numbers B1,B2 (got {})",
                    a.betas.len()
                )));
            };
            for b in [beta1, beta2] {
                if !in_unit(b) {
                    return bad("--betas", b, "in [0, 1)");
                }
            }
            if !(a.eps.is_finite() && a.eps > 0.0) {
                return bad("--eps", a.eps, "a positive number");
            }
            R::AdamW {
                beta1,
                beta2,
                eps: a.eps,
            }
        }
    };
    Ok(Some(autodiff::Optimizer {
        rule,
        lr: a.lr,
        weight_decay,
    }))
}

pub fn inspect(a: &InspectArgs) -> Result<()> {
    let stage = onnx_ac::console::Stage::start(&format!("inspecting {}", a.model.model.display()));
    let m = load(&a.model)?;
    let opts = train_options(&m, &a.loss)?;
    let report = onnx_ac::inspect::inspect(&m, &opts);
    drop(stage);
    if a.json {
        let s =
            serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
        onnx_ac::console::print(&(s + "\n"))?;
    } else {
        onnx_ac::console::print(&report.to_text())?;
    }
    Ok(())
}

/// Builds the training graph of a loaded model.
pub fn training_graph(
    m: &Model,
    a: &LossArgs,
    path: &std::path::Path,
) -> Result<(Model, autodiff::TrainingInfo)> {
    let opts = train_options(m, a)?;
    autodiff::build_training_graph(m, &opts).map_err(|e| Error::Training {
        path: path.to_path_buf(),
        source: e,
    })
}

/// The input files of a command reading `model` (loaded from `path`): the model and its
/// external data, for [`onnx_ac::output::check`].
pub fn model_inputs(model: &Model, path: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut inputs = vec![("the input model", path.to_path_buf())];
    for f in onnx_ac::onnx::external_files(model) {
        inputs.push(("external data of the input model", f));
    }
    inputs
}

/// `-o OUT` and the `OUT.data` file a model with external data is saved with.
pub fn model_outputs(out: &Path) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("-o", out.to_path_buf()),
        (
            "-o's external data",
            onnx_ac::output::with_suffix(out, ".data"),
        ),
    ]
}

/// [`onnx_ac::output::check`] on owned pairs.
pub fn check_outputs(
    outputs: &[(&'static str, PathBuf)],
    inputs: &[(&'static str, PathBuf)],
) -> Result<()> {
    let o: Vec<(&str, &Path)> = outputs.iter().map(|(w, p)| (*w, p.as_path())).collect();
    let i: Vec<(&str, &Path)> = inputs.iter().map(|(w, p)| (*w, p.as_path())).collect();
    Ok(onnx_ac::output::check(&o, &i)?)
}

pub fn train_graph(a: &TrainGraphArgs) -> Result<()> {
    let stage = onnx_ac::console::Stage::start(&format!(
        "building the training graph of {}",
        a.model.model.display()
    ));
    let m = load(&a.model)?;
    let mut outputs = model_outputs(&a.out);
    outputs.extend(a.init_state.iter().map(|p| ("--init-state", p.clone())));
    check_outputs(&outputs, &model_inputs(&m, &a.model.model))?;
    check_init_state(&a.init_state, &a.loss)?;
    let (tm, info) = training_graph(&m, &a.loss, &a.model.model)?;
    let mut staging = onnx_ac::output::Staging::new();
    onnx_ac::onnx::save_staged(
        &tm,
        &a.out,
        &onnx_ac::onnx::SaveOptions::default(),
        &mut staging,
    )?;
    if let Some(p) = &a.init_state {
        stage_init_state(&tm, &a.model.model, p, &mut staging)?;
    }
    staging.commit()?;
    drop(stage);
    let outputs = match &info.optimizer {
        Some(o) => format!(
            "loss + {} updated parameters and state ({})",
            info.step_outputs.len(),
            o.describe()
        ),
        None => format!("loss + {} gradients", info.grads.len()),
    };
    onnx_ac::console::eprint_line(&format!(
        "wrote {}: {outputs}, {} forward and {} backward nodes",
        a.out.display(),
        tm.graph.backward_start(),
        tm.graph.backward_nodes().len()
    ));
    Ok(())
}

pub fn verify(a: &VerifyArgs) -> Result<()> {
    // Both graphs must take the same inputs; the original's decide them.
    let original = onnx_ac::onnx::load(&a.original)?;
    let rewritten = onnx_ac::onnx::load(&a.rewritten)?;
    // Two forward models would "pass" by comparing their outputs alone.
    for (path, m) in [(&a.original, &original), (&a.rewritten, &rewritten)] {
        if !m.metadata.iter().any(|(k, _)| k == TRAINING_GRAPH_KEY) {
            return Err(Error::Usage(format!(
                "{} is not a training graph (no {TRAINING_GRAPH_KEY} metadata): verify compares \
                 the loss and gradients of two training graphs; write the original with \
                 `onnx-ac train-graph MODEL -o TRAIN.onnx` and the rewritten one with the main \
                 command",
                path.display()
            )));
        }
    }
    let names = |m: &Model| -> Vec<String> {
        m.graph
            .inputs
            .iter()
            .filter(|&&i| m.graph.value(i).initializer.is_none())
            .map(|&i| m.graph.value(i).name.clone())
            .collect()
    };
    if names(&original) != names(&rewritten) {
        return Err(Error::Usage(format!(
            "{} and {} have different inputs ({:?} vs {:?})",
            a.original.display(),
            a.rewritten.display(),
            names(&original),
            names(&rewritten)
        )));
    }
    let inputs = onnx_ac::profile::inputs_for(&original.graph)?;
    let stage = onnx_ac::console::Stage::start(&format!(
        "running both graphs in ONNX Runtime ({} timed runs of each)",
        a.runtime.runs
    ));
    let report = onnx_ac::compare::verify(
        &a.original,
        &a.rewritten,
        &inputs,
        &a.runtime.choice().run_options(),
        a.runtime.runs,
    )?;
    drop(stage);
    if a.json {
        let text =
            serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
        onnx_ac::console::print(&(text + "\n"))?;
    } else {
        onnx_ac::console::print(&(report.one_line() + "\n"))?;
    }
    if report.passed {
        Ok(())
    } else {
        Err(Error::VerifyFailed(report.one_line()))
    }
}

/// `--init-state` needs parameters as inputs: refused before any work otherwise.
fn check_init_state(init_state: &Option<PathBuf>, loss: &LossArgs) -> Result<()> {
    if init_state.is_some() && loss.optimizer.is_none() && !loss.params_as_inputs {
        return Err(Error::Usage(
            "--init-state needs a step with parameters as inputs: add --optimizer \
             sgd|momentum|adamw or --params-as-inputs"
                .into(),
        ));
    }
    Ok(())
}

/// `--init-state FILE`: the initial parameters and optimizer state of the step `tm` (built
/// from `model_path`), staged with the command's other outputs.
fn stage_init_state(
    tm: &Model,
    model_path: &Path,
    path: &Path,
    staging: &mut onnx_ac::output::Staging,
) -> Result<()> {
    let names = onnx_ac::state::inputs_with_defaults(tm);
    let tensors = onnx_ac::state::defaults(tm, model_path, &names)?;
    staging.write(path, &onnx_ac::state::to_bytes(&tensors)?)?;
    Ok(())
}
