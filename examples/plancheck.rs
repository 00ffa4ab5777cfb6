use onnx_ac::plan::{evaluate, planner_by_name, PlanInput};
use onnx_ac::runtime::{run_model, HostTensor, RunOptions};
use onnx_ac_passes::autodiff::{build_training_graph, Loss, TrainOptions};
use onnx_ac_passes::ir::{Graph, NodeId};
fn cost(g: &Graph, n: NodeId) -> f64 {
    match g.node(n).op_type.as_str() {
        "MatMul" | "Gemm" | "Conv" => 1e-5,
        _ => 1e-6,
    }
}
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = std::path::PathBuf::from(&args[1]);
    let pct: f64 = args[2].parse().unwrap();
    let m = onnx_ac::load_model(&path, &Default::default()).unwrap();
    let opts = TrainOptions {
        loss: Loss::CrossEntropy {
            logits: "logits".into(),
            labels: "labels".into(),
        },
        ..Default::default()
    };
    let (tm, info) = build_training_graph(&m, &opts).unwrap();
    let g = &tm.graph;
    let (_, base) = evaluate(g, &info, &[], &cost).unwrap();
    let fixed = base.peak_bytes - base.activation_peak_bytes;
    let budget = fixed + (base.activation_peak_bytes as f64 * pct / 100.0) as u64;
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
    let mut ro = RunOptions::default();
    ro.measure_peak = true;
    let measure = |gr: &Graph, name: &str| {
        let mut mm = tm.clone();
        mm.graph = gr.clone();
        let p = std::path::PathBuf::from(format!("/tmp/pc_{name}.onnx"));
        onnx_ac::onnx::save(&mm, &p, &Default::default()).unwrap();
        let r = run_model(&p, &inputs, None, &ro).unwrap();
        (r.peak_bytes.unwrap(), r.outputs)
    };
    let (m0, out0) = measure(g, "none");
    println!(
        "budget {budget} (act {} fixed {fixed}); none: sim {} measured {m0}",
        base.activation_peak_bytes, base.peak_bytes
    );
    for name in ["selective", "full", "mutwo"] {
        let p = planner_by_name(name).unwrap();
        let plan = p
            .plan(&PlanInput {
                graph: g,
                info: &info,
                cost: &cost,
                budget_bytes: budget,
            })
            .unwrap();
        let vals = plan.resolve(g).unwrap();
        let (rg, ev) = evaluate(g, &info, &vals, &cost).unwrap();
        let (mp, outs) = measure(&rg, name);
        let same = out0.iter().zip(&outs).all(|(a, b)| a.data == b.data);
        println!("{name}: {} values, sim peak {} act {}, added {:.1e}s, copied {}, measured {mp}, identical {same}", vals.len(), ev.peak_bytes, ev.activation_peak_bytes, ev.added_time_s, ev.copied_nodes);
    }
}
