//! Mutated models (random bytes and structured edits) never panic.

use super::*;

/// Byte positions worth mutating: the node list at the start, the initializer headers
/// (names, dims, data types) and the graph inputs/outputs at the end, not the weights.
fn hot_positions(bytes: &[u8]) -> Vec<usize> {
    let mut hot: Vec<usize> = (0..1100.min(bytes.len())).collect();
    hot.extend(bytes.len().saturating_sub(200)..bytes.len());
    for (i, w) in bytes.windows(3).enumerate() {
        if w == b"fc1" || w == b"fc2" || w == b"fc3" {
            hot.extend(i.saturating_sub(24)..(i + 24).min(bytes.len()));
        }
    }
    hot.sort_unstable();
    hot.dedup();
    hot
}

fn mutate(rng: &mut Rng, bytes: &[u8], hot: &[usize]) -> (Vec<u8>, String) {
    let mut b = bytes.to_vec();
    let pos = |rng: &mut Rng, len: usize| {
        if rng.below(5) == 0 {
            rng.below(len)
        } else {
            hot[rng.below(hot.len())].min(len - 1)
        }
    };
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let p = pos(rng, b.len());
        match rng.below(7) {
            0 => {
                let v = rng.next() as u8;
                what.push(format!("set [{p}]={v:#04x}"));
                b[p] = v;
            }
            1 => {
                let bit = rng.below(8);
                what.push(format!("flip [{p}] bit {bit}"));
                b[p] ^= 1 << bit;
            }
            2 => {
                let v = [0x00, 0x01, 0x7f, 0x80, 0xff][rng.below(5)];
                what.push(format!("set [{p}]={v:#04x}"));
                b[p] = v;
            }
            3 => {
                what.push(format!("truncate at {p}"));
                b.truncate(p.max(1));
            }
            4 => {
                let n = (1 + rng.below(8)).min(b.len() - p);
                what.push(format!("delete [{p}..{}]", p + n));
                b.drain(p..p + n);
            }
            5 => {
                let src = pos(rng, b.len());
                let n = (1 + rng.below(16)).min(b.len() - src);
                what.push(format!("insert [{src}..{}] at {p}", src + n));
                let chunk = b[src..src + n].to_vec();
                b.splice(p..p, chunk);
            }
            _ => {
                // A 10-byte varint of all ones: -1 or u64::MAX wherever a number was.
                let n = 10.min(b.len() - p);
                what.push(format!("varint max at {p}"));
                for (k, x) in b[p..p + n].iter_mut().enumerate() {
                    *x = if k + 1 < n { 0xff } else { 0x01 };
                }
            }
        }
        if b.is_empty() {
            b.push(0);
        }
    }
    (b, what.join(", "))
}

#[test]
fn mutated_model_never_panics() {
    let src = std::fs::read(Path::new(ROOT).join(MLP)).unwrap();
    let hot = hot_positions(&src);
    let tmp = tempfile::tempdir().unwrap();
    let path: PathBuf = tmp.path().join("mutant.onnx");
    // ONNX_AC_FUZZ_ITERS / ONNX_AC_FUZZ_SEED run a longer or different fuzz by hand.
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let iters = env("ONNX_AC_FUZZ_ITERS", 400);
    let seed = env("ONNX_AC_FUZZ_SEED", 1);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let (mut ok, mut refused) = (0, 0);
    let mut panics = Vec::new();
    let mut messages = BTreeMap::new();
    for i in 0..iters {
        let (bytes, what) = mutate(&mut rng, &src, &hot);
        std::fs::write(&path, &bytes).unwrap();
        let result = std::panic::catch_unwind(|| {
            let r = onnx_ac::load_model(&path, &BTreeMap::new());
            r.map_err(|e| (e.exit_code(), e.to_string()))
        });
        match result {
            Ok(Ok(_)) => ok += 1,
            Ok(Err((code, msg))) => {
                refused += 1;
                assert_eq!(code, 2, "mutation {i} ({what}): exit code {code}: {msg}");
                assert!(
                    !msg.contains('\n'),
                    "mutation {i} ({what}): multi-line: {msg}"
                );
                assert!(msg.contains("mutant.onnx"), "mutation {i} ({what}): {msg}");
                messages.entry(msg).or_insert(what);
            }
            Err(_) => panics.push(format!("mutation {i}: {what}")),
        }
    }
    if std::env::var_os("ONNX_AC_FUZZ_VERBOSE").is_some() {
        for (msg, what) in &messages {
            eprintln!("{what}\n    {msg}");
        }
    }
    assert!(panics.is_empty(), "panics:\n{}", panics.join("\n"));
    // The fuzz must exercise both sides.
    assert!(ok > 20 && refused > 100, "ok {ok}, refused {refused}");
}

