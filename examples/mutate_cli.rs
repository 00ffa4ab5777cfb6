//! Field-aware mutation fuzzer over the fixtures, through the CLI (issue #12, "Done when").
//!
//! `cargo run --release --example mutate_cli -- [SECONDS] [SEED] [OUT_DIR] [MODE]` (defaults:
//! 600, 1, a temporary folder, `plan`; build the binary first: `cargo build --release --bins
//! --examples`). Each mutant is a fixture (`fixtures/models/*.onnx`, and the parseable
//! `fixtures/fail/*.onnx`) with one to three protobuf fields changed: attribute values and
//! types, node op types, inputs and outputs, initializer types, dims, data and external-data
//! entries, graph input shapes, opsets, IR version. Each is run through `onnx-ac inspect`
//! and, by MODE:
//!
//! - `plan`: `onnx-ac MODEL --budget 50%act --best-effort --cost analytic -o OUT`;
//! - `verify`: `onnx-ac MODEL --budget 50%act --best-effort --cost fixed --verify --runs 1
//!   -o OUT` (ONNX Runtime runs both graphs);
//! - `measured`: `onnx-ac profile MODEL --runs 1 --warmup 0 -o P.json` and `onnx-ac MODEL
//!   --budget 50%act --best-effort --cost measured --runs 1 -o OUT` (profiling).
//!
//! The ONNX Runtime modes (`verify`, `measured`) mutate only the small fixtures (files under
//! 200 kB: the MLPs and CNNs) and the fail fixtures, run `inspect --json`, and skip the ONNX
//! Runtime commands of a mutant whose training step (`plain_peak_bytes`) is above 256 MiB
//! (a mutated batch of 2^20 makes an MLP step of 3 GiB, minutes of honest work here), so
//! that a run takes seconds. Each
//! command must exit 0, 2 or 3 without a panic message and within 60 s; anything else is a
//! finding, kept in `OUT_DIR/finding-N.onnx` with its mutation and output in
//! `finding-N.txt`. Prints the runs, the outcomes and the distinct error messages' count.

use onnx_ac::onnx::proto::{self, attribute_proto::AttributeType as AT};
use protobuf::Message;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// xorshift64*: fixed seed, so a run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

const EXTREME: [i64; 14] = [
    0,
    -1,
    -2,
    1,
    2,
    3,
    1 << 31,
    1 << 32,
    1 << 40,
    i64::MAX,
    i64::MIN,
    -(1 << 40),
    7,
    64,
];
const FLOATS: [f32; 8] = [0.0, -0.0, 1e30, -1e30, f32::NAN, f32::INFINITY, 1e-30, 0.5];

