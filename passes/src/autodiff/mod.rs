//! The training-graph builder: forward + loss + backward, in standard ai.onnx ops only, so
//! the result runs on any stock ONNX Runtime. Reverse mode over the forward nodes; each op's
//! gradient rule is in its family file `ops/<family>.rs`, named by its registry row.

mod builder;
mod loss;
pub mod optimizer;
mod saved;

pub use builder::{axis_of, dy0, pad_none, Builder, GradCtx, GradResult, GradRule, Grads};
pub use loss::Loss;
pub use optimizer::{Optimizer, Rule as OptimizerRule};
pub use saved::saved_activations;

use crate::error::{IrError, NodeRef};
use crate::ir::{Graph, Model, Node, NodeId, Origin, ValueId};
use crate::pass::{Manager, Pass, PassError, Unit};
use std::collections::HashMap;
use thiserror::Error;

#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    pub loss: Loss,
    /// Glob patterns (`*`, `?`) of initializer names that are not trained.
    pub freeze: Vec<String>,
    /// Differentiate BatchNormalization with batch statistics (torch's `train()`) instead of
    /// the running statistics the graph was exported with.
    pub batch_norm_train: bool,
    /// Trainable parameters become graph inputs (their initializers the defaults), so a
    /// loop can feed updated weights without rebuilding the session.
    pub params_as_inputs: bool,
    /// An optimizer step after the backward (implies `params_as_inputs`): the outputs are
    /// then the loss, the updated parameters and the updated state (`optimizer.rs`).
    pub optimizer: Option<Optimizer>,
}

/// What the builder made: which outputs are the loss and the gradients. (Where the backward
/// starts is the nodes' provenance: `Graph::backward_start`.)
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingInfo {
    pub loss: ValueId,
    /// Trainable parameters, in initializer order, and their gradients.
    pub params: Vec<ValueId>,
    pub grads: Vec<ValueId>,
    /// New graph inputs the loss added (labels or target).
    pub loss_inputs: Vec<ValueId>,
    /// The model's ai.onnx opset (for shape rules run by later passes).
    pub opset: i64,
    /// The optimizer step appended after the backward, if any; the gradients are then
    /// intermediate values, and the outputs after the loss are `step_outputs`.
    pub optimizer: Option<Optimizer>,
    /// Updated parameters and optimizer state (empty without an optimizer).
    pub step_outputs: Vec<ValueId>,
}

