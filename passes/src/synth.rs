//! Synthetic models for benchmarks and scale tests, built directly as IR (no file, no
//! weights to download). Parameters are float initializers filled with zeros, or, for I/O
//! benchmarks, [`ExternalRef`] placeholders whose bytes the caller writes. Constants that
//! are not parameters (attention scale, causal mask, the Gelu constants) are `Constant`
//! nodes, so the training-graph builder does not treat them as trainable.
//!
//! Every generator returns a model with opset 17, static shapes, and its shapes already
//! inferred (running [`crate::infer::infer_shapes`] again is harmless).

use crate::infer::infer_shapes;
use crate::ir::{
    known_shape, Attribute, DType, ExternalRef, Graph, Model, Node, Tensor, TensorData, ValueId,
};

/// The ai.onnx opset of every synthetic model.
pub const OPSET: i64 = 17;

/// Shape of a GPT-style decoder; see [`transformer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransformerConfig {
    pub layers: usize,
    pub hidden: i64,
    pub heads: i64,
    pub seq: i64,
    pub batch: i64,
    pub vocab: i64,
}

impl TransformerConfig {
    /// The dims [`transformer_with_nodes`] uses (only `layers` varies): small parameters
    /// (hidden 64), so that graphs of 50k nodes stay cheap to build, and activations that
    /// outweigh them (batch 4 × seq 128), so that halving the peak is reachable by
    /// recomputation, as in real training runs.
    pub const SCALE: TransformerConfig = TransformerConfig {
        layers: 1,
        hidden: 64,
        heads: 4,
        seq: 128,
        batch: 4,
        vocab: 256,
    };

    pub fn build(&self) -> Model {
        transformer(
            self.layers,
            self.hidden,
            self.heads,
            self.seq,
            self.batch,
            self.vocab,
        )
    }
}

/// Nodes in the forward of a [`transformer`] with `layers` layers: 2 for the embeddings,
/// [`FORWARD_NODES_PER_LAYER`] per layer, 2 for the final LayerNorm and LM head, and 5
/// shared `Constant`s.
pub fn transformer_forward_nodes(layers: usize) -> usize {
    2 + 2 + 5 + FORWARD_NODES_PER_LAYER * layers
}
pub const FORWARD_NODES_PER_LAYER: usize = 31;

/// Nodes of the cross-entropy training graph of a [`transformer`] with `layers` layers,
/// without building it: `fixed + per_layer · layers`, both measured once (on 1- and 2-layer
/// models) from the current training-graph builder, so the figure follows its changes.
pub fn transformer_training_nodes(layers: usize) -> usize {
    let (fixed, per_layer) = training_nodes_calibration();
    fixed + per_layer * layers
}

/// (fixed nodes, nodes per layer) of the training graph of a [`transformer`].
pub fn training_nodes_calibration() -> (usize, usize) {
    static CAL: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();
    *CAL.get_or_init(|| {
        let count = |layers| {
            let m = TransformerConfig {
                layers,
                ..TransformerConfig::SCALE
            }
            .build();
            let (tm, _) = crate::autodiff::build_training_graph(&m, &cross_entropy())
                .expect("synthetic transformers have a training graph");
            tm.graph.nodes.len()
        };
        let (one, two) = (count(1), count(2));
        let per_layer = two.saturating_sub(one).max(1);
        (one.saturating_sub(per_layer), per_layer)
    })
}

/// The loss the synthetic transformers (and the fixture models) are meant for: cross-entropy
/// of `logits` against a new `labels` input.
pub fn cross_entropy() -> crate::autodiff::TrainOptions {
    crate::autodiff::TrainOptions {
        loss: crate::autodiff::Loss::CrossEntropy {
            logits: "logits".into(),
            labels: "labels".into(),
        },
        ..Default::default()
    }
}

/// The number of layers whose training graph is closest to `target_nodes` (at least 1).
pub fn layers_for_training_nodes(target_nodes: usize) -> usize {
    let (fixed, per_layer) = training_nodes_calibration();
    let body = target_nodes.saturating_sub(fixed);
    ((body + per_layer / 2) / per_layer).max(1)
}

