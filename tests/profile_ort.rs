//! Profiling training graphs with the real ONNX Runtime (found as `onnx_ac::runtime::init` finds
//! it: in CI, the project's `.venv`). These tests fail, with the loader's message, when ONNX
//! Runtime is missing: they are never skipped. No wall-clock thresholds: times are only
//! printed, or compared as rankings.

mod common;

use common::{fixture, training};
use onnx_ac::cost::{spearman, AnalyticCost, CostModel, Device, MeasuredCost};
use onnx_ac::profile::{
    median_step_time, profile_training_graph, random_inputs, Profile, ProfileError, ProfileOptions,
    SavedGraph,
};
use onnx_ac::runtime::{init, Ep, GraphOpt, RunOptions};
use std::time::Instant;

fn require_ort() {
    if let Err(e) = init(None) {
        panic!("this test needs ONNX Runtime 1.31: {e}");
    }
}

fn options(runs: usize) -> ProfileOptions {
    ProfileOptions {
        runs,
        warmup: 1,
        progress: false,
        ..ProfileOptions::default()
    }
}

#[test]
fn profile_mlp_training_graph() {
    require_ort();
    let m = training("mlp.ts17", &[]).0;
    let g = &m.graph;
    let started = Instant::now();
    let p = profile_training_graph(&m, &fixture("mlp.ts17"), &options(2)).unwrap();
    println!(
        "mlp.ts17: profiled in {:.2} s; step {:.3} ms, kernels {:.3} ms, peak {:?} B (runtime {:?}, baseline {:?}), parameters {} B",
        started.elapsed().as_secs_f64(),
        p.step_time_s * 1e3,
        p.kernel_time_s * 1e3,
        p.measured_peak_bytes,
        p.runtime_peak_bytes,
        p.runtime_baseline_bytes,
        p.parameter_bytes
    );
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!((p.format.as_str(), p.version), ("onnx-ac-profile", 1));
    assert_eq!((p.ep.as_str(), p.runs, p.warmup), ("cpu", 2, 1));
    assert_eq!(p.graph_optimization, "disabled");

    // Every node has a time; every kernel ONNX Runtime runs took some.
    assert_eq!(p.nodes.len(), g.nodes.len());
    for n in &g.nodes {
        let np = p
            .nodes
            .get(&n.name)
            .unwrap_or_else(|| panic!("{} has no time", n.name));
        assert_eq!(np.op, n.op_type);
        assert!(np.time_s.is_finite() && np.time_s >= 0.0);
        if n.op_type != "Constant" {
            assert!(np.time_s > 0.0, "{} ({}) took no time", n.name, n.op_type);
        }
    }
    // Every value's bytes, from the static shapes.
    for n in &g.nodes {
        for &o in n.outputs.iter().flatten() {
            assert_eq!(p.values[&g.value(o).name], g.value_bytes(o).unwrap());
        }
    }
    assert_eq!(p.values["x"], 8 * 64 * 4);

    let params: u64 = g
        .initializers
        .iter()
        .map(|&i| g.value_bytes(i).unwrap())
        .sum();
    assert_eq!(p.parameter_bytes, params);
    assert_eq!(p.input_bytes, 8 * 64 * 4 + 8 * 8);
    let peak = p.measured_peak_bytes.expect("peak measured on CPU");
    assert!(peak > p.parameter_bytes, "{peak} <= {}", p.parameter_bytes);
    let (rt, base) = (
        p.runtime_peak_bytes.unwrap(),
        p.runtime_baseline_bytes.unwrap(),
    );
    assert_eq!(peak, rt - base + p.parameter_bytes + p.input_bytes);
    // The run holds at least every gradient (an output) at its end.
    let grads: u64 = g.outputs.iter().map(|&o| g.value_bytes(o).unwrap()).sum();
    assert!(rt - base >= grads, "{} < {grads}", rt - base);
    assert!(p.step_time_s > 0.0 && p.kernel_time_s > 0.0);

    // The file round-trips.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.profile.json");
    p.save(&path).unwrap();
    assert_eq!(Profile::load(&path).unwrap(), p);
}

