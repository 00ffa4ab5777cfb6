//! Every fixture's training graph, run in ONNX Runtime on the fixture's saved batch, against
//! torch autograd: loss to 1e-5 and, per gradient tensor,
//! max|a − b| ≤ 1e-4 · (max|b| + 1e-3 · G) with G the largest reference gradient value
//! (a plain relative error explodes on gradients that are analytically zero). The graph
//! passes onnx.checker's full check and loads with default session options.

mod common;

use onnx_ac::runtime::{HostTensor, ModelSession, RunOptions};
use onnx_ac_passes::ir::TensorData;
use std::collections::BTreeMap;

struct Case {
    stem: &'static str,
    dims: &'static [(&'static str, i64)],
}

const CASES: &[Case] = &[
    Case {
        stem: "mlp.ts17",
        dims: &[],
    },
    Case {
        stem: "mlp.dyn18",
        dims: &[],
    },
    Case {
        stem: "mlp_dynbatch.ts17",
        dims: &[("batch", 8)],
    },
    Case {
        stem: "cnn.ts17",
        dims: &[],
    },
    Case {
        stem: "cnn.dyn18",
        dims: &[],
    },
    Case {
        stem: "gpt2.ts17",
        dims: &[],
    },
    Case {
        stem: "gpt2.dyn18",
        dims: &[],
    },
    Case {
        stem: "gpt2_dynamic.ts17",
        dims: &[("batch", 2), ("seq", 16)],
    },
    Case {
        stem: "bert.ts17",
        dims: &[],
    },
    Case {
        stem: "bert.dyn18",
        dims: &[],
    },
    Case {
        stem: "bert_dynamic.ts17",
        dims: &[("batch", 2), ("seq", 16)],
    },
];

fn host(name: &str, t: &onnx_ac_passes::ir::Tensor) -> HostTensor {
    let TensorData::Raw(b) = &t.data else {
        panic!("reference tensor {name} is not raw");
    };
    HostTensor::new(name, t.dtype, t.dims.clone(), b.to_vec()).unwrap()
}

#[test]
fn gradients_match_torch_autograd() {
    let dir = tempfile::tempdir().unwrap();
    let mut table = String::new();
    for case in CASES {
        let ref_stem = case.stem.replace("mlp_dynbatch", "mlp");
        let refs: BTreeMap<String, onnx_ac_passes::ir::Tensor> = onnx_ac::onnx::load_tensors(
            &common::root().join(format!("fixtures/models/{ref_stem}.ref.pb")),
        )
        .unwrap()
        .into_iter()
        .collect();
        let (tm, info) = common::training(case.stem, case.dims);
        let out = dir.path().join(format!("{}.train.onnx", case.stem));
        onnx_ac::onnx::save(&tm, &out, &Default::default()).unwrap();
        let checker = common::run_py("check_model.py", &[out.to_str().unwrap()]);
        assert!(checker.starts_with("ok"), "{checker}");
        let g = &tm.graph;
        let inputs: Vec<HostTensor> = g
            .inputs
            .iter()
            .filter(|&&i| g.value(i).initializer.is_none())
            .map(|&i| {
                let name = &g.value(i).name;
                host(
                    name,
                    refs.get(name)
                        .unwrap_or_else(|| panic!("{}: no reference input {name}", case.stem)),
                )
            })
            .collect();
        let mut session = ModelSession::prepare(&out, &RunOptions::default()).unwrap();
        let outputs = session.run(&inputs).unwrap().outputs;
        let by_name: BTreeMap<&str, &HostTensor> =
            outputs.iter().map(|t| (t.name.as_str(), t)).collect();
        let loss = by_name["loss"].to_f64().unwrap()[0];
        let ref_loss = refs["loss"].as_f64().unwrap()[0];
        assert!(
            (loss - ref_loss).abs() <= 1e-5 * ref_loss.abs().max(1.0),
            "{}: loss {loss} vs torch {ref_loss}",
            case.stem
        );
        let grads: Vec<(&String, Vec<f64>)> = refs
            .iter()
            .filter(|(k, _)| k.ends_with(".grad"))
            .map(|(k, t)| (k, t.as_f64().unwrap()))
            .collect();
        let big_g = grads
            .iter()
            .flat_map(|(_, v)| v.iter())
            .fold(0.0f64, |m, x| m.max(x.abs()));
        let mut worst = 0.0f64;
        assert_eq!(
            grads.len(),
            info.grads.len(),
            "{}: gradient count",
            case.stem
        );
        for (name, want) in &grads {
            let got = by_name
                .get(name.as_str())
                .unwrap_or_else(|| panic!("{}: no output {name}", case.stem))
                .to_f64()
                .unwrap();
            let err = got
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            let tol = 1e-4 * (want.iter().fold(0.0f64, |m, x| m.max(x.abs())) + 1e-3 * big_g);
            worst = worst.max(err / tol);
            assert!(
                err <= tol,
                "{}: {name} error {err:e} > tolerance {tol:e}",
                case.stem
            );
        }
        table.push_str(&format!(
            "{:<20} loss {loss:.7} (torch {ref_loss:.7})  largest scaled error {worst:.4}\n",
            case.stem
        ));
    }
    println!("{table}");
}
