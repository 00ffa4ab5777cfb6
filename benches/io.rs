//! Load, infer and save of a 50k-node model, and the time to build training graphs.
//!
//! `cargo bench --bench io`. Figures and how to read them: docs/benchmarks-io.md. Peak RSS
//! with external weights is measured separately by scripts/bench_io.sh.

use criterion::{criterion_group, criterion_main, Criterion};
use onnx_ac_passes::autodiff::{build_training_graph, TrainOptions};
use onnx_ac_passes::ir::Model;
use onnx_ac_passes::synth;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

/// Nodes of the model loaded and saved.
const IO_NODES: usize = 50_000;

fn io(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("wide50k.onnx");
    let out = dir.path().join("wide50k.out.onnx");
    let model = synth::wide_model(IO_NODES);
    let opts = onnx_ac::onnx::SaveOptions::default();
    onnx_ac::onnx::save(&model, &src, &opts).expect("save the synthetic model");
    let size = std::fs::metadata(&src).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "io: synthetic wide model, {} nodes, {} initializers, file {:.1} MB",
        model.graph.nodes.len(),
        model.graph.initializers.len(),
        size as f64 / 1e6
    );
    let dims = BTreeMap::new();
    let loaded = onnx_ac::load_model(&src, &dims).expect("load");

    let mut group = c.benchmark_group("io");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("load_infer/wide50k", |b| {
        b.iter(|| onnx_ac::load_model(black_box(&src), &dims).expect("load"))
    });
    group.bench_function("save/wide50k", |b| {
        b.iter(|| onnx_ac::onnx::save(black_box(&loaded), &out, &opts).expect("save"))
    });
    group.bench_function("load_infer_save/wide50k", |b| {
        b.iter(|| {
            let m = onnx_ac::load_model(black_box(&src), &dims).expect("load");
            onnx_ac::onnx::save(&m, &out, &opts).expect("save");
        })
    });
    group.finish();
}

fn bench_training_graph(c: &mut Criterion, id: &str, m: &Model, opts: &TrainOptions) {
    let (tm, info) = build_training_graph(m, opts).expect("training graph");
    eprintln!(
        "build_training_graph/{id}: forward {} nodes -> training graph {} nodes ({} params)",
        m.graph.nodes.len(),
        tm.graph.nodes.len(),
        info.params.len()
    );
    let mut group = c.benchmark_group("build_training_graph");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function(id, |b| {
        b.iter(|| build_training_graph(black_box(m), opts).expect("training graph"))
    });
    group.finish();
}

fn training_graph(c: &mut Criterion) {
    // The largest statically shaped fixture.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/gpt2.ts17.onnx");
    if let Ok(m) = onnx_ac::load_model(&fixture, &BTreeMap::new()) {
        let opts = TrainOptions {
            loss: onnx_ac::inspect::default_loss(&m),
            ..Default::default()
        };
        bench_training_graph(c, "fixture_gpt2.ts17", &m, &opts);
    } else {
        eprintln!(
            "build_training_graph: {} not found, skipped",
            fixture.display()
        );
    }
    let m = synth::transformer(12, 128, 4, 128, 4, 1024);
    bench_training_graph(c, "synthetic_12l_h128", &m, &synth::cross_entropy());
    let m = synth::transformer_with_nodes(50_000);
    bench_training_graph(c, "synthetic_50k_nodes", &m, &synth::cross_entropy());
}

criterion_group!(benches, io, training_graph);
criterion_main!(benches);
