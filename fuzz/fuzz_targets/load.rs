//! Bytes → model: parse, import, bind dims, infer shapes (`onnx_ac::load_model`), then what
//! `inspect` reports on it (training graph included).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::model_file(data);
    match onnx_ac::load_model(&path, &BTreeMap::new()) {
        Ok(m) => {
            let opts = onnx_ac_passes::autodiff::TrainOptions {
                loss: onnx_ac::inspect::default_loss(&m),
                ..Default::default()
            };
            let _ = onnx_ac::inspect::inspect(&m, &opts);
        }
        Err(e) => common::check_error(&e),
    }
});
