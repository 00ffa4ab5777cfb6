//! Checks onnx-ac's shape inference against ONNX's own backend node tests.
//!
//! The `onnx` wheel ships the generators of its backend node tests
//! (`onnx.backend.test.case.node`): about 1,900 cases, each a model plus input and expected
//! output tensors. For every case whose nodes all have a shape rule in `ops::FAMILIES`, this test
//! loads the model, forgets every type the file declares for node outputs, runs
//! `infer_shapes` with nothing bound, and requires each graph output's inferred dtype and
//! fully static shape to equal the expected output tensor's.
//!
//! Many cases feed shape parameters (Reduce axes, Slice starts, Resize scales, Tile
//! repeats...) as graph inputs, so their output shape depends on run-time values. Such a
//! case passes if inference is consistent with the expected output (right dtype, rank and
//! every dim it claims to know) and exact once the graph inputs are constants holding the
//! case's input values. Cases are counted under every op type they contain.
//!
//! Cases the loader refuses by design (ai.onnx opset outside 13..=24, other domains,
//! sequence / optional / map values) are counted as skipped.
//!
//! Case folder: `$ONNX_AC_BACKEND_CASES`, else the `.venv` onnx package's
//! `backend/test/data/node` (when the wheel ships it), else generated once into
//! `target/tmp/backend-cases-onnx-<version>` by `scripts/gen_backend_cases.py` with the
//! `.venv` python (`scripts/setup.sh` creates it). See docs/shape-suite.md.
//!
//! `cargo test --test peer_shape_suite -- --nocapture` prints the per-op table.

use onnx_ac::onnx::proto::{type_proto, ModelProto, TensorProto};
use onnx_ac_passes::infer::infer_shapes;
use onnx_ac_passes::ir::{shape_string, DType, Dim, Shape, Tensor};
use onnx_ac_passes::ops;
use protobuf::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Cases that are expected to fail, by case name, each with the reason. A listed case that
/// passes fails the test too, so the list cannot go stale.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

/// Passing cases measured with onnx 1.23.2 minus a small margin: a change that silently
/// skips or breaks many cases (a loader regression, a moved case folder) fails the test.
const MIN_PASSING: usize = 1200;

#[derive(Default)]
struct OpCount {
    cases: usize,
    exact: usize,
    with_values: usize,
    failed: usize,
    skipped: usize,
}

enum Outcome {
    /// Some nodes' ops have no shape rule (the case is outside the suite); whether the
    /// opset is one the loader takes.
    NotRun(BTreeSet<String>, bool),
    /// Refused by the loader by design (opset, domain, non-tensor types).
    Skipped(String),
    /// Every output's dtype and shape inferred exactly.
    Passed,
    /// Exact only once the graph inputs are constants: the output shape depends on their
    /// values (axes, repeats, sizes, scales), and without them inference was consistent
    /// (what it inferred then).
    PassedWithValues(String),
    Failed(String),
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `.venv/lib/pythonX.Y/site-packages`, if the project venv exists.
fn venv_site_packages() -> Option<PathBuf> {
    let lib = workspace_root().join(".venv/lib");
    std::fs::read_dir(&lib)
        .ok()?
        .flatten()
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.join("onnx").is_dir())
}

fn onnx_version(site: &Path) -> String {
    std::fs::read_dir(site)
        .ok()
        .and_then(|rd| {
            rd.flatten().find_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix("onnx-")
                    .and_then(|v| v.strip_suffix(".dist-info"))
                    .map(str::to_string)
            })
        })
        .unwrap_or_else(|| "unknown".into())
}

fn has_cases(dir: &Path) -> bool {
    dir.join("test_abs/model.onnx").is_file()
}

/// The folder holding one sub-folder per case.
fn case_folder() -> PathBuf {
    if let Some(dir) = std::env::var_os("ONNX_AC_BACKEND_CASES") {
        let dir = PathBuf::from(dir);
        assert!(
            has_cases(&dir),
            "ONNX_AC_BACKEND_CASES={} holds no backend node cases (no test_abs/model.onnx)",
            dir.display()
        );
        return dir;
    }
    let site = venv_site_packages().unwrap_or_else(|| {
        panic!(
            "no case folder: set ONNX_AC_BACKEND_CASES, or run scripts/setup.sh to create \
             {}/.venv with the onnx wheel",
            workspace_root().display()
        )
    });
    let shipped = site.join("onnx/backend/test/data/node");
    if has_cases(&shipped) {
        return shipped;
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("backend-cases-onnx-{}", onnx_version(&site)));
    if !has_cases(&out) {
        let python = workspace_root().join(".venv/bin/python");
        let script = workspace_root().join("scripts/gen_backend_cases.py");
        let status = Command::new(&python)
            .arg(&script)
            .arg(&out)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        assert!(status.success(), "{} failed: {status}", script.display());
    }
    out
}