/// A [`TransformerConfig::SCALE`] transformer whose cross-entropy training graph has about
/// `target_nodes` nodes (within half a layer): with the builder of this writing, 227 nodes
/// per layer and 79 more, so 1k → 4 layers, 987 nodes; 10k → 44 layers, 10_067; 50k →
/// 220 layers, 50_019 (docs/benchmarks-io.md).
pub fn transformer_with_nodes(target_nodes: usize) -> Model {
    TransformerConfig {
        layers: layers_for_training_nodes(target_nodes),
        ..TransformerConfig::SCALE
    }
    .build()
}

/// Emits nodes with unique names; every parameter and value name is derived from the node.
struct Emitter {
    g: Graph,
}

impl Emitter {
    fn new(name: &str) -> Emitter {
        Emitter {
            g: Graph {
                name: name.into(),
                ..Graph::default()
            },
        }
    }

    fn input(&mut self, name: &str, dtype: DType, dims: &[i64]) -> ValueId {
        let id = self.g.new_value(name);
        let v = self.g.value_mut(id);
        v.dtype = Some(dtype);
        v.shape = Some(known_shape(dims));
        self.g.inputs.push(id);
        id
    }

    /// A float parameter of zeros.
    fn param(&mut self, name: &str, dims: &[i64]) -> ValueId {
        let numel: i64 = dims.iter().product();
        let t = Tensor::raw(DType::Float, dims.to_vec(), vec![0u8; numel as usize * 4]);
        self.g.add_initializer(name, t)
    }

    /// An int64 1-D initializer (Reshape targets, Split sizes): not trainable.
    fn ints(&mut self, name: &str, vals: &[i64]) -> ValueId {
        self.g
            .add_initializer(name, Tensor::from_i64(vec![vals.len() as i64], vals))
    }

    /// A `Constant` node holding `t`.
    fn constant(&mut self, name: &str, t: Tensor) -> ValueId {
        self.node(
            "Constant",
            name,
            &[],
            vec![Attribute::tensor("value", t)],
            1,
        )[0]
    }

    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[ValueId],
        attrs: Vec<Attribute>,
        n_out: usize,
    ) -> Vec<ValueId> {
        let outs: Vec<ValueId> = (0..n_out)
            .map(|k| {
                let vname = if n_out == 1 {
                    format!("{name}_out")
                } else {
                    format!("{name}_out{k}")
                };
                self.g.new_value(vname)
            })
            .collect();
        let mut n = Node::new(
            op,
            inputs.iter().map(|&i| Some(i)).collect(),
            outs.iter().map(|&o| Some(o)).collect(),
        );
        n.name = name.into();
        n.attrs = attrs;
        self.g.add_node(n);
        outs
    }

    fn op(&mut self, op: &str, name: &str, inputs: &[ValueId]) -> ValueId {
        self.node(op, name, inputs, Vec::new(), 1)[0]
    }

    fn op_attrs(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[ValueId],
        attrs: Vec<Attribute>,
    ) -> ValueId {
        self.node(op, name, inputs, attrs, 1)[0]
    }

    /// `MatMul(x, W) + b` with parameters `{name}.weight` `[k, n]` and `{name}.bias` `[n]`.
    fn linear(&mut self, name: &str, x: ValueId, k: i64, n: i64) -> ValueId {
        let w = self.param(&format!("{name}.weight"), &[k, n]);
        let b = self.param(&format!("{name}.bias"), &[n]);
        let y = self.op("MatMul", &format!("{name}/MatMul"), &[x, w]);
        self.op("Add", &format!("{name}/Add"), &[y, b])
    }

    fn layer_norm(&mut self, name: &str, x: ValueId, hidden: i64) -> ValueId {
        let s = self.param(&format!("{name}.weight"), &[hidden]);
        let b = self.param(&format!("{name}.bias"), &[hidden]);
        self.op_attrs(
            "LayerNormalization",
            &format!("{name}/LayerNormalization"),
            &[x, s, b],
            vec![
                Attribute::int("axis", -1),
                Attribute::float("epsilon", 1e-5),
            ],
        )
    }

    /// Renames the value `v` (e.g. to a graph output name) and marks it an output.
    fn output(&mut self, v: ValueId, name: &str) {
        self.g.value_mut(v).name = name.into();
        self.g.outputs.push(v);
    }

    fn finish(self) -> Model {
        let mut m = Model {
            ir_version: 8,
            opset_imports: vec![(String::new(), OPSET)],
            producer_name: "onnx-ac-synth".into(),
            graph: self.g,
            ..Model::default()
        };
        infer_shapes(&mut m.graph, OPSET).expect("synthetic models infer");
        m
    }
}

