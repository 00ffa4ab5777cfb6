//! The subcommands as library calls: parse nothing, print results.

use crate::cli::{
    BatchNormMode, InspectArgs, LossArgs, LossKind, MainArgs, ModelArgs, TrainGraphArgs,
};
use crate::{Error, Result};
use onnx_ac_passes::autodiff::{self, Loss, TrainOptions};
use onnx_ac_passes::ir::Model;
use std::collections::BTreeMap;

fn dims_map(dims: &[(String, i64)]) -> BTreeMap<String, i64> {
    dims.iter().cloned().collect()
}

fn load(m: &ModelArgs) -> Result<Model> {
    crate::load_model(&m.model, &dims_map(&m.dims))
}

/// Turns the loss flags into options; without --loss, the model decides (see
/// `inspect::default_loss`).
pub fn train_options(model: &Model, a: &LossArgs) -> Result<TrainOptions> {
    let loss = match a.loss {
        None => match crate::inspect::default_loss(model) {
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
                None => match crate::inspect::default_loss(model) {
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
    })
}

pub fn inspect(a: &InspectArgs) -> Result<()> {
    let m = load(&a.model)?;
    let opts = train_options(&m, &a.loss)?;
    let report = crate::inspect::inspect(&m, &opts);
    if a.json {
        let s =
            serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
        println!("{s}");
    } else {
        print!("{}", report.to_text());
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

pub fn train_graph(a: &TrainGraphArgs) -> Result<()> {
    let m = load(&a.model)?;
    let (tm, info) = training_graph(&m, &a.loss, &a.model.model)?;
    crate::onnx::save(&tm, &a.out, &crate::onnx::SaveOptions::default())?;
    eprintln!(
        "wrote {}: loss + {} gradients, {} forward and {} backward nodes",
        a.out.display(),
        info.grads.len(),
        info.forward_end,
        tm.graph.nodes.len() - info.forward_end
    );
    Ok(())
}

pub fn main_command(a: &MainArgs) -> Result<()> {
    let model = a
        .model
        .as_ref()
        .ok_or_else(|| Error::Usage("missing MODEL".into()))?;
    let m = crate::load_model(model, &dims_map(&a.dims))?;
    let _ = training_graph(&m, &a.loss, model)?;
    Err(Error::StageMissing {
        stage: "planning and rewriting (profile → plan → rewrite)",
    })
}
