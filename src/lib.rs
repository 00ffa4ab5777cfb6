//! onnx-ac: activation checkpointing for ONNX training graphs. Each pipeline stage is a
//! library function; the binary is a thin layer over them.
//!
//! load → training graph → profile → plan → rewrite → verify → save

pub mod batches;
pub mod compare;
pub mod console;
pub mod cost;
pub mod error;
pub mod estimate;
pub mod html_report;
pub mod inspect;
pub mod onnx;
pub mod output;
pub mod pipeline;
pub mod plan;
pub mod profile;
pub mod report;
pub mod runtime;
pub mod safefs;
pub mod size;
pub mod state;
pub mod sweep;
pub mod tradeoff;
pub mod train;

pub use error::{Error, Result};

use onnx_ac_passes::autodiff::{build_training_graph, TrainOptions, TrainingInfo};
use onnx_ac_passes::ir::Model;
use std::collections::BTreeMap;
use std::path::Path;

/// Loads a model, binds symbolic input dims and infers every value's type and shape.
pub fn load_model(path: &Path, dims: &BTreeMap<String, i64>) -> Result<Model> {
    load_model_with(path, dims, &mut onnx_ac_passes::pass::Manager::new())
}

/// [`load_model`] with the passes `lower` and `infer-shapes` run through `manager` (for
/// `--dump-after` and `--stop-after`: after a stop the model is the one the stop-after pass
/// left).
pub fn load_model_with(
    path: &Path,
    dims: &BTreeMap<String, i64>,
    manager: &mut onnx_ac_passes::pass::Manager<'_>,
) -> Result<Model> {
    let mut model = onnx::load(path)?;
    let at = |source| Error::Model {
        path: path.to_path_buf(),
        source,
    };
    onnx_ac_passes::infer::bind_dims(&mut model.graph, dims).map_err(at)?;
    let mut unit = onnx_ac_passes::pass::Unit::new(model);
    unit.opset = unit.model.opset().unwrap_or(onnx::MIN_OPSET);
    manager
        .run(&mut unit, "lower", "infer-shapes")
        .map_err(|e| match e.into_ir() {
            Ok(e) => at(e),
            Err(e) => Error::Internal(e.to_string()),
        })?;
    Ok(unit.model)
}

/// [`load_model`], then the training graph with `opts`: one call for the tests and examples
/// that train a model file with options they already hold (the CLI derives its options from
/// the loaded model and its flags: `commands::training_graph`).
pub fn load_training_graph(
    path: &Path,
    dims: &BTreeMap<String, i64>,
    opts: &TrainOptions,
) -> Result<(Model, TrainingInfo)> {
    let model = load_model(path, dims)?;
    build_training_graph(&model, opts).map_err(|source| Error::Training {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses `name=value` for `--dim`.
pub fn parse_dim(s: &str) -> std::result::Result<(String, i64), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE (e.g. --dim batch=8)"))?;
    let v: i64 = v
        .trim()
        .parse()
        .map_err(|_| format!("'{v}' in --dim {s} is not an integer"))?;
    if v <= 0 {
        return Err(format!("--dim {s}: the value must be positive"));
    }
    if k.trim().is_empty() {
        return Err(format!("--dim {s}: the name is empty"));
    }
    Ok((k.trim().to_string(), v))
}