/// One field change; returns what it did (empty: nothing applicable).
fn mutate(rng: &mut Rng, m: &mut proto::ModelProto) -> String {
    let g = m.graph.mut_or_insert_default();
    let mut value_names: Vec<String> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().chain(n.input.iter()).cloned())
        .chain(g.initializer.iter().map(|t| t.name().to_string()))
        .collect();
    if value_names.is_empty() {
        value_names.push("x".into());
    }
    let ops: Vec<String> = g.node.iter().map(|n| n.op_type().to_string()).collect();
    let v = rng.pick(&EXTREME);
    match rng.below(16) {
        0..=3 if !g.node.is_empty() => {
            let k = rng.below(g.node.len());
            let n = &mut g.node[k];
            if n.attribute.is_empty() {
                return String::new();
            }
            let j = rng.below(n.attribute.len());
            let what = format!("node {} attr {}", n.name(), n.attribute[j].name());
            let a = &mut n.attribute[j];
            match rng.below(6) {
                0 => {
                    a.set_i(v);
                    format!("{what} i={v}")
                }
                1 => {
                    let len = rng.below(5);
                    a.ints = (0..len).map(|_| rng.pick(&EXTREME)).collect();
                    format!("{what} ints={:?}", a.ints)
                }
                2 => {
                    let f = rng.pick(&FLOATS);
                    a.set_f(f);
                    format!("{what} f={f}")
                }
                3 => {
                    let t = rng.pick(&[
                        AT::UNDEFINED,
                        AT::FLOAT,
                        AT::INT,
                        AT::STRING,
                        AT::TENSOR,
                        AT::GRAPH,
                        AT::FLOATS,
                        AT::INTS,
                        AT::STRINGS,
                    ]);
                    a.set_type(t);
                    format!("{what} type={t:?}")
                }
                4 => {
                    let t = a.t.mut_or_insert_default();
                    let is_i64 = t.data_type() == 7;
                    match t.raw_data.as_mut() {
                        Some(raw) if raw.len() >= 8 && is_i64 => {
                            let i = rng.below(raw.len() / 8);
                            raw[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
                            format!("{what} tensor[{i}]={v}")
                        }
                        _ => {
                            t.dims = vec![rng.pick(&EXTREME)];
                            format!("{what} tensor dims={:?}", t.dims)
                        }
                    }
                }
                _ => {
                    n.attribute.remove(j);
                    format!("{what} removed")
                }
            }
        }
        4 if !g.node.is_empty() => {
            let k = rng.below(g.node.len());
            let op = ops[rng.below(ops.len())].clone();
            let what = format!(
                "node {} op {} -> {op}",
                g.node[k].name(),
                g.node[k].op_type()
            );
            g.node[k].set_op_type(op);
            what
        }
        5 if !g.node.is_empty() => {
            let k = rng.below(g.node.len());
            let n = &mut g.node[k];
            let what = format!("node {}", n.name());
            match rng.below(4) {
                0 if !n.input.is_empty() => {
                    let i = rng.below(n.input.len());
                    let to = if rng.below(4) == 0 {
                        String::new()
                    } else {
                        value_names[rng.below(value_names.len())].clone()
                    };
                    n.input[i] = to.clone();
                    format!("{what} input {i} -> '{to}'")
                }
                1 if !n.input.is_empty() => {
                    n.input.pop();
                    format!("{what} last input removed")
                }
                2 => {
                    let to = value_names[rng.below(value_names.len())].clone();
                    n.input.push(to.clone());
                    format!("{what} input '{to}' added")
                }
                _ if !n.output.is_empty() => {
                    let to = value_names[rng.below(value_names.len())].clone();
                    n.output[0] = to.clone();
                    format!("{what} output 0 -> '{to}'")
                }
                _ => String::new(),
            }
        }
        6 if !g.node.is_empty() => {
            let k = rng.below(g.node.len());
            if rng.below(2) == 0 {
                let n = g.node.remove(k);
                format!("node {} removed", n.name())
            } else {
                let n = g.node[k].clone();
                let to = rng.below(g.node.len());
                g.node.insert(to, n.clone());
                format!("node {} duplicated at {to}", n.name())
            }
        }
        7..=9 if !g.initializer.is_empty() => {
            let k = rng.below(g.initializer.len());
            let t = &mut g.initializer[k];
            let what = format!("initializer {}", t.name());
            match rng.below(6) {
                0 => {
                    let dt = rng.below(25) as i32;
                    t.set_data_type(dt);
                    format!("{what} data_type={dt}")
                }
                1 if !t.dims.is_empty() => {
                    let i = rng.below(t.dims.len());
                    t.dims[i] = v;
                    format!("{what} dims[{i}]={v}")
                }
                2 => {
                    let raw = t.raw_data.get_or_insert_with(Vec::new);
                    let len = rng.below(raw.len() + 9);
                    raw.resize(len, 0xff);
                    format!("{what} raw_data len {len}")
                }
                3 => match t.raw_data.as_mut() {
                    Some(raw) if raw.len() >= 8 => {
                        let i = rng.below(raw.len() / 8);
                        raw[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
                        format!("{what} raw[{i}]={v}")
                    }
                    _ => String::new(),
                },
                4 => {
                    t.set_data_location(proto::tensor_proto::DataLocation::EXTERNAL);
                    let loc = rng.pick(&["w.bin", "../w.bin", "/etc/passwd", "", "a/../../x"]);
                    let off = rng.pick(&EXTREME);
                    let mut e = proto::StringStringEntryProto::new();
                    e.set_key("location".into());
                    e.set_value(loc.into());
                    let mut o = proto::StringStringEntryProto::new();
                    o.set_key("offset".into());
                    o.set_value(off.to_string());
                    t.external_data = vec![e, o];
                    format!("{what} external '{loc}' offset {off}")
                }
                _ => {
                    t.dims.push(rng.pick(&[0, 1, 2, 1 << 20]));
                    format!("{what} rank + 1")
                }
            }
        }
        10 | 11 if !g.input.is_empty() => {
            let k = rng.below(g.input.len());
            let Some(tt) = g.input[k]
                .type_
                .as_mut()
                .and_then(|t| t.value.as_mut())
                .and_then(|v| match v {
                    proto::type_proto::Value::TensorType(tt) => Some(tt),
                    _ => None,
                })
            else {
                return String::new();
            };
            match rng.below(3) {
                0 => {
                    let dt = rng.below(25) as i32;
                    tt.set_elem_type(dt);
                    format!("input {k} elem_type={dt}")
                }
                1 => {
                    let dims = &mut tt.shape.mut_or_insert_default().dim;
                    if dims.is_empty() {
                        return String::new();
                    }
                    let i = rng.below(dims.len());
                    let d = rng.pick(&[0, 1, 3, -1, 1 << 20, 1 << 31, i64::MAX]);
                    dims[i].set_dim_value(d);
                    format!("input {k} dim {i}={d}")
                }
                _ => {
                    let dims = &mut tt.shape.mut_or_insert_default().dim;
                    let mut d = proto::tensor_shape_proto::Dimension::new();
                    d.set_dim_param("n".into());
                    dims.push(d);
                    format!("input {k} rank + 1 (symbolic)")
                }
            }
        }
        12 if !g.output.is_empty() => {
            let k = rng.below(g.output.len());
            let to = value_names[rng.below(value_names.len())].clone();
            g.output[k].set_name(to.clone());
            format!("output {k} -> '{to}'")
        }
        13 if !m.opset_import.is_empty() => {
            let k = rng.below(m.opset_import.len());
            let ver = rng.pick(&[1, 11, 12, 13, 17, 18, 21, 24, 25, 99, -1]);
            m.opset_import[k].set_version(ver);
            format!("opset_import {k} version {ver}")
        }
        14 => {
            let ver = rng.pick(&[0, 3, 7, 8, 13, 14, -1]);
            m.set_ir_version(ver);
            format!("ir_version {ver}")
        }
        _ => {
            // A node or value name taking another's.
            if g.node.len() < 2 {
                return String::new();
            }
            let (a, b) = (rng.below(g.node.len()), rng.below(g.node.len()));
            let name = g.node[b].name().to_string();
            g.node[a].set_name(name.clone());
            format!("node {a} named '{name}'")
        }
    }
}

#[derive(Default)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

/// The ONNX Runtime modes skip a mutant whose training step (`inspect --json`'s
/// `plain_peak_bytes`) is above this: a mutated batch of 2^20 gives MLP steps of 3 GiB,
/// which run for minutes on a 2-core machine (slow, not hung).
const RUNTIME_PEAK_LIMIT: u64 = 256 << 20;

fn run(exe: &Path, args: &[&str], cwd: &Path, runtime: bool) -> Outcome {
    let mut cmd = Command::new(exe);
    if !runtime {
        // The ONNX Runtime modes find it as the caller says (`ORT_DYLIB_PATH`, or the
        // project's `.venv`); the planning mode needs none.
        cmd.env_remove("ORT_DYLIB_PATH");
    }
    let mut child = cmd
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(cwd.join("stdout.txt")).expect("stdout file"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("run onnx-ac");
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    Outcome {
        code: status.and_then(|s| s.code()),
        stdout: std::fs::read_to_string(cwd.join("stdout.txt")).unwrap_or_default(),
        stderr,
        timed_out: status.is_none(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).map_or(600, |s| s.parse().expect("SECONDS"));
    let seed: u64 = args.get(2).map_or(1, |s| s.parse().expect("SEED"));
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = args
        .get(3)
        .map_or_else(|| tmp.path().join("findings"), PathBuf::from);
    std::fs::create_dir_all(&out_dir).unwrap();
    let mode = args.get(4).map_or("plan", String::as_str);
    assert!(
        matches!(mode, "plan" | "verify" | "measured"),
        "MODE is plan, verify or measured, not {mode}"
    );
    let runtime = mode != "plan";
    let exe = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("onnx-ac");
    assert!(exe.exists(), "build the binary first: {}", exe.display());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds: Vec<(String, proto::ModelProto)> = Vec::new();
    for dir in ["fixtures/models", "fixtures/fail"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "onnx") && p.is_file())
            .collect();
        files.sort();
        for p in files {
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            if runtime && bytes.len() > 200_000 {
                continue;
            }
            if let Ok(m) = proto::ModelProto::parse_from_bytes(&bytes) {
                if m.graph.is_some() {
                    seeds.push((p.file_name().unwrap().to_string_lossy().into(), m));
                }
            }
        }
    }
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let model = work.join("mutant.onnx");
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let t0 = Instant::now();
    let (mut mutants, mut runs, mut findings, mut skipped) = (0u64, 0u64, 0u64, 0u64);
    let mut codes: BTreeMap<(String, Option<i32>), u64> = BTreeMap::new();
    let mut messages = std::collections::HashSet::new();
    while t0.elapsed().as_secs() < seconds {
        let (name, src) = &seeds[rng.below(seeds.len())];
        let mut m = src.clone();
        let mut what = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let w = mutate(&mut rng, &mut m);
            if !w.is_empty() {
                what.push(w);
            }
        }
        if what.is_empty() {
            continue;
        }
        mutants += 1;
        let what = format!("{name}: {}", what.join("; "));
        let bytes = m.write_to_bytes().unwrap();
        std::fs::write(&model, &bytes).unwrap();
        let _ = std::fs::remove_file(work.join("out.onnx"));
        let _ = std::fs::remove_file(work.join("p.json"));
        let plan = ["mutant.onnx", "--budget", "50%act", "--best-effort"];
        let mut commands = vec![(
            "inspect",
            if runtime {
                vec!["inspect", "mutant.onnx", "--json"]
            } else {
                vec!["inspect", "mutant.onnx"]
            },
        )];
        match mode {
            "plan" => commands.push((
                "main",
                [&plan[..], &["--cost", "analytic", "-o", "out.onnx"]].concat(),
            )),
            "verify" => commands.push((
                "main --verify",
                [
                    &plan[..],
                    &[
                        "--cost", "fixed", "--verify", "--runs", "1", "-o", "out.onnx",
                    ],
                ]
                .concat(),
            )),
            _ => {
                commands.push((
                    "profile",
                    vec![
                        "profile",
                        "mutant.onnx",
                        "--runs",
                        "1",
                        "--warmup",
                        "0",
                        "-o",
                        "p.json",
                    ],
                ));
                commands.push((
                    "main --cost measured",
                    [
                        &plan[..],
                        &["--cost", "measured", "--runs", "1", "-o", "out.onnx"],
                    ]
                    .concat(),
                ));
            }
        }
        let mut too_large = false;
        for (cmd, argv) in commands {
            if runtime && cmd != "inspect" && too_large {
                skipped += 1;
                break;
            }
            runs += 1;
            let o = run(&exe, &argv, &work, runtime);
            if cmd == "inspect" {
                too_large = serde_json::from_str::<serde_json::Value>(&o.stdout)
                    .ok()
                    .and_then(|v| v["activations"]["plain_peak_bytes"].as_u64())
                    .is_some_and(|p| p > RUNTIME_PEAK_LIMIT);
            }
            *codes.entry((cmd.into(), o.code)).or_default() += 1;
            if let Some(line) = o.stderr.lines().find(|l| l.starts_with("error: ")) {
                messages.insert(line.replace(&*work.to_string_lossy(), "."));
            }
            let bad = o.timed_out
                || !matches!(o.code, Some(0 | 2 | 3))
                || o.stderr.contains("panicked")
                || o.stderr.contains("RUST_BACKTRACE");
            if bad {
                findings += 1;
                let base = out_dir.join(format!("finding-{findings}"));
                std::fs::write(base.with_extension("onnx"), &bytes).unwrap();
                let report = format!(
                    "{what}\ncommand: onnx-ac {}\nexit: {:?} timed out: {}\n{}",
                    argv.join(" "),
                    o.code,
                    o.timed_out,
                    o.stderr
                );
                std::fs::write(base.with_extension("txt"), &report).unwrap();
                eprintln!("FINDING {findings}: {report}");
                break;
            }
        }
    }
    println!(
        "{mutants} mutants, {runs} runs in {:.0} s (seed {seed}, mode {mode}): {findings} findings, {} distinct error messages",
        t0.elapsed().as_secs_f64(),
        messages.len()
    );
    if runtime {
        println!("  mutants skipped, training step above {RUNTIME_PEAK_LIMIT} bytes: {skipped}");
    }
    for ((cmd, code), n) in &codes {
        println!("  {cmd} exit {code:?}: {n}");
    }
    if findings > 0 {
        println!("findings in {}", out_dir.display());
        // Keep the folder when it is the temporary one.
        std::mem::forget(tmp);
        std::process::exit(1);
    }
}
