//! `train`: run training steps of a training graph in ONNX Runtime.

use super::*;

/// `onnx-ac train`: the step in a loop, about ten loss lines, the final state written last.
pub fn train(a: &TrainArgs) -> Result<()> {
    let m = onnx_ac::load_model(&a.model, &dims_map(&a.dims))?;
    let mut outputs = Vec::new();
    if let Some(out) = &a.out {
        outputs.extend(model_outputs(out));
    }
    outputs.extend(a.save_state.iter().map(|p| ("--save-state", p.clone())));
    let mut inputs = model_inputs(&m, &a.model);
    inputs.extend(a.state.iter().map(|p| ("--state", p.clone())));
    inputs.extend(a.data.iter().map(|p| ("--data", p.clone())));
    check_outputs(&outputs, &inputs)?;
    let state_names = onnx_ac::train::state_names(&m);
    let initial = match &a.state {
        Some(p) => Some(onnx_ac::state::read(
            p,
            &onnx_ac::state::slots(&m, &state_names),
        )?),
        None => None,
    };
    let data = match &a.data {
        Some(p) => {
            let inputs = onnx_ac::batches::data_inputs(&m.graph).map_err(Error::Usage)?;
            onnx_ac::train::Data::File(onnx_ac::batches::read_npz(p, &inputs)?)
        }
        None => onnx_ac::train::Data::Random {
            seed: a.seed,
            same_batch: a.same_batch,
        },
    };
    let opts = onnx_ac::runtime::RunOptions {
        measure_peak: true,
        ..a.runtime.choice().run_options()
    };
    onnx_ac::runtime::init(a.runtime.ort_lib.as_deref())?;
    let bar = onnx_ac::console::Stage::start(&format!("training {} steps", a.steps));
    let mut lines = String::new();
    // About ten loss lines whatever the number of steps: the first, every tenth, the last.
    let every = a.steps.div_ceil(10).max(1);
    let mut on_step = |k: usize, loss: f64, seconds: f64, peak: Option<u64>| {
        bar.set_message(&format!(
            "step {}/{}: loss {loss:.4}, {:.2} ms, peak {}",
            k + 1,
            a.steps,
            seconds * 1e3,
            peak.map_or("not measured".to_string(), onnx_ac::size::human_bytes)
        ));
        if k == 0 || (k + 1) % every == 0 || k + 1 == a.steps {
            lines.push_str(&format!("step {:>6}  loss {loss:.6}\n", k + 1));
        }
    };
    let t = onnx_ac::train::TrainOptions {
        steps: a.steps,
        data,
        initial,
        io_binding: !a.no_io_binding,
    };
    let (report, state) = onnx_ac::train::train(&m, &a.model, &t, &opts, &mut on_step)?;
    drop(bar);
    let mut times = report.step_times_s.clone();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let (first, last) = (report.losses[0], report.losses[report.losses.len() - 1]);
    lines.push_str(&format!(
        "trained {} steps: loss {first:.6} -> {last:.6}, median step {:.2} ms, step peak {} measured\n",
        a.steps,
        median * 1e3,
        report
            .peak_bytes
            .map_or("not".to_string(), onnx_ac::size::human_bytes)
    ));
    let mut staging = onnx_ac::output::Staging::new();
    if let Some(out) = &a.out {
        let trained = onnx_ac::train::with_state(&m, &state)?;
        onnx_ac::onnx::save_staged(
            &trained,
            out,
            &onnx_ac::onnx::SaveOptions::default(),
            &mut staging,
        )?;
    }
    if let Some(p) = &a.save_state {
        staging.write(p, &onnx_ac::state::to_bytes(&state)?)?;
    }
    let written = staging.destinations();
    staging.commit()?;
    for p in written {
        lines.push_str(&format!("wrote {}\n", p.display()));
    }
    Ok(onnx_ac::console::print(&lines)?)
}