impl TrainingInfo {
    /// What the step returns besides the loss, alive to its end: the gradients, or with an
    /// optimizer the updated parameters and state (the gradients are then freed once used).
    pub fn step_results(&self) -> &[ValueId] {
        if self.optimizer.is_some() {
            &self.step_outputs
        } else {
            &self.grads
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum AutodiffError {
    #[error("op {} ({}) has no gradient rule in onnx-ac; it is on the path to the gradient of '{param}'", .node.op(), .node.without_op())]
    NoGradRule { node: NodeRef, param: String },
    #[error("gradient of {node}: {reason}")]
    Rule { node: NodeRef, reason: String },
    #[error("{0}")]
    Loss(String),
    #[error("no trainable parameter reaches the loss (float initializers not frozen by --freeze and not marked by the exporter as buffers)")]
    NoTrainable,
    #[error(transparent)]
    Ir(#[from] IrError),
}

/// The metadata key with which PyTorch's exporter (torch.onnx, dynamo) records what an
/// initializer was in the module: `PARAMETER`, `BUFFER`, `CONSTANT_TENSOR`, ...
pub const TORCH_INPUT_KIND: &str = "pkg.torch.export.graph_signature.InputSpec.kind";

/// What the exporter says an initializer was when it says it was not a parameter
/// (`BUFFER`: rotary frequencies, position ids, running statistics; `CONSTANT_TENSOR`):
/// torch's optimizers never see those, so neither does the training graph.
pub fn exported_non_parameter(v: &crate::ir::Value) -> Option<&str> {
    v.metadata
        .iter()
        .find(|(k, _)| k == TORCH_INPUT_KIND)
        .map(|(_, kind)| kind.as_str())
        .filter(|kind| *kind != "PARAMETER")
}

/// The initializers a training graph may train: float, not a graph input (an overridable
/// default), not marked by the exporter as something other than a parameter (a buffer), not
/// matched by a `--freeze` glob. Of these, the parameters are those that reach the loss
/// ([`TrainingInfo::params`]); every other initializer (shape constants, buffers, frozen
/// weights) is a constant of the step.
pub fn parameter_candidates(g: &Graph, freeze: &[String]) -> Vec<ValueId> {
    let is_input: std::collections::HashSet<ValueId> = g.inputs.iter().copied().collect();
    g.initializers
        .iter()
        .copied()
        .filter(|&p| {
            let v = g.value(p);
            v.dtype.is_some_and(|d| d.is_float())
                && !is_input.contains(&p)
                && exported_non_parameter(v).is_none()
                && !freeze.iter().any(|pat| glob_match(pat, &v.name))
        })
        .collect()
}

/// Simple glob: `*` any run of characters, `?` one character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The gradient rule of a node's op (`OpDef::grad`), if onnx-ac has one.
pub fn grad_rule(node: &Node) -> Option<GradRule> {
    if !node.is_standard_domain() {
        return None;
    }
    crate::ops::lookup(&node.op_type)?.grad
}

/// Whether input `i` of `node` carries a gradient (`OpDef::differentiable`; an op without a
/// row: every input).
pub fn input_is_differentiable(node: &Node, i: usize) -> bool {
    crate::ops::lookup(&node.op_type).is_none_or(|d| d.differentiable.contains(i))
}

/// Which values carry a gradient: float values computed from a trainable parameter through
/// differentiable inputs. Records, for each, one parameter it depends on (for errors).
fn requires_grad(g: &Graph, trainable: &[ValueId]) -> Vec<Option<ValueId>> {
    let mut src: Vec<Option<ValueId>> = vec![None; g.values.len()];
    for &p in trainable {
        src[p.index()] = Some(p);
    }
    for n in &g.nodes {
        let from = n
            .inputs
            .iter()
            .enumerate()
            .filter(|&(i, _)| input_is_differentiable(n, i))
            .find_map(|(_, v)| v.and_then(|v| src[v.index()]));
        if let Some(p) = from {
            for &o in n.outputs.iter().flatten() {
                if g.value(o).dtype.is_some_and(|d| d.is_float()) {
                    src[o.index()] = Some(p);
                }
            }
        }
    }
    src
}

/// Values from which the loss is reachable through gradient-carrying edges.
fn reaches_loss(
    g: &Graph,
    loss: ValueId,
    req: &[Option<ValueId>],
    forward_end: usize,
) -> Vec<bool> {
    let mut reach = vec![false; g.values.len()];
    reach[loss.index()] = true;
    for nid in (0..forward_end).rev() {
        let n = &g.nodes[nid];
        if !n.outputs.iter().flatten().any(|o| reach[o.index()]) {
            continue;
        }
        for (i, v) in n.inputs.iter().enumerate() {
            if let Some(v) = v {
                if req[v.index()].is_some() && input_is_differentiable(n, i) {
                    reach[v.index()] = true;
                }
            }
        }
    }
    reach
}

/// Builds the training graph of `model`: its forward, the loss, and one gradient per
/// trainable parameter, named `<param>.grad`. Shapes must be inferred and static. The
/// passes `autodiff` then `order-backward`.
pub fn build_training_graph(
    model: &Model,
    opts: &TrainOptions,
) -> Result<(Model, TrainingInfo), AutodiffError> {
    build_training_graph_with(model, opts, &mut Manager::new())
}

/// [`build_training_graph`] through `manager` (which may dump after a pass, or stop: the
/// graph is then the one after the stop-after pass).
pub fn build_training_graph_with(
    model: &Model,
    opts: &TrainOptions,
    manager: &mut Manager<'_>,
) -> Result<(Model, TrainingInfo), AutodiffError> {
    let mut unit = Unit::new(model.clone());
    unit.train = Some(opts.clone());
    manager
        .run(&mut unit, "autodiff", "order-backward")
        .map_err(|e| match e {
            PassError::Autodiff(e) => e,
            other => match other.into_ir() {
                Ok(e) => AutodiffError::Ir(e),
                Err(other) => AutodiffError::Ir(IrError::Invariant(other.to_string())),
            },
        })?;
    // Values folded to constants during the build keep their producing nodes; the
    // constants are only hints for later analyses.
    crate::ir::verify(&unit.model.graph)?;
    let info = unit.info.expect("autodiff made the training info");
    Ok((unit.model, info))
}

/// The `autodiff` pass: appends the loss and the backward ([`build_training_graph`]
/// without the backward's ordering).
pub struct Autodiff;

impl Pass for Autodiff {
    fn name(&self) -> &'static str {
        "autodiff"
    }
    fn summary(&self) -> &'static str {
        "appends the loss and the backward: one gradient per trainable parameter"
    }
    fn run(&self, unit: &mut Unit<'_>) -> Result<(), PassError> {
        let opts = unit.train.clone().ok_or(PassError::Missing {
            pass: "autodiff",
            what: "training options",
        })?;
        let (info, seed) = append_backward(&mut unit.model, unit.opset, &opts)?;
        unit.info = Some(info);
        unit.seed = Some(seed);
        // The builder named its values its own way.
        unit.names = None;
        Ok(())
    }
}

/// Appends the loss and the backward to `m` (in builder order, every node marked with its
/// [`Origin`]); returns the training info and the loss gradient's seed.
fn append_backward(
    m: &mut Model,
    opset: i64,
    opts: &TrainOptions,
) -> Result<(TrainingInfo, ValueId), AutodiffError> {
    if let Some(e) = crate::infer::unbound_input_dim(&m.graph) {
        return Err(e.into());
    }
    if opts.batch_norm_train {
        crate::ops::norm::switch_batch_norm_to_training(&mut m.graph);
    }
    let before_loss = m.graph.nodes.len();
    let parts = {
        let mut b = Builder::new(&mut m.graph, opset, "loss/");
        loss::build(&mut b, &opts.loss)?
    };
    let loss = parts.loss;
    let loss_inputs = parts.new_inputs.clone();
    let g = &mut m.graph;
    let forward_end = g.nodes.len();

    let candidates = parameter_candidates(g, &opts.freeze);
    let req = requires_grad(g, &candidates);
    let reach = reaches_loss(g, loss, &req, forward_end);
    let trainable: Vec<ValueId> = candidates
        .iter()
        .copied()
        .filter(|p| reach[p.index()])
        .collect();
    if trainable.is_empty() {
        return Err(AutodiffError::NoTrainable);
    }
    let req = requires_grad(g, &trainable);
    let reach = reaches_loss(g, loss, &req, forward_end);

    // Reverse pass. The loss's own gradient is written in closed form (softmax minus
    // one-hot); it seeds the gradient of the loss's input (logits or output).
    let mut b = Builder::new(g, opset, "grad/");
    let seed = loss::seed_gradient(&mut b, &parts).map_err(AutodiffError::Loss)?;
    let mut contrib: HashMap<ValueId, Vec<ValueId>> = HashMap::new();
    contrib.insert(parts.input, vec![seed]);
    for nid in (0..before_loss).rev() {
        let node: Node = b.graph.nodes[nid].clone();
        let needs: Vec<bool> = node
            .inputs
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.is_some_and(|v| req[v.index()].is_some() && reach[v.index()])
                    && input_is_differentiable(&node, i)
            })
            .collect();
        if !needs.iter().any(|&x| x) {
            continue;
        }
        let mut dys = Vec::with_capacity(node.outputs.len());
        for o in &node.outputs {
            let dy = match o.and_then(|o| contrib.remove(&o)) {
                Some(parts) => Some(b.sum(&parts).map_err(|reason| AutodiffError::Rule {
                    node: NodeRef::of(b.graph, NodeId(nid as u32)),
                    reason,
                })?),
                None => None,
            };
            dys.push(dy);
        }
        if dys.iter().all(Option::is_none) {
            continue;
        }
        let param_name = || {
            node.inputs
                .iter()
                .flatten()
                .find_map(|v| req[v.index()])
                .map(|p| b.graph.value(p).name.clone())
                .unwrap_or_default()
        };
        let Some(rule) = grad_rule(&node) else {
            return Err(AutodiffError::NoGradRule {
                node: NodeRef::of(b.graph, NodeId(nid as u32)),
                param: param_name(),
            });
        };
        let mut ctx = GradCtx {
            b: &mut b,
            node: &node,
            node_id: NodeId(nid as u32),
            needs: &needs,
        };
        let dxs = rule(&mut ctx, &dys).map_err(|reason| AutodiffError::Rule {
            node: NodeRef::of(b.graph, NodeId(nid as u32)),
            reason,
        })?;
        for (i, dx) in dxs.into_iter().enumerate() {
            if let (Some(dx), Some(x), true) =
                (dx, node.input(i), needs.get(i).copied().unwrap_or(false))
            {
                contrib.entry(x).or_default().push(dx);
            }
        }
    }