/// A GPT-2-style decoder forward with static shapes and zero parameters:
///
/// `input_ids [batch, seq]` (int64) → Gather token embedding + position embedding; per
/// layer: LayerNorm, fused QKV MatMul + bias, Split, Reshape/Transpose into heads, Q·Kᵀ
/// MatMul, Div by √head_dim, Add causal mask, Softmax, MatMul with V, Transpose/Reshape
/// back, projection MatMul + bias, residual Add; LayerNorm, MLP MatMul + bias, Gelu as
/// `x · (1 + erf(x/√2)) · 0.5` (Div, Erf, Add, Mul, Mul), MatMul + bias, residual Add;
/// final LayerNorm and LM head MatMul → `logits [batch, seq, vocab]`.
///
/// Node names follow `h{layer}/attn/...`, `h{layer}/mlp/...`; parameters
/// `h{layer}.attn.c_attn.weight` and so on.
pub fn transformer(
    layers: usize,
    hidden: i64,
    heads: i64,
    seq: i64,
    batch: i64,
    vocab: i64,
) -> Model {
    assert!(
        heads > 0 && hidden % heads == 0,
        "hidden must divide by heads"
    );
    let hd = hidden / heads;
    let mut e = Emitter::new("synthetic_transformer");
    let ids = e.input("input_ids", DType::Int64, &[batch, seq]);

    // Shared non-parameter constants and shape tensors.
    let scale = e.constant(
        "const/attn_scale",
        Tensor::from_f32(vec![], &[(hd as f32).sqrt()]),
    );
    let mask: Vec<f32> = (0..seq)
        .flat_map(|i| (0..seq).map(move |j| if j > i { -10_000.0 } else { 0.0 }))
        .collect();
    let mask = e.constant(
        "const/causal_mask",
        Tensor::from_f32(vec![1, 1, seq, seq], &mask),
    );
    let sqrt2 = e.constant(
        "const/sqrt2",
        Tensor::from_f32(vec![], &[std::f32::consts::SQRT_2]),
    );
    let one = e.constant("const/one", Tensor::from_f32(vec![], &[1.0]));
    let half = e.constant("const/half", Tensor::from_f32(vec![], &[0.5]));
    let split = e.ints("shape/qkv_split", &[hidden, hidden, hidden]);
    let to_heads = e.ints("shape/to_heads", &[batch, seq, heads, hd]);
    let to_hidden = e.ints("shape/to_hidden", &[batch, seq, hidden]);

    let wte = e.param("wte.weight", &[vocab, hidden]);
    let wpe = e.param("wpe.weight", &[seq, hidden]);
    let tok = e.op_attrs(
        "Gather",
        "embed/Gather",
        &[wte, ids],
        vec![Attribute::int("axis", 0)],
    );
    let mut h = e.op("Add", "embed/Add", &[tok, wpe]);

    for l in 0..layers {
        let p = format!("h{l}");
        // Attention.
        let x = e.layer_norm(&format!("{p}.ln_1"), h, hidden);
        let qkv = e.linear(&format!("{p}.attn.c_attn"), x, hidden, 3 * hidden);
        let parts = e.node(
            "Split",
            &format!("{p}/attn/Split"),
            &[qkv, split],
            vec![Attribute::int("axis", -1)],
            3,
        );
        let heads_of = |e: &mut Emitter, v: ValueId, tag: &str, perm: &[i64]| {
            let r = e.op(
                "Reshape",
                &format!("{p}/attn/{tag}/Reshape"),
                &[v, to_heads],
            );
            e.op_attrs(
                "Transpose",
                &format!("{p}/attn/{tag}/Transpose"),
                &[r],
                vec![Attribute::ints("perm", perm.to_vec())],
            )
        };
        let q = heads_of(&mut e, parts[0], "q", &[0, 2, 1, 3]);
        let kt = heads_of(&mut e, parts[1], "k", &[0, 2, 3, 1]);
        let v = heads_of(&mut e, parts[2], "v", &[0, 2, 1, 3]);
        let s = e.op("MatMul", &format!("{p}/attn/scores/MatMul"), &[q, kt]);
        let s = e.op("Div", &format!("{p}/attn/scores/Div"), &[s, scale]);
        let s = e.op("Add", &format!("{p}/attn/mask/Add"), &[s, mask]);
        let a = e.op_attrs(
            "Softmax",
            &format!("{p}/attn/Softmax"),
            &[s],
            vec![Attribute::int("axis", -1)],
        );
        let o = e.op("MatMul", &format!("{p}/attn/context/MatMul"), &[a, v]);
        let o = e.op_attrs(
            "Transpose",
            &format!("{p}/attn/merge/Transpose"),
            &[o],
            vec![Attribute::ints("perm", vec![0, 2, 1, 3])],
        );
        let o = e.op(
            "Reshape",
            &format!("{p}/attn/merge/Reshape"),
            &[o, to_hidden],
        );
        let o = e.linear(&format!("{p}.attn.c_proj"), o, hidden, hidden);
        h = e.op("Add", &format!("{p}/attn/residual/Add"), &[h, o]);
        // MLP.
        let x = e.layer_norm(&format!("{p}.ln_2"), h, hidden);
        let f = e.linear(&format!("{p}.mlp.c_fc"), x, hidden, 4 * hidden);
        let d = e.op("Div", &format!("{p}/mlp/gelu/Div"), &[f, sqrt2]);
        let d = e.op("Erf", &format!("{p}/mlp/gelu/Erf"), &[d]);
        let d = e.op("Add", &format!("{p}/mlp/gelu/Add"), &[d, one]);
        let d = e.op("Mul", &format!("{p}/mlp/gelu/Mul"), &[f, d]);
        let g = e.op("Mul", &format!("{p}/mlp/gelu/Mul_1"), &[d, half]);
        let o = e.linear(&format!("{p}.mlp.c_proj"), g, 4 * hidden, hidden);
        h = e.op("Add", &format!("{p}/mlp/residual/Add"), &[h, o]);
    }
    let x = e.layer_norm("ln_f", h, hidden);
    let w = e.param("lm_head.weight", &[hidden, vocab]);
    let logits = e.op("MatMul", "lm_head/MatMul", &[x, w]);
    e.output(logits, "logits");
    e.finish()
}

