//! `profile`: time every node of the training graph in ONNX Runtime.

use super::*;

/// The `profile` command: load, build the training graph, profile it, save the profile and
/// print a one-paragraph summary on stderr.
pub fn profile(a: &crate::cli::ProfileArgs) -> Result<()> {
    let dims = a.model.dims.iter().cloned().collect();
    let stage = onnx_ac::console::Stage::start(&format!(
        "building the training graph of {}",
        a.model.model.display()
    ));
    let m = onnx_ac::load_model(&a.model.model, &dims)?;
    check_outputs(&[("-o", a.out.clone())], &model_inputs(&m, &a.model.model))?;
    let (tm, _) = training_graph(&m, &a.loss, &a.model.model)?;
    drop(stage);
    let started = std::time::Instant::now();
    let p = onnx_ac::profile::profile_training_graph(&tm, &a.model.model, &a.options())
        .map_err(onnx_ac::Error::from)?;
    p.save(&a.out).map_err(onnx_ac::Error::from)?;
    onnx_ac::console::eprint_line(&format!(
        "wrote {}: {} nodes, {} runs on {} in {:.1} s; step {:.2} ms (kernels {:.2} ms); peak {} (parameters {})",
        a.out.display(),
        p.nodes.len(),
        p.runs,
        p.ep,
        started.elapsed().as_secs_f64(),
        p.step_time_s * 1e3,
        p.kernel_time_s * 1e3,
        p.measured_peak_bytes
            .map_or("not measured".to_string(), onnx_ac::size::human_bytes),
        onnx_ac::size::human_bytes(p.parameter_bytes),
    ));
    for w in &p.warnings {
        onnx_ac::console::eprint_line(&format!("warning: {w}"));
    }
    Ok(())
}