    let mut grads = Vec::with_capacity(trainable.len());
    let mut claimed = std::collections::HashSet::new();
    for &p in &trainable {
        let parts = contrib.remove(&p).unwrap_or_default();
        let pname = b.graph.value(p).name.clone();
        // Not a node: the sum of a parameter's gradient contributions, named after it.
        let rule_err = |reason| AutodiffError::Rule {
            node: NodeRef::new(0, &pname, "gradient", None),
            reason,
        };
        let gsum = if parts.is_empty() {
            b.zeros_like(p).map_err(rule_err)?
        } else {
            b.sum(&parts).map_err(rule_err)?
        };
        let name = b.named(&format!("{pname}.grad"));
        let own = b
            .graph
            .value(gsum)
            .producer
            .is_some_and(|n| n.index() >= forward_end)
            && !b.graph.outputs.contains(&gsum);
        let gid = if own && claimed.insert(gsum) {
            b.graph.value_mut(gsum).name = name;
            gsum
        } else {
            let out = b.graph.new_value(name.clone());
            let mut id = Node::new("Identity", vec![Some(gsum)], vec![Some(out)]);
            id.name = format!("{name}/Identity");
            let v = b.graph.value(gsum).clone();
            b.graph.add_node(id);
            let o = b.graph.value_mut(out);
            o.dtype = v.dtype;
            o.shape = v.shape;
            out
        };
        grads.push(gid);
    }
    let step = if opts.params_as_inputs || opts.optimizer.is_some() {
        Some(
            optimizer::append(&mut b, &trainable, &grads, opts.optimizer.as_ref()).map_err(
                |reason| AutodiffError::Rule {
                    node: NodeRef::new(0, "optimizer step", "optimizer", None),
                    reason,
                },
            )?,
        )
    } else {
        None
    };
    drop(b);
    let step_outputs = match &step {
        Some(s) if opts.optimizer.is_some() => s.outputs.clone(),
        _ => Vec::new(),
    };
    g.outputs = std::iter::once(loss)
        .chain(if opts.optimizer.is_some() {
            step_outputs.clone()
        } else {
            grads.clone()
        })
        .collect();
    if let Some(s) = step {
        g.inputs.extend(s.inputs);
    }
    for (k, n) in g.nodes.iter_mut().enumerate().skip(before_loss) {
        n.origin = if k < forward_end {
            Origin::Loss
        } else {
            Origin::Backward
        };
    }
    m.metadata.push((
        "onnx_ac.training_graph".into(),
        format!(
            "loss={}; batch_norm={}",
            opts.loss.describe(),
            if opts.batch_norm_train {
                "train"
            } else {
                "as-exported"
            }
        ) + &match (&opts.optimizer, opts.params_as_inputs) {
            (Some(o), _) => format!("; optimizer={}", o.describe()),
            (None, true) => "; params=inputs".to_string(),
            (None, false) => String::new(),
        },
    ));
    Ok((
        TrainingInfo {
            loss,
            params: trainable,
            grads,
            loss_inputs,
            opset,
            optimizer: opts.optimizer,
            step_outputs,
        },
        seed,
    ))
}

