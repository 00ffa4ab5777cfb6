//! Per-pass file tests, as Cranelift's filetests (docs/filetests.md): each
//! `passes/tests/<pass>/*.ir` file holds a pipeline of passes (`; run: NAME key=value`
//! lines), a forward graph in the IR text, and after `; expect:` the text of the graph after
//! the last pass (or `; error: ...`). One test walks every case and reports each failing one
//! by path, with a diff. `BLESS=1` rewrites the expectations instead; `FILETEST=substring`
//! runs only the cases whose path holds it.

use onnx_ac_passes::autodiff::{Loss, TrainOptions};
use onnx_ac_passes::ir::{parse_model, print_model_with_data, ValueId};
use onnx_ac_passes::pass::{pass_names, Manager, Unit};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A pass's `key=value` options; each pass takes the keys it knows, the rest is an error.
struct Opts(BTreeMap<String, String>);

impl Opts {
    fn take(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }
    fn done(self, pass: &str) -> Result<(), String> {
        match self.0.keys().next() {
            Some(k) => Err(format!("pass '{pass}' has no option '{k}'")),
            None => Ok(()),
        }
    }
}

/// Runs pass `name` of the pass manager on `unit`, checking the IR after it, with the
/// case's options: `autodiff` takes the loss options ([`train_options`]), `recompute`
/// `drop=NAME,NAME` (the forward values to recompute), and naming `runtime-weights` turns it
/// on (the pipeline runs it only when a plan asks).
fn run_pass(name: &str, mut opts: Opts, unit: &mut Unit) -> Result<(), String> {
    match name {
        "autodiff" => unit.train = Some(train_options(&mut opts)?),
        "recompute" => {
            unit.recompute = match opts.take("drop") {
                None => Vec::new(),
                Some(list) => {
                    let ids = unit.model.graph.value_by_name();
                    list.split(',')
                        .map(|n| ids.get(n).copied().ok_or(format!("drop: no value '{n}'")))
                        .collect::<Result<Vec<ValueId>, _>>()?
                }
            }
        }
        "runtime-weights" => unit.runtime_weights = true,
        _ => {}
    }
    opts.done(name)?;
    Manager::new()
        .verify_each(true)
        .run(unit, name, name)
        .map_err(|e| e.to_string())
}

/// `loss=cross-entropy` (`logits=`, `labels=`; default `logits` and `labels`), `loss=mse`
/// (`target=`, `output=`), `loss=model-output` (the default); `freeze=GLOB,GLOB`;
/// `batch-norm=train`.
fn train_options(opts: &mut Opts) -> Result<TrainOptions, String> {
    let loss = match opts.take("loss").as_deref() {
        None | Some("model-output") => Loss::Auto,
        Some("cross-entropy") => Loss::CrossEntropy {
            logits: opts.take("logits").unwrap_or("logits".into()),
            labels: opts.take("labels").unwrap_or("labels".into()),
        },
        Some("mse") => Loss::Mse {
            output: opts.take("output"),
            target: opts.take("target").unwrap_or("target".into()),
        },
        Some(other) => return Err(format!("no loss '{other}'")),
    };
    let freeze = opts
        .take("freeze")
        .map(|f| f.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let batch_norm_train = match opts.take("batch-norm").as_deref() {
        None | Some("as-exported") => false,
        Some("train") => true,
        Some(other) => return Err(format!("batch-norm={other}: 'train' or 'as-exported'")),
    };
    Ok(TrainOptions {
        loss,
        freeze,
        batch_norm_train,
        ..TrainOptions::default()
    })
}

/// A case file: its text up to `; expect:`, its pipeline and its expectation.
struct Case {
    head: String,
    runs: Vec<(String, Opts, usize)>,
    expect: Option<String>,
}

const EXPECT: &str = "; expect:";

fn read_case(text: &str) -> Result<Case, String> {
    let (head, expect) = match text.find(&format!("\n{EXPECT}\n")) {
        Some(k) => (
            &text[..k + 1],
            Some(text[k + EXPECT.len() + 2..].to_string()),
        ),
        None => (text, None),
    };
    let mut runs = Vec::new();
    for (i, line) in head.lines().enumerate() {
        let Some(run) = line.strip_prefix("; run:") else {
            continue;
        };
        let mut words = run.split_whitespace();
        let name = words
            .next()
            .ok_or(format!("line {}: '; run:' names no pass", i + 1))?;
        let mut opts = BTreeMap::new();
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or(format!("line {}: option '{w}' is not key=value", i + 1))?;
            opts.insert(k.to_string(), v.to_string());
        }
        runs.push((name.to_string(), Opts(opts), i + 1));
    }
    if runs.is_empty() {
        return Err("no '; run: PASS' line".into());
    }
    Ok(Case {
        head: head.to_string(),
        runs,
        expect,
    })
}

