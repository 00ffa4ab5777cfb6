//! Compares the memory simulator with ONNX Runtime's measured peak on training graphs.
//!
//! `cargo run --example simcheck -- MODEL.onnx...` prints, per model and optimization level,
//! the measured and simulated peaks. `--events LEVEL` instead prints the simulated allocation
//! events of one model as JSON (to diff against a trace of ONNX Runtime's allocator).
use onnx_ac::plan::simulate::{self, OptLevel, SimOptions};
use onnx_ac::runtime::{run_model, GraphOpt, HostTensor, RunOptions};
use onnx_ac_passes::synth::cross_entropy;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let recompute = match args.iter().position(|a| a == "--recompute") {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    };
    // `--plan PLAN.json` (with env RW=1 for a plan on the graph whose weights are read at run
    // time): the rewritten graph of that plan.
    let plan_file = match args.iter().position(|a| a == "--plan") {
        Some(i) => {
            let f = args.remove(i + 1);
            args.remove(i);
            Some(f)
        }
        None => None,
    };
    let events = match args.iter().position(|a| a == "--events") {
        Some(i) => {
            let lvl = args.remove(i + 1);
            args.remove(i);
            Some(if lvl == "disable" {
                OptLevel::Disabled
            } else {
                OptLevel::All
            })
        }
        None => None,
    };
    println!(
        "{:<28} {:>9} {:>11} {:>11} {:>8} {:>11} {:>11} {:>11}",
        "model", "level", "measured", "simulated", "error", "meas. base", "sim. base", "meas. run"
    );
    for p in args {
        let path = std::path::PathBuf::from(&p);
        // The symbolic fixtures, bound to the static ones' sizes.
        let mut dims = std::collections::BTreeMap::new();
        if p.contains("_dynamic") {
            dims.insert("batch".to_string(), 2);
            dims.insert("seq".to_string(), 16);
        }
        if let Ok(d) = std::env::var("DIMS") {
            // DIMS=batch=8,seq=64
            for kv in d.split(',') {
                let (k, v) = kv.split_once('=').unwrap();
                dims.insert(k.to_string(), v.parse().unwrap());
            }
        }
        let (mut tm, info) = onnx_ac::load_training_graph(&path, &dims, &cross_entropy()).unwrap();
        if std::env::var_os("RW").is_some() {
            (tm.graph, _) =
                onnx_ac_passes::runtime_weights::read_weights_at_run_time(&tm.graph, &info)
                    .unwrap();
        }
        if let Some(f) = &plan_file {
            let plan: onnx_ac::plan::RecomputePlan =
                serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            let vals = plan.resolve(&tm.graph).unwrap();
            let (rg, _) = onnx_ac::plan::evaluate(&tm.graph, &info, &vals, &|_, _| 0.0).unwrap();
            let mut rm = tm.clone();
            rm.graph = rg;
            compare(&rm, &info, "plan");
            continue;
        }
        if recompute {
            // Recompute every candidate, every other one, and every third one.
            let all = onnx_ac::plan::candidates::candidates(&tm.graph);
            for (label, step) in [("all", 1), ("half", 2), ("third", 3)] {
                let vals: Vec<_> = all.iter().copied().step_by(step).collect();
                let (rg, _) =
                    onnx_ac::plan::evaluate(&tm.graph, &info, &vals, &|_, _| 0.0).unwrap();
                let mut rm = tm.clone();
                rm.graph = rg;
                let stem = path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .replace(".onnx", "");
                compare(&rm, &info, &format!("{stem}/{label}"));
            }
            continue;
        }
        let g = &tm.graph;
        let stem = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".onnx", "");
        let outp = std::env::temp_dir().join(format!("simcheck_{stem}.onnx"));
        onnx_ac::onnx::save(&tm, &outp, &Default::default()).unwrap();
        if let Some(level) = events {
            let so = SimOptions {
                level,
                ..SimOptions::default()
            };
            let order = simulate::ort_order(g, &so);
            let ev = simulate::allocation_events(g, &order, &so);
            let out: Vec<serde_json::Value> = ev
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "step": e.step,
                        "node": g.node(order[e.step]).name,
                        "bytes": e.bytes,
                        "value": e.what,
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(out));
            continue;
        }
        let stem = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".onnx", "");
        compare(&tm, &info, &stem);
    }
}

