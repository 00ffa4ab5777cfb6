//! `onnx-ac estimate`: the command over `onnx_ac::estimate` (docs/estimate.md).

use crate::cli::EstimateArgs;
use onnx_ac::error::{Error, Result};
use onnx_ac::estimate::{estimate, Estimate, EstimateOptions};

/// Loads `a.model` structure-only and estimates it with `a`'s options; `progress` hears
/// each step. Checks `--chart` against the inputs first.
pub fn run(a: &EstimateArgs, progress: &dyn Fn(&str)) -> Result<Estimate> {
    let (base, absent) = onnx_ac::onnx::load_structure_only(&a.model)?;
    if let Some(chart) = &a.chart {
        let mut inputs = super::model_inputs(&base, &a.model);
        // A placeholder for data held nowhere names the model's folder, not a file.
        inputs.retain(|(_, p)| !p.is_dir());
        super::check_outputs(&[("--chart", chart.clone())], &inputs)?;
    }
    let device: onnx_ac::cost::Device = a
        .device
        .parse()
        .map_err(|e: String| Error::Usage(format!("--device: {e}")))?;
    let train = |m: &onnx_ac_passes::ir::Model| super::train_options(m, &a.loss);
    let opts = EstimateOptions {
        dims: &a.dims,
        train: &train,
        budget: a.budget,
        params_from_inputs: &a.params_from_inputs,
        device,
    };
    let non_float: Vec<String> = absent
        .iter()
        .filter(|n| {
            let by_name = base.graph.initializers.iter().map(|&i| base.graph.value(i));
            by_name
                .filter(|v| &v.name == *n)
                .any(|v| v.dtype.is_some_and(|d| !d.is_float()))
        })
        .map(|n| format!("'{n}'"))
        .collect();
    estimate(&base, &a.model, absent.len(), &opts, progress).map_err(|e| match e {
        // Shapes computed from an integer tensor without data are unknown: say which.
        Error::Model { .. } | Error::Training { .. } if !non_float.is_empty() => {
            Error::Usage(format!(
                "{e} (note: {} non-float initializer(s) have no data ({}{}): shapes computed \
                 from them are unknown; keep them in the model file)",
                non_float.len(),
                non_float[..non_float.len().min(5)].join(", "),
                if non_float.len() > 5 { ", ..." } else { "" }
            ))
        }
        e => e,
    })
}

/// The command: estimate, write the chart, print the table or JSON.
pub fn command(a: &EstimateArgs) -> Result<()> {
    let stage = onnx_ac::console::Stage::start(&format!("estimating {}", a.model.display()));
    let est = run(a, &|m| {
        stage.set_message(&format!("estimating {}: {m}", a.model.display()))
    })?;
    drop(stage);
    if let Some(path) = &a.chart {
        let mut staging = onnx_ac::output::Staging::new();
        staging.write(path, onnx_ac::estimate::chart::svg(&est).as_bytes())?;
        staging.commit()?;
    }
    if a.json {
        let s = serde_json::to_string_pretty(&est).map_err(|e| Error::Internal(e.to_string()))?;
        onnx_ac::console::print(&(s + "\n"))?;
    } else {
        onnx_ac::console::print(&onnx_ac::estimate::table::text(&est))?;
    }
    if let Some(path) = &a.chart {
        onnx_ac::console::eprint_line(&format!("wrote {}", path.display()));
    }
    Ok(())
}