/// Classifies a case before loading it: which ops it uses, and whether the loader refuses
/// it by design.
fn precheck(model: &ModelProto) -> Option<Outcome> {
    let graph = model.graph.as_ref()?;
    let missing: BTreeSet<String> = graph
        .node
        .iter()
        .filter(|n| {
            let standard = n.domain().is_empty() || n.domain() == "ai.onnx";
            !standard || ops::shape_rule(n.op_type()).is_none()
        })
        .map(|n| n.op_type().to_string())
        .collect();
    let lo = onnx_ac::onnx::MIN_OPSET;
    let hi = onnx_ac::onnx::MAX_OPSET;
    let bad_opset = model.opset_import.iter().find(|o| {
        let standard = o.domain().is_empty() || o.domain() == "ai.onnx";
        standard && !(lo..=hi).contains(&o.version())
    });
    if !missing.is_empty() {
        return Some(Outcome::NotRun(missing, bad_opset.is_none()));
    }
    if let Some(o) = bad_opset {
        return Some(Outcome::Skipped(format!(
            "opset {} outside {lo}..={hi}",
            o.version()
        )));
    }
    for vi in graph.input.iter().chain(&graph.output) {
        let kind = match vi.type_.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(_)) | None => continue,
            Some(type_proto::Value::SequenceType(_)) => "sequence",
            Some(type_proto::Value::OptionalType(_)) => "optional",
            Some(type_proto::Value::MapType(_)) => "map",
            Some(_) => "non-tensor",
        };
        return Some(Outcome::Skipped(format!("{kind} type")));
    }
    None
}

fn run_case(dir: &Path) -> (BTreeSet<String>, Outcome) {
    let bytes = match std::fs::read(dir.join("model.onnx")) {
        Ok(b) => b,
        Err(e) => return (BTreeSet::new(), Outcome::Failed(format!("read: {e}"))),
    };
    let proto = match ModelProto::parse_from_bytes(&bytes) {
        Ok(p) => p,
        Err(e) => return (BTreeSet::new(), Outcome::Failed(format!("parse: {e}"))),
    };
    let op_types: BTreeSet<String> = proto
        .graph
        .as_ref()
        .map(|g| g.node.iter().map(|n| n.op_type().to_string()).collect())
        .unwrap_or_default();
    if let Some(o) = precheck(&proto) {
        return (op_types, o);
    }
    (op_types, check(dir))
}

/// What inference said about one graph output.
struct Inferred {
    name: String,
    producer: String,
    dtype: Option<DType>,
    shape: Option<Shape>,
}

/// Loads the model, forgets the types the file declares for node outputs (inference fills
/// unknown inferred dims from the file's, which would hide a rule's gaps) and infers.
/// With `freeze_inputs`, the graph inputs become initializers holding their `input_<j>.pb`
/// values: shape parameters (axes, starts, repeats, sizes, scales, K...) are then constants,
/// as they usually are in exported models.
fn infer_case(dir: &Path, freeze_inputs: bool) -> Result<Vec<Inferred>, Outcome> {
    let path = dir.join("model.onnx");
    let mut model = match onnx_ac::onnx::load(&path) {
        Ok(m) => m,
        Err(e @ onnx_ac::onnx::OnnxError::UnsupportedOpset { .. })
        | Err(e @ onnx_ac::onnx::OnnxError::UnsupportedDomain { .. }) => {
            return Err(Outcome::Skipped(e.to_string()))
        }
        Err(e) => return Err(Outcome::Failed(format!("load: {e}"))),
    };
    let opset = model.opset().unwrap_or(onnx_ac::onnx::MIN_OPSET);
    let g = &mut model.graph;
    for v in &mut g.values {
        if v.producer.is_some() {
            v.dtype = None;
            v.shape = None;
        }
    }
    if freeze_inputs {
        for (j, id) in g.inputs.clone().into_iter().enumerate() {
            let t = read_tensor(&dir.join(format!("test_data_set_0/input_{j}.pb")))
                .map_err(Outcome::Failed)?;
            let Some(dtype) = DType::from_onnx(t.data_type()) else {
                continue;
            };
            // numpy_helper writes raw_data for every numeric type.
            let Some(raw) = t.raw_data.clone() else {
                continue;
            };
            g.value_mut(id).initializer = Some(Tensor::raw(dtype, t.dims.clone(), raw));
            g.inputs.retain(|&i| i != id);
            g.initializers.push(id);
        }
    }
    if let Err(e) = infer_shapes(g, opset) {
        return Err(Outcome::Failed(format!("infer: {e}")));
    }
    Ok(g.outputs
        .iter()
        .map(|&o| {
            let v = g.value(o);
            Inferred {
                name: v.name.clone(),
                producer: v
                    .producer
                    .map_or_else(|| "graph input".into(), |p| g.node(p).op_type.clone()),
                dtype: v.dtype,
                shape: v.shape.clone(),
            }
        })
        .collect())
}

