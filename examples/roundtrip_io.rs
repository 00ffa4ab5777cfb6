//! I/O benchmark helper for scripts/bench_io.sh.
//!
//! - `roundtrip_io gen DIR [LAYERS [DIM]]`: writes `DIR/ext.onnx` with LAYERS (50) external
//!   `[DIM, DIM]` f32 weights (1600: 10.24 MB each) in `DIR/ext.onnx.data`, a MatMul/Relu
//!   chain from `onnx_ac_passes::synth::external_mlp`.
//! - `roundtrip_io gen-wide DIR NODES`: writes `DIR/wide.onnx`, `synth::wide_model(NODES)`.
//! - `roundtrip_io gen-gpt DIR LAYERS`: writes `DIR/gpt.onnx`, a `synth::transformer` with
//!   LAYERS layers, hidden 128, 4 heads, seq 128, batch 4, vocab 1024 (zero weights inline).
//! - `roundtrip_io roundtrip IN OUT`: `onnx_ac::load_model` then `onnx_ac::onnx::save`,
//!   printing the time of each step and the peak RSS (VmHWM) after each.

use onnx_ac_passes::synth;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Peak resident set size of this process so far, in KiB (Linux `VmHWM`).
fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn gen(dir: &Path, layers: usize, dim: i64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let model_path = dir.join("ext.onnx");
    let location = "ext.onnx.data";
    let mut m = synth::external_mlp(layers, dim, 1, location);
    // The weights: a non-zero pattern, written one tensor at a time.
    let len = (dim * dim * 4) as usize;
    let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join(location))?);
    let mut chunk = vec![0u8; len];
    for k in 0..layers {
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(k as u8);
        }
        w.write_all(&chunk)?;
    }
    w.flush()?;
    drop(w);
    // Saving reads the weights from `base_dir` and writes `ext.onnx.data` anew (through a
    // temporary file renamed over the old one).
    m.base_dir = Some(dir.to_path_buf());
    onnx_ac::onnx::save(&m, &model_path, &Default::default()).map_err(std::io::Error::other)?;
    let onnx = std::fs::metadata(&model_path)?.len();
    let data = std::fs::metadata(dir.join(location))?.len();
    println!(
        "wrote {}: {} nodes, graph file {} bytes, external data {:.1} MB ({layers} × {:.2} MB)",
        model_path.display(),
        m.graph.nodes.len(),
        onnx,
        data as f64 / 1e6,
        len as f64 / 1e6
    );
    Ok(())
}

fn roundtrip(input: &Path, output: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let t = Instant::now();
    let m = onnx_ac::load_model(input, &Default::default())?;
    let load = t.elapsed();
    let after_load = peak_rss_kib();
    let t = Instant::now();
    onnx_ac::onnx::save(&m, output, &Default::default())?;
    let save = t.elapsed();
    println!(
        "roundtrip {}: {} nodes; load+infer {:.3} s (peak RSS {}), save {:.3} s (peak RSS {})",
        input.display(),
        m.graph.nodes.len(),
        load.as_secs_f64(),
        mib(after_load),
        save.as_secs_f64(),
        mib(peak_rss_kib())
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: roundtrip_io gen DIR [LAYERS [DIM]] | gen-wide DIR NODES \
                 | gen-gpt DIR LAYERS | roundtrip IN OUT";
    match args.first().map(String::as_str) {
        Some("gen") if args.len() >= 2 => {
            let layers = args.get(2).map_or(Ok(50), |s| s.parse())?;
            let dim = args.get(3).map_or(Ok(1600), |s| s.parse())?;
            gen(&PathBuf::from(&args[1]), layers, dim)?;
        }
        Some("gen-wide") if args.len() == 3 => {
            let dir = PathBuf::from(&args[1]);
            std::fs::create_dir_all(&dir)?;
            let m = synth::wide_model(args[2].parse()?);
            let path = dir.join("wide.onnx");
            onnx_ac::onnx::save(&m, &path, &Default::default())?;
            println!(
                "wrote {}: {} nodes, {} bytes",
                path.display(),
                m.graph.nodes.len(),
                std::fs::metadata(&path)?.len()
            );
        }
        Some("gen-gpt") if args.len() == 3 => {
            let dir = PathBuf::from(&args[1]);
            std::fs::create_dir_all(&dir)?;
            let m = synth::transformer(args[2].parse()?, 128, 4, 128, 4, 1024);
            let path = dir.join("gpt.onnx");
            onnx_ac::onnx::save(&m, &path, &Default::default())?;
            println!("wrote {}: {} nodes", path.display(), m.graph.nodes.len());
        }
        Some("roundtrip") if args.len() == 3 => {
            roundtrip(Path::new(&args[1]), Path::new(&args[2]))?;
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
