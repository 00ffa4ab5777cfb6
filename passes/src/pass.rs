//! Named passes and the manager that runs them.
//!
//! Every transform of the pipeline is a [`Pass`] over a [`Unit`] (the model and what flows
//! between passes), listed once in [`PASSES`] in pipeline order. The library's entry points
//! (`infer::infer_shapes`, `autodiff::build_training_graph`, `recompute::apply_recompute`,
//! `runtime_weights::read_weights_at_run_time`) run a range of that list through a
//! [`Manager`], which checks the IR after every pass in debug builds (or when asked: tests),
//! and can hand the IR text after a pass to a callback (`--dump-after`) or stop after one
//! (`--stop-after`).
//!
//! Adding a pass: a unit struct implementing [`Pass`] beside the code it runs, one row in
//! [`PASSES`] at its place in the pipeline, and whatever it needs from earlier passes as a
//! field of [`Unit`].

use crate::autodiff::{AutodiffError, TrainOptions, TrainingInfo};
use crate::error::IrError;
use crate::infer::InferStats;
use crate::ir::Names;
use crate::ir::{Model, ValueId};
use crate::recompute::{RecomputeError, RewriteOptions, RewriteReport};
use crate::runtime_weights::RuntimeWeights;
use thiserror::Error;

/// One transform of the pipeline.
pub trait Pass: Sync {
    /// Its name in [`PASSES`], `--dump-after` and `--stop-after`.
    fn name(&self) -> &'static str;
    /// What it does, in one line.
    fn summary(&self) -> &'static str;
    /// Whether it has anything to do for `unit` (a pass that is not asked for, such as
    /// `runtime-weights`, is skipped: not run, verified nor dumped).
    fn enabled(&self, _unit: &Unit<'_>) -> bool {
        true
    }
    fn run(&self, unit: &mut Unit<'_>) -> Result<(), PassError>;
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum PassError {
    #[error(transparent)]
    Ir(#[from] IrError),
    #[error(transparent)]
    Autodiff(#[from] AutodiffError),
    #[error(transparent)]
    Recompute(#[from] RecomputeError),
    /// The IR check after a pass failed: a bug in that pass.
    #[error("the IR is broken after pass {pass}: {source}")]
    Broken { pass: &'static str, source: IrError },
    /// A pass was run without what an earlier pass makes.
    #[error("pass {pass} needs {what}: run the passes before it first")]
    Missing {
        pass: &'static str,
        what: &'static str,
    },
    #[error("unknown pass '{name}': the passes are {}", pass_names().join(", "))]
    UnknownPass { name: String },
    #[error("pass range {from}..={to} is empty: {to} runs before {from}")]
    EmptyRange { from: String, to: String },
}

impl PassError {
    /// The IR error inside, if it is one (for entry points whose error type predates passes).
    pub fn into_ir(self) -> Result<IrError, PassError> {
        match self {
            PassError::Ir(e) | PassError::Broken { source: e, .. } => Ok(e),
            other => Err(other),
        }
    }
}

/// What flows between passes: the model and the facts and options each pass needs. A pass
/// reads the fields earlier passes filled and fills its own.
pub struct Unit<'a> {
    pub model: Model,
    /// The model's ai.onnx opset (shape rules and lowerings depend on it).
    pub opset: i64,
    /// What `autodiff` made (loss, gradients, where the backward starts).
    pub info: Option<TrainingInfo>,
    /// Options of `autodiff`.
    pub train: Option<TrainOptions>,
    /// The gradient the backward starts from (made by `autodiff`, read by `order-backward`).
    pub seed: Option<ValueId>,
    /// Forward values the rewrite drops and recomputes (input of `recompute`).
    pub recompute: Vec<ValueId>,
    /// Which ONNX Runtime defences `pin-late` and `hide-backward-shapes` apply.
    pub rewrite: RewriteOptions,
    /// Whether `runtime-weights` runs (a plan asked for it).
    pub runtime_weights: bool,
    /// What the passes report.
    pub stats: Stats,
    /// The fresh-name service the rewrite passes share, once one of them made it (a pass
    /// that names values another way sets it to `None`).
    pub names: Option<Names<'a>>,
}

/// What passes report about their work.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Nodes `lower` rewrote.
    pub lowered: usize,
    pub infer: InferStats,
    pub rewrite: RewriteReport,
    pub runtime_weights: Option<RuntimeWeights>,
}

impl<'a> Unit<'a> {
    /// A unit holding `model`, with the opset it imports and no option set.
    pub fn new(model: Model) -> Unit<'a> {
        Unit {
            opset: model.opset().unwrap_or(13),
            model,
            info: None,
            train: None,
            seed: None,
            recompute: Vec::new(),
            rewrite: RewriteOptions::default(),
            runtime_weights: false,
            stats: Stats::default(),
            names: None,
        }
    }

    /// A unit holding a training graph and what `autodiff` made for it (for the rewrite
    /// passes).
    pub fn training(model: Model, info: TrainingInfo) -> Unit<'a> {
        let mut u = Unit::new(model);
        u.opset = info.opset;
        u.info = Some(info);
        u
    }

    /// The training info, which `pass` needs.
    pub fn info_for(&self, pass: &'static str) -> Result<&TrainingInfo, PassError> {
        self.info.as_ref().ok_or(PassError::Missing {
            pass,
            what: "a training graph (pass autodiff)",
        })
    }

    /// The shared name service, made from the graph on first use.
    pub fn take_names(&mut self) -> Names<'a> {
        match self.names.take() {
            Some(n) => n,
            None => Names::of_graph(&self.model.graph),
        }
    }
}

/// Every pass, in pipeline order.
pub static PASSES: &[&dyn Pass] = &[
    &crate::infer::Lower,
    &crate::infer::InferShapes,
    &crate::autodiff::Autodiff,
    &crate::schedule::OrderBackward,
    &crate::runtime_weights::RuntimeWeightsPass,
    &crate::recompute::Recompute,
    &crate::recompute::PinLate,
    &crate::runtime_shapes::HideBackwardShapes,
];

/// The names of [`PASSES`], in order.
pub fn pass_names() -> Vec<&'static str> {
    PASSES.iter().map(|p| p.name()).collect()
}