fn read_tensor(file: &Path) -> Result<TensorProto, String> {
    std::fs::read(file)
        .map_err(|e| e.to_string())
        .and_then(|b| TensorProto::parse_from_bytes(&b).map_err(|e| e.to_string()))
        .map_err(|e| format!("{}: {e}", file.display()))
}

fn show(dtype: Option<DType>, shape: Option<&Shape>) -> String {
    let dt = dtype.map_or_else(|| "?".into(), |d| d.name());
    match shape {
        Some(s) => format!("{dt}{}", shape_string(Some(s))),
        None => format!("{dt}[unranked]"),
    }
}

/// `Ok(None)`: every output has its expected tensor's dtype and static shape.
/// `Ok(Some(_))`: consistent (right dtype; rank and every known dim right) but some dim or
/// the rank unknown. `Err(_)`: contradicts the expected output. The message names the
/// first output at fault.
fn compare(dir: &Path, got: &[Inferred]) -> Result<Option<String>, String> {
    let mut inexact = None;
    for (j, out) in got.iter().enumerate() {
        let t = read_tensor(&dir.join(format!("test_data_set_0/output_{j}.pb")))?;
        let want_dt = DType::from_onnx(t.data_type());
        let want: Shape = t.dims.iter().map(|&d| Dim::Known(d)).collect();
        if out.dtype == want_dt && out.shape.as_ref() == Some(&want) {
            continue;
        }
        let msg = format!(
            "output '{}' ({}): inferred {}, expected {}",
            out.name,
            out.producer,
            show(out.dtype, out.shape.as_ref()),
            show(want_dt, Some(&want)),
        );
        let consistent = out.dtype == want_dt
            && out.shape.as_ref().is_none_or(|s| {
                s.len() == want.len()
                    && s.iter()
                        .zip(&want)
                        .all(|(a, b)| a.known().is_none() || a == b)
            });
        if !consistent {
            return Err(msg);
        }
        inexact.get_or_insert(msg);
    }
    Ok(inexact)
}

/// Runs one case: exact with the inputs at run time, else consistent then and exact once
/// the inputs are constants.
fn check(dir: &Path) -> Outcome {
    let run = |freeze| {
        infer_case(dir, freeze).and_then(|got| compare(dir, &got).map_err(Outcome::Failed))
    };
    let at_run_time = match run(false) {
        Ok(None) => return Outcome::Passed,
        Ok(Some(msg)) => msg,
        Err(o) => return o,
    };
    match run(true) {
        Ok(None) => Outcome::PassedWithValues(at_run_time),
        Ok(Some(msg)) => Outcome::Failed(format!("{msg} (even with the inputs constant)")),
        Err(Outcome::Failed(msg)) => Outcome::Failed(format!("{msg} (with the inputs constant)")),
        Err(o) => o,
    }
}

