//! Prints what is live at the simulated peak of a training graph, with and without a plan.
//! `cargo run --release --example peakdump -- MODEL.onnx (batch seq | - -) [all | PLAN.json]`
//! (env: `ONNX_AC_SIM_DEBUG=1`, `READERS=value`, `SHOW=text`, `OPT=sgd`, `RW=1` weights read at
//! run time)
use onnx_ac::plan::simulate::{self, SimOptions};
use onnx_ac_passes::synth::cross_entropy;
use std::collections::BTreeMap;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let mut dims = BTreeMap::new();
    // "-" for models whose dims are all static.
    if a[1] != "-" {
        dims.insert("batch".to_string(), a[1].parse().unwrap());
        dims.insert("seq".to_string(), a[2].parse().unwrap());
    }
    // OPT=sgd: the training graph with an SGD step appended (parameters as inputs).
    let mut opts = cross_entropy();
    if std::env::var("OPT").is_ok_and(|o| o == "sgd") {
        opts.optimizer = Some(onnx_ac_passes::autodiff::Optimizer {
            rule: onnx_ac_passes::autodiff::OptimizerRule::Sgd,
            lr: 1e-3,
            weight_decay: 0.0,
        });
        opts.params_as_inputs = true;
    }
    let (tm, info) =
        onnx_ac::load_training_graph(std::path::Path::new(&a[0]), &dims, &opts).unwrap();
    let mut g = tm.graph.clone();
    // RW=1: the forward reads its weights at run time (passes' runtime_weights.rs).
    if std::env::var("RW").is_ok() {
        (g, _) = onnx_ac_passes::runtime_weights::read_weights_at_run_time(&g, &info).unwrap();
    }
    if a.len() > 3 {
        let cands = onnx_ac::plan::candidates::candidates(&g);
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
        g.backward_start()
    );
    println!("{:?}", sim.breakdown);
    // READERS=value: where the readers of that value run.
    if let Ok(val) = std::env::var("READERS") {
        let pos: std::collections::HashMap<_, _> =
            order.iter().enumerate().map(|(k, n)| (*n, k)).collect();
        if let Some(&v) = g.value_by_name().get(val.as_str()) {
            for c in &g.consumers()[v.index()] {
                let n = g.node(*c);
                let outs: Vec<_> = n
                    .outputs
                    .iter()
                    .flatten()
                    .map(|o| g.value(*o).name.clone())
                    .collect();
                println!(
                    "  reader at step {:?}: {} {} -> {:?}",
                    pos.get(c),
                    n.op_type,
                    n.name,
                    outs
                );
            }
        }
    }
    // SHOW=text: where the nodes whose name contains it run.
    if let Ok(pat) = std::env::var("SHOW") {
        for (k, n) in order.iter().enumerate() {
            let node = g.node(*n);
            if node.name.contains(&pat) {
                println!(
                    "  step {k:>5} node {:>5} {} {}",
                    n.0, node.op_type, node.name
                );
            }
        }
    }
    let ev = simulate::allocation_events(&g, &order, &so);
    // Per buffer: bytes held and the name of the value that allocated it.
    let mut live: BTreeMap<usize, (String, i64)> = BTreeMap::new();
    for e in &ev {
        if e.step > sim.peak_step {
            break;
        }
        if e.buffer == usize::MAX || (e.step == sim.peak_step && e.bytes < 0) {
            continue;
        }
        let slot = live.entry(e.buffer).or_insert((e.what.clone(), 0));
        if e.bytes > 0 {
            slot.0 = e.what.clone();
        }
        slot.1 += e.bytes;
    }
    let live: BTreeMap<String, i64> = live.into_values().collect();
    let mut v: Vec<_> = live.into_iter().filter(|(_, b)| *b > 0).collect();
    v.sort_by_key(|(_, b)| -b);
    let tot: i64 = v.iter().map(|x| x.1).sum();
    println!("live total {tot}");
    for (n, b) in v.iter().take(40) {
        println!("{b:>10} {n}");
    }
}