/// The text a case expects: the model after the last pass in the data form, with a
/// `; backward` line where the backward starts; or the first error.
fn run_case(case: Case) -> Result<String, String> {
    let model = parse_model(&case.head).map_err(|e| format!("input: {e}"))?;
    let mut unit = Unit::new(model);
    for (name, opts, line) in case.runs {
        if let Err(e) = run_pass(&name, opts, &mut unit) {
            return Ok(format!("; error in {name} (line {line}): {e}\n"));
        }
    }
    let text = print_model_with_data(&unit.model);
    // The text reads back as the same graph: an expectation is a valid input of a case.
    let again = parse_model(&text)
        .map(|m| print_model_with_data(&m))
        .map_err(|e| format!("the output does not parse: {e}"))?;
    if again != text {
        return Err(format!(
            "the output prints differently after a parse:\n{}",
            diff(&text, &again)
        ));
    }
    if unit.info.is_none() {
        return Ok(text);
    }
    let g = &unit.model.graph;
    let first_node = 1 + g.inputs.len() + g.initializers.len();
    let mut out = String::new();
    for (k, line) in text.lines().enumerate() {
        if k == first_node + g.backward_start() {
            out.push_str("; backward\n");
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// A line diff of `want` and `got` (longest common subsequence): `-` lines only in `want`,
/// `+` lines only in `got`, two lines of context.
fn diff(want: &str, got: &str) -> String {
    let a: Vec<&str> = want.lines().collect();
    let b: Vec<&str> = got.lines().collect();
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let near = |k: usize| {
        ops[k.saturating_sub(2)..(k + 3).min(ops.len())]
            .iter()
            .any(|(c, _)| *c != ' ')
    };
    let mut out = String::new();
    let mut skipped = false;
    for (k, (c, line)) in ops.iter().enumerate() {
        if near(k) {
            if skipped {
                out.push_str("  ...\n");
                skipped = false;
            }
            out.push_str(&format!("{c} {line}\n"));
        } else {
            skipped = true;
        }
    }
    out
}

fn case_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).expect("passes/tests") {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "ir") {
                files.push(f);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn filetests() {
    let bless = std::env::var_os("BLESS").is_some_and(|v| v == "1");
    let filter = std::env::var("FILETEST").unwrap_or_default();
    let files = case_files();
    // Every pass has cases (and every case directory is named after a pass).
    for pass in pass_names().into_iter().filter(|_| filter.is_empty()) {
        assert!(
            files.iter().any(|f| f.parent().unwrap().ends_with(pass)),
            "no case for pass '{pass}' in passes/tests/{pass}/"
        );
    }
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in files {
        let shown = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(&path)
            .display()
            .to_string();
        if !shown.contains(&filter) {
            continue;
        }
        ran += 1;
        let dir = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy();
        if !pass_names().contains(&&*dir) {
            failures.push(format!("{shown}: the directory names no pass"));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let case = match read_case(&text) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{shown}: {e}"));
                continue;
            }
        };
        if !case.runs.iter().any(|(name, _, _)| name == &*dir) {
            failures.push(format!("{shown}: no '; run: {dir}' line"));
            continue;
        }
        let head = case.head.clone();
        let expect = case.expect.clone();
        let got = match run_case(case) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{shown}: {e}"));
                continue;
            }
        };
        if bless {
            if expect.as_deref() != Some(&got) {
                std::fs::write(&path, format!("{head}{EXPECT}\n{got}")).unwrap();
                eprintln!("blessed {shown}");
            }
        } else {
            match expect {
                None => failures.push(format!("{shown}: no '{EXPECT}' line (run with BLESS=1)")),
                Some(want) if want != got => failures.push(format!(
                    "{shown}: output differs (- expected, + got)\n{}",
                    diff(&want, &got)
                )),
                Some(_) => {}
            }
        }
    }
    assert!(ran > 0, "no case matches FILETEST={filter}");
    assert!(
        failures.is_empty(),
        "{} of {ran} file tests failed (BLESS=1 rewrites expectations):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