#[test]
fn backend_node_cases_match_inferred_shapes() {
    let root = case_folder();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    dirs.sort();

    // Cases are independent; one worker per core (CI has two) keeps the debug build at
    // about a second.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let chunk = dirs.len().div_ceil(workers).max(1);
    let results: Vec<(String, BTreeSet<String>, Outcome)> = std::thread::scope(|s| {
        let handles: Vec<_> = dirs
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|d| {
                            let name = d.file_name().unwrap().to_string_lossy().into_owned();
                            let (ops, o) = run_case(d);
                            (name, ops, o)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });

    let allow: BTreeMap<&str, &str> = KNOWN_FAILURES.iter().copied().collect();
    let mut per_op: BTreeMap<String, OpCount> = BTreeMap::new();
    let mut total = OpCount::default();
    let mut not_run: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut skip_reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut unexpected = Vec::new();
    let mut stale = Vec::new();
    let mut with_values = Vec::new();
    for (name, op_types, outcome) in &results {
        let tally: fn(&mut OpCount) = match outcome {
            Outcome::NotRun(missing, opset_ok) => {
                for op in missing {
                    let n: &mut (usize, usize) = not_run.entry(op.clone()).or_default();
                    n.0 += 1;
                    n.1 += usize::from(*opset_ok);
                }
                continue;
            }
            Outcome::Skipped(reason) => {
                *skip_reasons.entry(reason.clone()).or_default() += 1;
                |c| c.skipped += 1
            }
            Outcome::Passed => |c| c.exact += 1,
            Outcome::PassedWithValues(at_run_time) => {
                with_values.push(format!("  {name}: {at_run_time}"));
                |c| c.with_values += 1
            }
            Outcome::Failed(reason) => {
                let known = allow.get(name.as_str());
                failures.push(format!(
                    "  {name}: {reason}{}",
                    known.map_or(String::new(), |why| format!("  [allowlisted: {why}]"))
                ));
                if known.is_none() {
                    unexpected.push(name.clone());
                }
                |c| c.failed += 1
            }
        };
        if matches!(outcome, Outcome::Passed | Outcome::PassedWithValues(_))
            && allow.contains_key(name.as_str())
        {
            stale.push(name.clone());
        }
        total.cases += 1;
        tally(&mut total);
        for op in op_types {
            let c = per_op.entry(op.clone()).or_default();
            c.cases += 1;
            tally(c);
        }
    }

    // A Markdown table, pasted as is into docs/shape-suite.md.
    println!("backend node cases from {}\n", root.display());
    println!("| op | cases | passed | of which with inputs constant | failed | skipped |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (op, c) in per_op.iter().chain([(&"**total**".to_string(), &total)]) {
        println!(
            "| {op} | {} | {} | {} | {} | {} |",
            c.cases,
            c.exact + c.with_values,
            c.with_values,
            c.failed,
            c.skipped
        );
    }
    let n_passed = total.exact + total.with_values;
    println!(
        "\n{} cases: {} not run (an op without a rule), {} skipped by design, {} run: \
         {n_passed} passed ({} exact, {} with inputs constant), {} failed \
         ({} allowlisted)",
        results.len(),
        results.len() - total.cases,
        total.skipped,
        total.cases - total.skipped,
        total.exact,
        total.with_values,
        total.failed,
        total.failed - unexpected.len(),
    );
    println!("skipped by design:");
    for (r, n) in &skip_reasons {
        println!("  {n:>4}  {r}");
    }
    let mut missing: Vec<_> = not_run.into_iter().collect();
    missing.sort_by(|a, b| (b.1 .1, b.1 .0).cmp(&(a.1 .1, a.1 .0)).then(a.0.cmp(&b.0)));
    let missing: Vec<String> = missing
        .iter()
        .map(|(op, (n, in_range))| format!("{op} {in_range}/{n}"))
        .collect();
    println!(
        "ops without a rule (cases in opsets {}..={} / all cases): {}",
        onnx_ac::onnx::MIN_OPSET,
        onnx_ac::onnx::MAX_OPSET,
        missing.join(", ")
    );
    if std::env::var_os("ONNX_AC_SUITE_VERBOSE").is_some() {
        println!(
            "passed only with the inputs constant (at run time):\n{}",
            with_values.join("\n")
        );
    }
    if !failures.is_empty() {
        println!("failures:\n{}", failures.join("\n"));
    }

    assert!(
        unexpected.is_empty(),
        "{} backend cases fail shape inference (see the list above): {}",
        unexpected.len(),
        unexpected.join(", ")
    );
    assert!(
        stale.is_empty(),
        "allowlisted cases now pass; remove them from KNOWN_FAILURES: {}",
        stale.join(", ")
    );
    assert!(
        n_passed >= MIN_PASSING,
        "only {n_passed} cases passed, fewer than the floor {MIN_PASSING}"
    );
}