#[cfg(test)]
mod tests {
    use super::{build_training_graph, glob_match, TORCH_INPUT_KIND};

    /// An initializer the exporter marks as a buffer is a constant of the step; one marked
    /// as a parameter (or unmarked) is trained.
    #[test]
    fn exported_buffers_are_not_trained() {
        let mut m = crate::synth::wide_model(10);
        let mark = |m: &mut crate::ir::Model, name: &str, kind: &str| {
            let id = m.graph.value_by_name()[name];
            m.graph
                .value_mut(id)
                .metadata
                .push((TORCH_INPUT_KIND.to_string(), kind.to_string()));
        };
        mark(&mut m, "b0.scale", "BUFFER");
        mark(&mut m, "b1.scale", "CONSTANT_TENSOR");
        mark(&mut m, "b0.weight", "PARAMETER");
        let (tm, info) = build_training_graph(&m, &crate::synth::cross_entropy()).unwrap();
        let trained: Vec<&str> = info
            .params
            .iter()
            .map(|&p| tm.graph.value(p).name.as_str())
            .collect();
        assert_eq!(
            trained,
            ["b0.weight", "b0.bias", "b1.weight", "b1.bias"],
            "buffers and constant tensors must not be trained"
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.bias", "fc1.bias"));
        assert!(glob_match(
            "transformer.h.?.attn.*",
            "transformer.h.0.attn.c_attn.weight"
        ));
        assert!(!glob_match("*.bias", "fc1.weight"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a?", "a"));
    }
}