/// Prints measured vs simulated for `tm` at both levels.
fn compare(
    tm: &onnx_ac_passes::ir::Model,
    info: &onnx_ac_passes::autodiff::TrainingInfo,
    stem: &str,
) {
    let g = &tm.graph;
    let outp = std::env::temp_dir().join(format!("simcheck_{}.onnx", stem.replace('/', "_")));
    onnx_ac::onnx::save(tm, &outp, &Default::default()).unwrap();
    {
        let inputs: Vec<HostTensor> = g
            .inputs
            .iter()
            .filter(|&&i| g.value(i).initializer.is_none())
            .map(|&i| {
                let v = g.value(i);
                let dims = onnx_ac_passes::ir::static_dims(v.shape.as_ref().unwrap()).unwrap();
                HostTensor::zeros(&v.name, v.dtype.unwrap(), &dims).unwrap()
            })
            .collect();
        for (level, opt) in [
            (OptLevel::All, GraphOpt::All),
            (OptLevel::Disabled, GraphOpt::Disabled),
        ] {
            let so = SimOptions {
                level,
                ..SimOptions::default()
            };
            let mut order = simulate::ort_order(g, &so);
            // ORDER=names.json (level All only): ONNX Runtime's execution order as its profile
            // names the nodes; nodes it does not run (folded) go first, fused ones take the
            // place of the node they are named after.
            if let (Ok(f), OptLevel::All) = (std::env::var("ORDER"), level) {
                let names: Vec<String> =
                    serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
                let by_name: std::collections::HashMap<&str, onnx_ac_passes::ir::NodeId> =
                    g.node_ids().map(|n| (g.node(n).name.as_str(), n)).collect();
                let mut seen = std::collections::HashSet::new();
                let mut ran = Vec::new();
                for n in &names {
                    let base = n.split('/').collect::<Vec<_>>();
                    // "x/MatMulScaleFusion/" -> "x"
                    let mut cand = n.as_str();
                    for k in (1..=base.len()).rev() {
                        let prefix = base[..k].join("/");
                        if let Some((key, _)) = by_name.get_key_value(prefix.as_str()) {
                            cand = key;
                            break;
                        }
                    }
                    if let Some(&id) = by_name.get(cand) {
                        if seen.insert(id) {
                            ran.push(id);
                        }
                    }
                }
                let mut first: Vec<_> = order
                    .iter()
                    .copied()
                    .filter(|n| !seen.contains(n))
                    .collect();
                first.extend(ran);
                order = first;
            }
            let sim = simulate::simulate_with(g, &order, Some(info), &so);
            if std::env::var_os("SIMCHECK_EVENTS").is_some() {
                let ev = simulate::allocation_events(g, &order, &so);
                let out: Vec<serde_json::Value> = ev
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "step": e.step,
                            "node": g.node(order[e.step]).name,
                            "bytes": e.bytes,
                            "value": e.what,
                        })
                    })
                    .collect();
                let f = std::env::temp_dir()
                    .join(format!("simev_{}_{level:?}.json", stem.replace('/', "_")));
                std::fs::write(f, format!("\n{}", serde_json::Value::Array(out))).unwrap();
                let names: Vec<&str> = order.iter().map(|&n| g.node(n).name.as_str()).collect();
                let f = std::env::temp_dir().join(format!(
                    "simorder_{}_{level:?}.json",
                    stem.replace('/', "_")
                ));
                std::fs::write(f, serde_json::to_string(&names).unwrap()).unwrap();
            }
            let ro = RunOptions {
                measure_peak: true,
                graph_opt: opt,
                // DISABLE=a;b: ONNX Runtime transformers to turn off (to find which one the
                // simulation misses).
                disabled_optimizers: std::env::var("DISABLE")
                    .map(|d| d.split(';').map(String::from).collect())
                    .unwrap_or_default(),
                ..RunOptions::default()
            };
            let r = run_model(&outp, &inputs, None, &ro).unwrap();
            let meas = r.peak_bytes.unwrap();
            let base = r.baseline_bytes.unwrap();
            let err = (sim.counted_peak_bytes as f64 - meas as f64) / meas as f64 * 100.0;
            println!(
                "{:<28} {:>9} {:>11} {:>11} {:>7.2}% {:>11} {:>11} {:>11}",
                stem,
                format!("{level:?}"),
                meas,
                sim.counted_peak_bytes,
                err,
                base,
                sim.baseline_bytes,
                meas - base
            );
        }
    }
}
