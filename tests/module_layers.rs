//! The library's modules form layers (issue #14): no import cycle between the top-level
//! modules of `src/`, and no library module reaches the binary's `cli` or `commands`.
//! Dependencies are read from the sources: every `crate::NAME` path and every
//! `use crate::{NAME::…}` group outside `#[cfg(test)]` code.

use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The binary's modules (src/main.rs): the library must not depend on them.
const BINARY: &[&str] = &["main", "cli", "commands"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Identifiers following `crate::` (and the first of each item of `use crate::{…}`).
fn crate_refs(src: &str) -> Vec<String> {
    let code: String = src
        .split("#[cfg(test)]")
        .next()
        .unwrap()
        .lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut refs = Vec::new();
    for (k, _) in code.match_indices("crate::") {
        let rest = &code[k + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let body = &group[..group.find("};").unwrap_or(group.len())];
            let mut depth = 0;
            let mut item = String::new();
            for ch in body.chars().chain([',']) {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        refs.push(ident(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(ch);
            }
        } else {
            refs.push(ident(rest));
        }
    }
    refs.retain(|r| r.starts_with(|c: char| c.is_lowercase()));
    refs
}

fn module_graph() -> BTreeMap<String, Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || (top == "onnx" && rel.starts_with("onnx/proto")) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let entry = deps.entry(top.clone()).or_default();
        for r in crate_refs(&text) {
            if r != top && !entry.contains(&r) {
                entry.push(r);
            }
        }
    }
    deps
}

#[test]
fn top_level_modules_have_no_import_cycle() {
    let deps = module_graph();
    assert!(deps.len() > 20, "modules read: {:?}", deps.keys());
    let mut g = DiGraphMap::<&str, ()>::new();
    for (m, ds) in &deps {
        if BINARY.contains(&m.as_str()) {
            continue;
        }
        g.add_node(m);
        for d in ds {
            if deps.contains_key(d) {
                g.add_edge(m, d, ());
            }
        }
    }
    let cycles: Vec<Vec<&str>> = tarjan_scc(&g).into_iter().filter(|c| c.len() > 1).collect();
    assert!(
        cycles.is_empty(),
        "import cycles between modules of src/: {cycles:?}"
    );
}

#[test]
fn the_library_never_reaches_the_binary() {
    for (m, ds) in module_graph() {
        if BINARY.contains(&m.as_str()) {
            continue;
        }
        for b in BINARY {
            assert!(!ds.iter().any(|d| d == b), "src/{m} uses crate::{b}");
        }
    }
}

/// The reader sees the dependencies it must: a cycle made on purpose is found.
#[test]
fn a_cycle_would_be_found() {
    let refs =
        crate_refs("use crate::{plan::{a, b}, size::Budget};\nfn f() { crate::report::x(); }");
    assert_eq!(refs, ["plan", "size", "report"]);
    let mut g = DiGraphMap::<&str, ()>::new();
    g.add_edge("a", "b", ());
    g.add_edge("b", "a", ());
    assert!(tarjan_scc(&g).iter().any(|c| c.len() > 1));
}