/// Nodes per block of [`wide_model`]: MatMul, Add (bias), Relu, Mul (scale), Add (residual).
pub const WIDE_BLOCK_NODES: usize = 5;
/// Width of the activations of [`wide_model`] (`[WIDE_BATCH, WIDE_DIM]`).
pub const WIDE_DIM: i64 = 16;
pub const WIDE_BATCH: i64 = 4;

/// A plain forward model of exactly `nodes` nodes (at least 1): `x [4, 16]` through
/// residual blocks `h + Relu(h·W + b) · s` (one 16×16 weight, bias and scale per block, all
/// zeros), the remainder filled with `Relu`s; output `logits [4, 16]`.
pub fn wide_model(nodes: usize) -> Model {
    let mut e = Emitter::new("synthetic_wide");
    let mut h = e.input("x", DType::Float, &[WIDE_BATCH, WIDE_DIM]);
    let nodes = nodes.max(1);
    for b in 0..nodes / WIDE_BLOCK_NODES {
        let w = e.param(&format!("b{b}.weight"), &[WIDE_DIM, WIDE_DIM]);
        let bias = e.param(&format!("b{b}.bias"), &[WIDE_DIM]);
        let s = e.param(&format!("b{b}.scale"), &[WIDE_DIM]);
        let t = e.op("MatMul", &format!("b{b}/MatMul"), &[h, w]);
        let t = e.op("Add", &format!("b{b}/Add"), &[t, bias]);
        let t = e.op("Relu", &format!("b{b}/Relu"), &[t]);
        let t = e.op("Mul", &format!("b{b}/Mul"), &[t, s]);
        h = e.op("Add", &format!("b{b}/residual/Add"), &[h, t]);
    }
    for k in 0..nodes % WIDE_BLOCK_NODES {
        h = e.op("Relu", &format!("tail{k}/Relu"), &[h]);
    }
    e.output(h, "logits");
    e.finish()
}