/// The pass named `name`.
pub fn by_name(name: &str) -> Result<&'static dyn Pass, PassError> {
    PASSES
        .iter()
        .copied()
        .find(|p| p.name() == name)
        .ok_or_else(|| PassError::UnknownPass { name: name.into() })
}

fn position(name: &str) -> Result<usize, PassError> {
    PASSES
        .iter()
        .position(|p| p.name() == name)
        .ok_or_else(|| PassError::UnknownPass { name: name.into() })
}

/// The callback of `--dump-after`: the pass's name and the IR text after it.
pub type DumpFn<'f> = Box<dyn FnMut(&'static str, &str) + 'f>;

/// Runs ranges of [`PASSES`] over a unit.
pub struct Manager<'f> {
    verify: bool,
    dump_after: Vec<&'static str>,
    on_dump: Option<DumpFn<'f>>,
    stop_after: Option<&'static str>,
    stopped: bool,
    /// Passes run so far (in order), for reports.
    ran: Vec<&'static str>,
}

impl Default for Manager<'_> {
    fn default() -> Self {
        Manager::new()
    }
}

impl<'f> Manager<'f> {
    /// A manager that checks the IR after every pass in debug builds only.
    pub fn new() -> Manager<'f> {
        Manager {
            verify: cfg!(debug_assertions),
            dump_after: Vec::new(),
            on_dump: None,
            stop_after: None,
            stopped: false,
            ran: Vec::new(),
        }
    }

    /// Checks the IR (`ir::verify`) after every pass, or not (tests ask for it in release
    /// builds).
    pub fn verify_each(mut self, on: bool) -> Self {
        self.verify = on;
        self
    }

    /// Hands the IR text (`ir::print_model`) after each pass of `names` to `f`.
    pub fn dump_after<S: AsRef<str>>(
        mut self,
        names: &[S],
        f: impl FnMut(&'static str, &str) + 'f,
    ) -> Result<Self, PassError> {
        for n in names {
            let name = by_name(n.as_ref())?.name();
            if !self.dump_after.contains(&name) {
                self.dump_after.push(name);
            }
        }
        self.on_dump = Some(Box::new(f));
        Ok(self)
    }

    /// Stops after the pass `name` (the IR there is dumped too, when a dump callback is set,
    /// even if the pass was skipped): later `run`s do nothing.
    pub fn stop_after(mut self, name: &str) -> Result<Self, PassError> {
        self.stop_after = Some(by_name(name)?.name());
        Ok(self)
    }

    /// Whether the stop-after pass was reached.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The passes run so far.
    pub fn ran(&self) -> &[&'static str] {
        &self.ran
    }

    /// Whether a pass of `from..=to` is to be dumped or is the stop-after pass (a caller
    /// that would otherwise skip the manager for speed asks this first).
    pub fn observes(&self, from: &str, to: &str) -> bool {
        let (Ok(a), Ok(b)) = (position(from), position(to)) else {
            return false;
        };
        let watched = |name: &str| position(name).is_ok_and(|k| (a..=b).contains(&k));
        self.dump_after.iter().any(|n| watched(n)) || self.stop_after.is_some_and(watched)
    }

    /// Runs the passes `from..=to` of [`PASSES`] over `unit`, in order; stops early (and
    /// every later call does nothing) at the stop-after pass.
    pub fn run(&mut self, unit: &mut Unit<'_>, from: &str, to: &str) -> Result<(), PassError> {
        let (a, b) = (position(from)?, position(to)?);
        if a > b {
            return Err(PassError::EmptyRange {
                from: from.into(),
                to: to.into(),
            });
        }
        self.run_passes(unit, &PASSES[a..=b])
    }

    /// Runs `passes` over `unit` in order (a range of [`PASSES`], or passes of a test); stops
    /// early (and every later call does nothing) at the stop-after pass.
    pub fn run_passes(
        &mut self,
        unit: &mut Unit<'_>,
        passes: &[&dyn Pass],
    ) -> Result<(), PassError> {
        for pass in passes {
            if self.stopped {
                return Ok(());
            }
            let name = pass.name();
            let stop = self.stop_after == Some(name);
            let ran = pass.enabled(unit);
            if ran {
                pass.run(unit)?;
                self.ran.push(name);
                if self.verify {
                    crate::ir::verify(&unit.model.graph)
                        .map_err(|source| PassError::Broken { pass: name, source })?;
                }
            }
            // A skipped pass has no dump of its own; stopping at it dumps the IR there.
            if (ran && self.dump_after.contains(&name)) || stop {
                if let Some(f) = self.on_dump.as_mut() {
                    f(name, &crate::ir::print_model(&unit.model));
                }
            }
            if stop {
                self.stopped = true;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Graph, Node};
    use crate::synth;

    #[test]
    fn pass_names_are_unique_and_found_by_name() {
        let names = pass_names();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "{names:?}");
        for n in &names {
            assert_eq!(by_name(n).unwrap().name(), *n);
            assert!(!by_name(n).unwrap().summary().is_empty());
        }
        assert_eq!(
            names,
            [
                "lower",
                "infer-shapes",
                "autodiff",
                "order-backward",
                "runtime-weights",
                "recompute",
                "pin-late",
                "hide-backward-shapes"
            ]
        );
        let e = by_name("inline").err().unwrap().to_string();
        assert!(
            e.starts_with("unknown pass 'inline': the passes are lower, "),
            "{e}"
        );
    }

    /// The training pipeline of a small transformer, pass by pass.
    fn forward() -> Model {
        synth::transformer_with_nodes(200)
    }

    #[test]
    fn stop_after_stops_and_dump_after_sees_each_named_pass() {
        let mut dumps: Vec<(&str, String)> = Vec::new();
        let mut unit = Unit::new(forward());
        unit.train = Some(synth::cross_entropy());
        {
            let mut m = Manager::new()
                .verify_each(true)
                .dump_after(&["lower", "autodiff"], |name, text| {
                    dumps.push((name, text.to_string()))
                })
                .unwrap()
                .stop_after("order-backward")
                .unwrap();
            m.run(&mut unit, "lower", "order-backward").unwrap();
            assert!(m.stopped());
            assert_eq!(
                m.ran(),
                ["lower", "infer-shapes", "autodiff", "order-backward"]
            );
            // Stopped: the rewrite does not run.
            unit.recompute = Vec::new();
            m.run(&mut unit, "recompute", "hide-backward-shapes")
                .unwrap();
            assert_eq!(m.ran().len(), 4);
        }
        let names: Vec<&str> = dumps.iter().map(|d| d.0).collect();
        assert_eq!(names, ["lower", "autodiff", "order-backward"]);
        assert!(dumps[0].1.starts_with("model ir="), "{}", dumps[0].1);
        // The forward has no gradient; the training graph does.
        assert!(!dumps[0].1.contains(".grad"));
        assert!(dumps[1].1.contains(".grad"));
        // Ordering pins the backward: the dump after it differs from the one before.
        assert_ne!(dumps[1].1, dumps[2].1);
    }

    /// A pass that breaks the IR (a node reading a value nothing makes).
    struct Breaker;
    impl Pass for Breaker {
        fn name(&self) -> &'static str {
            "breaker"
        }
        fn summary(&self) -> &'static str {
            "reads an undefined value"
        }
        fn run(&self, unit: &mut Unit<'_>) -> Result<(), PassError> {
            let g: &mut Graph = &mut unit.model.graph;
            let ghost = g.new_value("ghost");
            let out = g.new_value("out");
            g.add_node(Node::new("Relu", vec![Some(ghost)], vec![Some(out)]));
            Ok(())
        }
    }

    #[test]
    fn verify_catches_a_broken_pass() {
        let mut unit = Unit::new(forward());
        let passes: [&dyn Pass; 2] = [&crate::infer::InferShapes, &Breaker];
        // Unchecked, the broken graph passes through.
        Manager::new()
            .verify_each(false)
            .run_passes(&mut unit, &passes)
            .unwrap();
        let mut unit = Unit::new(forward());
        let e = Manager::new()
            .verify_each(true)
            .run_passes(&mut unit, &passes)
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the IR is broken after pass breaker: "),
            "{e}"
        );
    }

    #[test]
    fn unknown_names_and_empty_ranges_are_errors() {
        assert!(matches!(
            Manager::new().stop_after("nope"),
            Err(PassError::UnknownPass { .. })
        ));
        assert!(matches!(
            Manager::new().dump_after(&["lower", "nope"], |_, _| {}),
            Err(PassError::UnknownPass { .. })
        ));
        let mut unit = Unit::new(forward());
        let e = Manager::new()
            .run(&mut unit, "autodiff", "lower")
            .unwrap_err();
        assert!(matches!(e, PassError::EmptyRange { .. }), "{e}");
        // A pass run without what it needs says so.
        let e = Manager::new()
            .run(&mut unit, "autodiff", "autodiff")
            .unwrap_err();
        assert!(matches!(e, PassError::Missing { .. }), "{e}");
    }
}