/// An unwritable -o: one line naming the output, exit 2, no staging file left behind.
#[test]
fn unwritable_output() {
    let tmp = tempfile::tempdir().unwrap();
    let missing_dir = tmp.path().join("no_such_dir").join("out.onnx");
    let m = missing_dir.to_str().unwrap();
    let is_dir = tmp.path().to_str().unwrap();
    for (args, culprit) in [
        (vec!["train-graph", MLP, "-o", m], m),
        (vec!["train-graph", MLP, "-o", is_dir], is_dir),
    ] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.lines().count() == 1,
            "{args:?}: {err}"
        );
        assert!(
            err.contains(culprit) && err.contains("cannot write"),
            "{err}"
        );
        assert!(!err.contains("at path"), "names a staging file: {err}");
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?}: left {left:?}");
    }
}

/// Structured mutations (attribute ints, small int64 initializers, Constant tensors, input
/// dims set to extreme values) through the library: each mutant loads, or is refused with
/// exit code 2 and one line naming the file, never a panic or an abort. Deterministic
/// (fixed seed; each model has its own generator, so `MODEL mutation I` replays alone) and
/// bounded: 3 x 600 mutants, about 10 s in release on 2 cores. ONNX_AC_FUZZ_ITERS,
/// ONNX_AC_FUZZ_SEED and ONNX_AC_FUZZ_VERBOSE as above run a longer or different fuzz.
///
/// An abort (say a multi-terabyte allocation, which `catch_unwind` cannot catch) leaves the
/// mutant being loaded in `target/tmp/structured_mutant.onnx` and its description in
/// `structured_mutant.txt` beside it; a run that completes removes them.
#[test]
fn structured_mutations_never_panic() {
    use onnx_ac::onnx::proto::{self, attribute_proto::AttributeType as AT};
    use protobuf::Message;

    const EXTREME: [i64; 12] = [
        0,
        -1,
        -2,
        1 << 31,
        1 << 32,
        1 << 40,
        1 << 62,
        i64::MAX,
        i64::MIN,
        i64::MIN + 1,
        -(1 << 40),
        7,
    ];
    fn set_i64(raw: &mut [u8], rng: &mut Rng) -> String {
        let i = rng.below(raw.len() / 8);
        let v = EXTREME[rng.below(EXTREME.len())];
        raw[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        format!("[{i}]={v}")
    }
    fn mutate(rng: &mut Rng, g: &mut proto::GraphProto) -> String {
        let v = EXTREME[rng.below(EXTREME.len())];
        match rng.below(3) {
            0 => {
                let k = rng.below(g.node.len());
                let n = &mut g.node[k];
                if n.attribute.is_empty() {
                    return String::new();
                }
                let j = rng.below(n.attribute.len());
                let what = format!("node {} attr {}", n.name(), n.attribute[j].name());
                let a = &mut n.attribute[j];
                match a.type_.map(|t| t.enum_value()) {
                    Some(Ok(AT::INT)) => a.set_i(v),
                    Some(Ok(AT::INTS)) if !a.ints.is_empty() => {
                        let i = rng.below(a.ints.len());
                        a.ints[i] = v;
                    }
                    Some(Ok(AT::TENSOR)) => {
                        let t = a.t.mut_or_insert_default();
                        let is_i64 = t.data_type() == 7;
                        match t.raw_data.as_mut() {
                            Some(raw) if is_i64 && raw.len() >= 8 => {
                                return format!("{what} {}", set_i64(raw, rng))
                            }
                            _ => return String::new(),
                        }
                    }
                    _ => return String::new(),
                }
                format!("{what}={v}")
            }
            1 => {
                let small: Vec<usize> = (0..g.initializer.len())
                    .filter(|&i| {
                        let t = &g.initializer[i];
                        t.data_type() == 7 && t.raw_data.as_ref().is_some_and(|r| r.len() >= 8)
                    })
                    .collect();
                if small.is_empty() {
                    return String::new();
                }
                let t = &mut g.initializer[small[rng.below(small.len())]];
                let name = t.name().to_string();
                format!("init {name} {}", set_i64(t.raw_data.as_mut().unwrap(), rng))
            }
            _ => {
                let k = rng.below(g.input.len());
                let Some(proto::type_proto::Value::TensorType(tt)) =
                    g.input[k].type_.as_mut().and_then(|t| t.value.as_mut())
                else {
                    return String::new();
                };
                let dims = &mut tt.shape.mut_or_insert_default().dim;
                if dims.is_empty() {
                    return String::new();
                }
                let i = rng.below(dims.len());
                let v = [0, 1, 3, 1 << 20, 1 << 31][rng.below(5)];
                dims[i].set_dim_value(v);
                format!("input {k} dim {i}={v}")
            }
        }
    }

    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let iters = env("ONNX_AC_FUZZ_ITERS", 600);
    let seed = env("ONNX_AC_FUZZ_SEED", 1);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("structured_mutant.onnx");
    let what_path = path.with_extension("txt");
    let (mut ok, mut refused) = (0, 0);
    let mut bad = Vec::new();
    let mut messages = BTreeMap::new();
    for (k, model) in ["cnn.ts17", "cnn.dyn18", "bert.dyn18"]
        .into_iter()
        .enumerate()
    {
        let src = std::fs::read(Path::new(ROOT).join(format!("fixtures/models/{model}.onnx")));
        let src = proto::ModelProto::parse_from_bytes(&src.unwrap()).unwrap();
        let mut rng = Rng((seed.wrapping_add(k as u64)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        for i in 0..iters {
            let mut m = src.clone();
            let what = mutate(&mut rng, m.graph.as_mut().unwrap());
            if what.is_empty() {
                continue;
            }
            let what = format!("{model} mutation {i}: {what}");
            std::fs::write(&path, m.write_to_bytes().unwrap()).unwrap();
            std::fs::write(&what_path, format!("{what}\n")).unwrap();
            let r = std::panic::catch_unwind(|| {
                onnx_ac::load_model(&path, &BTreeMap::new())
                    .map_err(|e| (e.exit_code(), e.to_string()))
            });
            match r {
                Ok(Ok(_)) => ok += 1,
                Ok(Err((code, msg))) => {
                    refused += 1;
                    if code != 2 || msg.contains('\n') || !msg.contains("structured_mutant.onnx") {
                        bad.push(format!("{what}: exit code {code}: {msg}"));
                    }
                    messages.entry(msg).or_insert(what);
                }
                Err(_) => bad.push(format!("{what}: panicked")),
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&what_path);
    if std::env::var_os("ONNX_AC_FUZZ_VERBOSE").is_some() {
        for (msg, what) in &messages {
            eprintln!("{what}\n    {msg}");
        }
    }
    assert!(bad.is_empty(), "bad outcomes:\n{}", bad.join("\n"));
    // The fuzz must exercise both sides.
    assert!(ok > 100 && refused > 100, "ok {ok}, refused {refused}");
}