/// A chain `x [batch, dim]` → `layers` × (MatMul by a `[dim, dim]` f32 weight, Relu) →
/// `logits [batch, dim]` whose weights are external: weight `k` (`w{k}`) lives in
/// `location` at offset `k · dim² · 4`, length `dim² · 4`. The caller writes that file
/// (`layers · dim² · 4` bytes) in the model's folder and sets `base_dir`. With
/// `layers = 50, dim = 1600` the weights are 50 × 10.24 MB = 512 MB.
pub fn external_mlp(layers: usize, dim: i64, batch: i64, location: &str) -> Model {
    let mut e = Emitter::new("synthetic_external_mlp");
    let mut h = e.input("x", DType::Float, &[batch, dim]);
    let len = (dim * dim * 4) as u64;
    for k in 0..layers {
        let t = Tensor {
            dtype: DType::Float,
            dims: vec![dim, dim],
            data: TensorData::External(ExternalRef {
                location: location.into(),
                offset: k as u64 * len,
                length: Some(len),
                checksum: None,
                extra: Vec::new(),
            }),
            doc_string: String::new(),
        };
        let w = e.g.add_initializer(format!("w{k}"), t);
        let y = e.op("MatMul", &format!("l{k}/MatMul"), &[h, w]);
        h = e.op("Relu", &format!("l{k}/Relu"), &[y]);
    }
    e.output(h, "logits");
    e.finish()
}

/// Total bytes of the parameters of `m` (inline and external).
pub fn parameter_bytes(m: &Model) -> u64 {
    m.graph
        .initializers
        .iter()
        .filter_map(|&i| m.graph.value(i).initializer.as_ref()?.size_bytes())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::build_training_graph;

    #[test]
    fn transformer_infers_and_trains() {
        for layers in [1, 3, 12] {
            let mut m = transformer(layers, 128, 4, 16, 2, 100);
            assert_eq!(m.graph.nodes.len(), transformer_forward_nodes(layers));
            infer_shapes(&mut m.graph, OPSET).unwrap();
            let logits = m.graph.outputs[0];
            assert_eq!(m.graph.value(logits).name, "logits");
            assert_eq!(
                m.graph.value(logits).shape,
                Some(known_shape(&[2, 16, 100]))
            );
            crate::ir::verify(&m.graph).unwrap();
            let (tm, info) = build_training_graph(&m, &cross_entropy()).unwrap();
            // wte, wpe, lm_head, ln_f (2) and 12 per layer.
            assert_eq!(info.params.len(), 5 + 12 * layers);
            // The count does not depend on the dims, and grows linearly with the layers.
            assert_eq!(tm.graph.nodes.len(), transformer_training_nodes(layers));
        }
    }

    #[test]
    fn transformer_with_nodes_is_within_half_a_layer() {
        let (_, per_layer) = training_nodes_calibration();
        for target in [1_000, 10_000] {
            let m = transformer_with_nodes(target);
            let (tm, _) = build_training_graph(&m, &cross_entropy()).unwrap();
            let n = tm.graph.nodes.len();
            assert!(
                n.abs_diff(target) <= per_layer / 2 + 1,
                "{n} nodes for a target of {target}"
            );
            let layers = layers_for_training_nodes(target);
            assert_eq!(n, transformer_training_nodes(layers));
        }
        assert_eq!(layers_for_training_nodes(0), 1);
    }

    #[test]
    fn wide_model_has_exact_node_count() {
        for n in [1, 7, 50, 1003] {
            let mut m = wide_model(n);
            assert_eq!(m.graph.nodes.len(), n);
            infer_shapes(&mut m.graph, OPSET).unwrap();
            let y = m.graph.outputs[0];
            assert_eq!(m.graph.value(y).shape, Some(known_shape(&[4, 16])));
            crate::ir::verify(&m.graph).unwrap();
        }
    }

    #[test]
    fn external_mlp_is_all_placeholders_and_trains() {
        let m = external_mlp(3, 8, 2, "w.bin");
        assert_eq!(parameter_bytes(&m), 3 * 8 * 8 * 4);
        let offsets: Vec<u64> = m
            .graph
            .initializers
            .iter()
            .map(
                |&i| match &m.graph.value(i).initializer.as_ref().unwrap().data {
                    TensorData::External(r) => r.offset,
                    other => panic!("not external: {other:?}"),
                },
            )
            .collect();
        assert_eq!(offsets, vec![0, 256, 512]);
        let (tm, info) = build_training_graph(&m, &cross_entropy()).unwrap();
        assert_eq!(info.params.len(), 3);
        assert!(tm.graph.nodes.len() > m.graph.nodes.len());
    }
}
