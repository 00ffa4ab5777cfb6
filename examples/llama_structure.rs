//! Writes structure-only Llama graphs (weights external, the data file never written) for
//! `onnx-ac estimate` (docs/estimate.md): Llama-3.2-1B, Llama-3.1-8B and Llama-3.1-70B.
//!
//!     cargo run --release --example llama_structure -- OUT_DIR
//!     onnx-ac estimate OUT_DIR/llama-3.1-8b.onnx --dim batch=1 --dim seq=512,1024,2048 \
//!         --optimizer adamw --budget 30%act --chart llama-8b.svg

use onnx_ac::estimate::llama::LlamaConfig;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    for c in [
        LlamaConfig::llama_3_2_1b(),
        LlamaConfig::llama_3_1_8b(),
        LlamaConfig::llama_3_1_70b(),
    ] {
        let path = dir.join(format!("{}.onnx", c.name));
        if let Err(e) = c.write(&path) {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        println!(
            "wrote {} ({} parameters, {} layers)",
            path.display(),
            c.parameter_count(),
            c.layers
        );
    }
}
