//! Prints what is live at the simulated peak of a training graph, with and without a plan.
//! `cargo run --release --example peakdump -- MODEL.onnx batch seq [planner budget%]`
use onnx_ac::plan::simulate::{self, SimOptions};
use onnx_ac_passes::synth::cross_entropy;
use std::collections::BTreeMap;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let mut dims = BTreeMap::new();
    dims.insert("batch".to_string(), a[1].parse().unwrap());
    dims.insert("seq".to_string(), a[2].parse().unwrap());
    let (tm, info) =
        onnx_ac::load_training_graph(std::path::Path::new(&a[0]), &dims, &cross_entropy()).unwrap();
    let mut g = tm.graph.clone();
    if a.len() > 3 {
        let cands = onnx_ac::plan::candidates::candidates(&g, &info);
        let vals: Vec<_> = if a[3] == "all" {
            cands
        } else {
            let plan: onnx_ac::plan::RecomputePlan =
                serde_json::from_str(&std::fs::read_to_string(&a[3]).unwrap()).unwrap();
            plan.resolve(&g).unwrap()
        };
        let (rg, _) = onnx_ac::plan::evaluate(&g, &info, &vals, &|_, _| 0.0).unwrap();
        g = rg;
    }
    let so = SimOptions::default();
    let order = simulate::ort_order(&g, &so);
    let sim = simulate::simulate_with(&g, &order, Some(&info), &so);
    println!(
        "peak {} act {} step {} node {} fwd_end {}",
        sim.peak_bytes,
        sim.activation_peak_bytes,
        sim.peak_step,
        g.node(order[sim.peak_step]).name,
        info.forward_end
    );
    println!("{:?}", sim.breakdown);
    let ev = simulate::allocation_events(&g, &order, &so);
    let mut live: BTreeMap<String, i64> = BTreeMap::new();
    for e in &ev {
        if e.step > sim.peak_step {
            break;
        }
        if e.step == sim.peak_step && e.bytes < 0 {
            continue;
        }
        *live.entry(e.what.clone()).or_default() += e.bytes;
    }
    let mut v: Vec<_> = live.into_iter().filter(|(_, b)| *b > 0).collect();
    v.sort_by_key(|(_, b)| -b);
    let tot: i64 = v.iter().map(|x| x.1).sum();
    println!("live total {tot}");
    for (n, b) in v.iter().take(40) {
        println!("{b:>10} {n}");
    }
}
