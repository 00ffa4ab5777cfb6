//! The IR text parser is the printer's inverse: for every fixture model, its forward graph as
//! loaded, its training graph and a rewritten training graph print the same after a parse, in
//! the snapshot form and in the data form (`passes/src/ir/parser.rs`).

mod common;

use onnx_ac_passes::ir::{parse_model, print_model, print_model_with_data, Model};
use std::collections::BTreeMap;

/// `print(parse(print(m))) == print(m)` in both forms.
fn assert_round_trip(what: &str, m: &Model) {
    for (form, print) in [
        ("snapshot", print_model as fn(&Model) -> String),
        ("data", print_model_with_data),
    ] {
        let text = print(m);
        let parsed = parse_model(&text).unwrap_or_else(|e| {
            let line = text.lines().nth(e.line - 1).unwrap_or("");
            panic!("{what} ({form} form): {e}\n  {line}")
        });
        let again = print(&parsed);
        if again != text {
            let (k, (a, b)) = text
                .lines()
                .zip(again.lines())
                .enumerate()
                .find(|(_, (a, b))| a != b)
                .unwrap_or((0, ("", "")));
            panic!(
                "{what} ({form} form) prints differently after a parse, line {}:\n  {a}\n  {b}",
                k + 1
            );
        }
    }
}

/// Dims the dynamic fixtures are bound with.
fn dims_of(stem: &str) -> Vec<(&'static str, i64)> {
    if stem.contains("dynamic") {
        vec![("batch", 2), ("seq", 16)]
    } else if stem.contains("dynbatch") {
        vec![("batch", 4)]
    } else {
        Vec::new()
    }
}

#[test]
fn every_fixture_round_trips() {
    let mut models = common::fixture_models();
    models.push(common::fixture("gpt2_deep.ts17"));
    assert!(models.len() >= 10, "fixtures: {models:?}");
    for path in models {
        let stem = common::stem(&path);
        let dims: BTreeMap<String, i64> = dims_of(&stem)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let forward = onnx_ac::load_model(&path, &dims).unwrap();
        assert_round_trip(&format!("{stem} forward"), &forward);
        let (tm, _) = common::training_at(&path, &dims);
        assert_round_trip(&format!("{stem} training graph"), &tm);
    }
}

/// A graph with every kind of text the parser reads back: recomputed copies, pins, hidden
/// shapes and weights read at run time.
#[test]
fn a_rewritten_graph_round_trips() {
    use onnx_ac::pipeline::{plan_and_rewrite, PlanOptions, PlanSource};
    let (tm, info) = common::training("gpt2.ts17", &[]);
    let opts = PlanOptions {
        budget: onnx_ac::size::Budget::Percent(30.0),
        source: PlanSource::Planner("full".into()),
        best_effort: true,
        rewrite: onnx_ac_passes::recompute::RewriteOptions::defended(true),
        bound_dims: Vec::new(),
    };
    let p = plan_and_rewrite(&tm, &info, &opts, &onnx_ac::cost::fixed_time, "fixed table").unwrap();
    assert!(!p.plan.recompute.is_empty());
    let text = print_model_with_data(&p.rewritten);
    assert!(text.contains(" hidden") && text.contains("/recompute"));
    assert_round_trip("gpt2.ts17 rewritten", &p.rewritten);
}