#[test]
fn every_node_of_a_dynamo_export_is_mapped() {
    // cnn.dyn18 has CastLike nodes, which ONNX Runtime would otherwise inline under other names.
    require_ort();
    let m = training("cnn.dyn18", &[]).0;
    let p = profile_training_graph(&m, &fixture("cnn.dyn18"), &options(1)).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.nodes.len(), m.graph.nodes.len());
    for n in &m.graph.nodes {
        assert_eq!(
            p.nodes[&n.name].op, n.op_type,
            "ops are our graph's, not ONNX Runtime's"
        );
    }
}

#[test]
fn analytic_ranks_gpt2_nodes_like_onnx_runtime() {
    require_ort();
    let m = training("gpt2.ts17", &[]).0;
    let g = &m.graph;
    let started = Instant::now();
    // One intra-op thread: parallel tests share the machine's cores, and a preempted worker
    // thread stalls a parallel kernel; the ranking is what matters here.
    let opts = ProfileOptions {
        intra_threads: Some(1),
        ..options(3)
    };
    let p = profile_training_graph(&m, &fixture("gpt2.ts17"), &opts).unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);

    let analytic = AnalyticCost::new(Device::Cpu);
    let (mut predicted, mut measured) = (Vec::new(), Vec::new());
    for n in g.node_ids() {
        let node = g.node(n);
        if node.op_type == "Constant" {
            continue; // folded into initializers by ONNX Runtime: 0 in both
        }
        predicted.push(analytic.node_time(g, n));
        measured.push(p.time_of_name(&node.name).unwrap());
    }
    let rho = spearman(&predicted, &measured).unwrap();
    println!(
        "gpt2.ts17: profiled in {elapsed:.2} s ({} kernels); Spearman rho analytic(cpu) vs measured = {rho:.3}; step {:.2} ms, kernels {:.2} ms, analytic {:.2} ms",
        measured.len(),
        p.step_time_s * 1e3,
        p.kernel_time_s * 1e3,
        predicted.iter().sum::<f64>() * 1e3
    );
    assert!(rho > 0.3, "rho = {rho}");

    // The measured model returns the profile's times, and a recompute copy its original's.
    let mc = MeasuredCost::new(p.clone(), analytic);
    let mut copy = m.clone();
    let mm = copy
        .graph
        .node_ids()
        .find(|&n| copy.graph.node(n).op_type == "MatMul")
        .unwrap();
    let orig = copy.graph.node(mm).name.clone();
    assert_eq!(mc.node_time(&copy.graph, mm), p.nodes[&orig].time_s);
    copy.graph.node_mut(mm).name = format!("{orig}/recompute_2");
    assert_eq!(mc.node_time(&copy.graph, mm), p.nodes[&orig].time_s);

    // The inputs were in range, or ONNX Runtime's Gather would have failed; and the same
    // seed gives the same inputs.
    assert_eq!(
        random_inputs(g, p.seed).unwrap(),
        random_inputs(g, 0).unwrap()
    );
}

#[test]
fn disabled_vs_all_optimizations_step_time_gpt2() {
    require_ort();
    let m = training("gpt2.ts17", &[]).0;
    let inputs = random_inputs(&m.graph, 0).unwrap();
    let saved = SavedGraph::new(&m).unwrap();
    let mut line = String::from("gpt2.ts17 median step time:");
    for opt in [GraphOpt::Disabled, GraphOpt::All] {
        let ro = RunOptions {
            graph_opt: opt,
            intra_threads: Some(1),
            ..RunOptions::default()
        };
        let t = median_step_time(saved.path(), &inputs, &ro, 1, 5).unwrap();
        assert!(t > 0.0);
        line += &format!(" {opt:?} {:.2} ms", t * 1e3);
    }
    println!("{line} (1 thread)");
}

#[test]
fn cuda_without_cuda_is_a_clear_error() {
    require_ort();
    let m = training("mlp.ts17", &[]).0;
    let opts = ProfileOptions {
        ep: Ep::Cuda,
        ..options(1)
    };
    let e = profile_training_graph(&m, &fixture("mlp.ts17"), &opts).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ProfileError::Runtime(_)), "{e:?}");
    assert!(
        msg.contains("CUDA execution provider is unavailable"),
        "{msg}"
    );
    assert!(msg.contains("onnxruntime-gpu"), "{msg}");
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn zero_runs_is_refused() {
    let m = training("mlp.ts17", &[]).0;
    let e = profile_training_graph(&m, &fixture("mlp.ts17"), &options(0)).unwrap_err();
    assert!(e.to_string().contains("--runs must be at least 1"), "{e}");
}
