//! Llama-style decoder graphs generated from a config, structure only: every weight is
//! external data in a file that is never written, so a 70B model is a few hundred KB of
//! ONNX and `onnx-ac estimate` loads it as shapes and dtypes. For the estimator's checks
//! (tests/estimate.rs, docs/estimate.md) against closed forms: parameter bytes exactly,
//! activation bytes against Korthikanti et al.'s per-layer formula.
//!
//! The forward follows transformers' `LlamaForCausalLM` as torch.onnx exports it (float32,
//! eval, no KV cache): token embedding (Gather); per layer RMSNorm (`x·rsqrt(mean(x²)+ε)·w`
//! as Pow, ReduceMean, Add, Sqrt, Reciprocal, Mul, Mul), Q/K/V projections without bias,
//! rotary embedding (`q·cos + rotate_half(q)·sin`, cos/sin computed from `position_ids`
//! and `inv_freq`), grouped-query attention (`repeat_kv`: Unsqueeze, Expand, Reshape),
//! scaled scores plus a causal mask, Softmax, probabilities·V, output projection, residual;
//! RMSNorm, SwiGLU MLP (`down(silu(gate(x))·up(x))`, SiLU as Sigmoid·x), residual; final
//! RMSNorm and the LM head (tied: the embedding, transposed). Inputs `input_ids` and
//! `position_ids` int64 `[batch, seq]` (symbolic); output `logits [batch, seq, vocab]`.

use crate::error::{Error, Result};
use onnx_ac_passes::ir::{
    Attribute, DType, Dim, ExternalRef, Graph, Model, Node, Tensor, TensorData, ValueId,
};
use protobuf::Message;
use std::path::Path;

/// The ai.onnx opset of the generated graphs.
const OPSET: i64 = 17;

/// A Llama config (the fields of transformers' `LlamaConfig` the structure needs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlamaConfig {
    pub name: &'static str,
    pub hidden: i64,
    pub layers: usize,
    pub heads: i64,
    pub kv_heads: i64,
    pub intermediate: i64,
    pub vocab: i64,
    pub tied_embeddings: bool,
}

impl LlamaConfig {
    /// meta-llama/Llama-3.2-1B: 1,235,814,400 parameters.
    pub fn llama_3_2_1b() -> Self {
        LlamaConfig {
            name: "llama-3.2-1b",
            hidden: 2048,
            layers: 16,
            heads: 32,
            kv_heads: 8,
            intermediate: 8192,
            vocab: 128_256,
            tied_embeddings: true,
        }
    }

    /// meta-llama/Llama-3.1-8B: 8,030,261,248 parameters.
    pub fn llama_3_1_8b() -> Self {
        LlamaConfig {
            name: "llama-3.1-8b",
            hidden: 4096,
            layers: 32,
            heads: 32,
            kv_heads: 8,
            intermediate: 14_336,
            vocab: 128_256,
            tied_embeddings: false,
        }
    }

    /// meta-llama/Llama-3.1-70B: 70,553,706,496 parameters.
    pub fn llama_3_1_70b() -> Self {
        LlamaConfig {
            name: "llama-3.1-70b",
            hidden: 8192,
            layers: 80,
            heads: 64,
            kv_heads: 8,
            intermediate: 28_672,
            vocab: 128_256,
            tied_embeddings: false,
        }
    }

    pub fn head_dim(&self) -> i64 {
        self.hidden / self.heads
    }

    /// The closed form of the parameter count: embedding `V·h`; per layer two RMSNorm
    /// scales `2h`, Q and O `2·h·a·d`, K and V `2·h·kv·d`, the MLP `3·h·I`; final norm `h`;
    /// LM head `V·h` unless tied.
    pub fn parameter_count(&self) -> u64 {
        let (h, d) = (self.hidden as u64, self.head_dim() as u64);
        let (a, kv) = (self.heads as u64, self.kv_heads as u64);
        let (i, v) = (self.intermediate as u64, self.vocab as u64);
        let layer = 2 * h + 2 * h * a * d + 2 * h * kv * d + 3 * h * i;
        let head = if self.tied_embeddings { 0 } else { v * h };
        v * h + self.layers as u64 * layer + h + head
    }

    /// The graph, its weights external in `<weights>` (a file that need not exist).
    pub fn build(&self, weights: &str) -> Model {
        build(self, weights)
    }

    /// Writes the graph to `path`, its weights external in `<file name>.weights` beside it,
    /// which is not written (structure only).
    pub fn write(&self, path: &Path) -> Result<()> {
        let weights = format!(
            "{}.weights",
            path.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into())
        );
        let bytes = structure_only_bytes(&self.build(&weights))?;
        std::fs::write(path, bytes).map_err(|e| Error::Output {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

/// Serializes a model whose initializers are external references, without reading or
/// writing their data: the exporter would copy the side file, which does not exist. The
/// references are swapped for empty tensors for the export and written back into the
/// protobuf.
pub fn structure_only_bytes(m: &Model) -> Result<Vec<u8>> {
    use crate::onnx::proto;
    let mut empty = m.clone();
    let mut refs = std::collections::HashMap::new();
    for &i in &m.graph.initializers {
        let v = empty.graph.value_mut(i);
        if let Some(t) = &mut v.initializer {
            if let TensorData::External(r) = &t.data {
                refs.insert(v.name.clone(), (r.clone(), t.size_bytes()));
                t.data = TensorData::Raw(std::sync::Arc::new(Vec::new()));
            }
        }
    }
    let opts = crate::onnx::SaveOptions {
        all_value_info: false,
    };
    let bytes = crate::onnx::to_bytes(&empty, &opts)?;
    let mut mp = proto::ModelProto::parse_from_bytes(&bytes)
        .map_err(|e| Error::Internal(format!("re-reading a generated model: {e}")))?;
    let g = mp.graph.as_mut().expect("a model has a graph");
    for t in &mut g.initializer {
        if let Some((r, len)) = refs.get(t.name()) {
            t.raw_data = None;
            t.data_location = Some(protobuf::EnumOrUnknown::new(
                proto::tensor_proto::DataLocation::EXTERNAL,
            ));
            let entry = |k: &str, v: String| {
                let mut e = proto::StringStringEntryProto::new();
                e.key = Some(k.into());
                e.value = Some(v);
                e
            };
            t.external_data = vec![
                entry("location", r.location.clone()),
                entry("offset", r.offset.to_string()),
                entry("length", len.unwrap_or(0).to_string()),
            ];
        }
    }
    mp.write_to_bytes()
        .map_err(|e| Error::Internal(format!("serializing a generated model: {e}")))
}

/// Builds nodes with unique names and external parameters laid out one after another.
struct Emitter {
    g: Graph,
    weights: String,
    offset: u64,
}

impl Emitter {
    fn input(&mut self, name: &str, dtype: DType, shape: Vec<Dim>) -> ValueId {
        let id = self.g.new_value(name);
        let v = self.g.value_mut(id);
        v.dtype = Some(dtype);
        v.shape = Some(shape);
        self.g.inputs.push(id);
        id
    }

    /// A float32 parameter whose data is external (never read).
    fn param(&mut self, name: &str, dims: &[i64]) -> ValueId {
        let len = dims.iter().product::<i64>() as u64 * 4;
        let t = Tensor {
            dtype: DType::Float,
            dims: dims.to_vec(),
            data: TensorData::External(ExternalRef {
                location: self.weights.clone(),
                offset: self.offset,
                length: Some(len),
                checksum: None,
                extra: Vec::new(),
            }),
            doc_string: String::new(),
        };
        self.offset += len;
        self.g.add_initializer(name, t)
    }

    fn constant(&mut self, name: &str, t: Tensor) -> ValueId {
        self.node("Constant", name, &[], vec![Attribute::tensor("value", t)])
    }

    fn ints(&mut self, name: &str, vals: &[i64]) -> ValueId {
        self.constant(name, Tensor::from_i64(vec![vals.len() as i64], vals))
    }

    fn scalar(&mut self, name: &str, v: f32) -> ValueId {
        self.constant(name, Tensor::from_f32(Vec::new(), &[v]))
    }

    fn node(&mut self, op: &str, name: &str, inputs: &[ValueId], attrs: Vec<Attribute>) -> ValueId {
        let out = self.g.new_value(format!("{name}_output_0"));
        let mut n = Node::new(
            op,
            inputs.iter().map(|&i| Some(i)).collect(),
            vec![Some(out)],
        );
        n.name = name.into();
        n.attrs = attrs;
        self.g.add_node(n);
        out
    }

    fn op(&mut self, op: &str, name: &str, inputs: &[ValueId]) -> ValueId {
        self.node(op, name, inputs, Vec::new())
    }

    /// `x·rsqrt(mean(x², -1) + ε)·w`, as transformers' `LlamaRMSNorm` exports.
    fn rms_norm(
        &mut self,
        p: &str,
        x: ValueId,
        hidden: i64,
        two: ValueId,
        eps: ValueId,
    ) -> ValueId {
        let w = self.param(&format!("{p}.weight"), &[hidden]);
        let sq = self.op("Pow", &format!("/{p}/Pow"), &[x, two]);
        let mean = self.node(
            "ReduceMean",
            &format!("/{p}/ReduceMean"),
            &[sq],
            vec![
                Attribute::ints("axes", vec![-1]),
                Attribute::int("keepdims", 1),
            ],
        );
        let var = self.op("Add", &format!("/{p}/Add"), &[mean, eps]);
        let sqrt = self.op("Sqrt", &format!("/{p}/Sqrt"), &[var]);
        let r = self.op("Reciprocal", &format!("/{p}/Reciprocal"), &[sqrt]);
        let xn = self.op("Mul", &format!("/{p}/Mul"), &[x, r]);
        self.op("Mul", &format!("/{p}/Mul_1"), &[w, xn])
    }

    /// `x·W`, W `[k, n]` without bias.
    fn linear(&mut self, p: &str, x: ValueId, k: i64, n: i64) -> ValueId {
        let w = self.param(&format!("{p}.weight"), &[k, n]);
        self.op("MatMul", &format!("/{p}/MatMul"), &[x, w])
    }

    /// `[b, s, heads·d]` → `[b, heads, s, d]`.
    fn split_heads(&mut self, p: &str, x: ValueId, heads: i64, d: i64) -> ValueId {
        let shape = self.ints(&format!("/{p}/Reshape_shape"), &[0, 0, heads, d]);
        let r = self.op("Reshape", &format!("/{p}/Reshape"), &[x, shape]);
        self.node(
            "Transpose",
            &format!("/{p}/Transpose"),
            &[r],
            vec![Attribute::ints("perm", vec![0, 2, 1, 3])],
        )
    }

    /// `x·cos + rotate_half(x)·sin`, `rotate_half(x) = concat(-x₂, x₁)` on the last axis.
    fn rotary(&mut self, p: &str, x: ValueId, d: i64, cos: ValueId, sin: ValueId) -> ValueId {
        let axis = self.ints(&format!("/{p}/axis"), &[-1]);
        let (s0, s1, s2) = (
            self.ints(&format!("/{p}/start0"), &[0]),
            self.ints(&format!("/{p}/half"), &[d / 2]),
            self.ints(&format!("/{p}/end"), &[i64::MAX]),
        );
        let x1 = self.op("Slice", &format!("/{p}/Slice"), &[x, s0, s1, axis]);
        let x2 = self.op("Slice", &format!("/{p}/Slice_1"), &[x, s1, s2, axis]);
        let neg = self.op("Neg", &format!("/{p}/Neg"), &[x2]);
        let rot = self.node(
            "Concat",
            &format!("/{p}/Concat"),
            &[neg, x1],
            vec![Attribute::int("axis", -1)],
        );
        let a = self.op("Mul", &format!("/{p}/Mul"), &[x, cos]);
        let b = self.op("Mul", &format!("/{p}/Mul_1"), &[rot, sin]);
        self.op("Add", &format!("/{p}/Add"), &[a, b])
    }

    /// transformers' `repeat_kv`: `[b, kv, s, d]` → `[b, kv·n, s, d]` (a copy).
    fn repeat_kv(&mut self, p: &str, x: ValueId, heads: i64, n_rep: i64, d: i64) -> ValueId {
        if n_rep == 1 {
            return x;
        }
        let ax = self.ints(&format!("/{p}/axes"), &[2]);
        let u = self.op("Unsqueeze", &format!("/{p}/Unsqueeze"), &[x, ax]);
        let e = self.ints(&format!("/{p}/expand"), &[1, 1, n_rep, 1, 1]);
        let x = self.op("Expand", &format!("/{p}/Expand"), &[u, e]);
        let shape = self.ints(&format!("/{p}/shape"), &[0, heads, -1, d]);
        self.op("Reshape", &format!("/{p}/Reshape"), &[x, shape])
    }
}

fn build(c: &LlamaConfig, weights: &str) -> Model {
    let mut e = Emitter {
        g: Graph {
            name: c.name.into(),
            ..Graph::default()
        },
        weights: weights.into(),
        offset: 0,
    };
    let (h, a, kv, d, i) = (c.hidden, c.heads, c.kv_heads, c.head_dim(), c.intermediate);
    let bs = || vec![Dim::Sym("batch".into()), Dim::Sym("seq".into())];
    let ids = e.input("input_ids", DType::Int64, bs());
    let pos = e.input("position_ids", DType::Int64, bs());
    let embed = e.param("model.embed_tokens.weight", &[c.vocab, h]);
    let mut x = e.op("Gather", "/model/embed_tokens/Gather", &[embed, ids]);
    // Rotary tables from the positions: freqs = pos ⊗ inv_freq, emb = [freqs, freqs].
    let inv_freq: Vec<f32> = (0..d / 2)
        .map(|k| 500_000f32.powf(-2.0 * k as f32 / d as f32))
        .collect();
    let inv = e.constant(
        "/model/rotary_emb/inv_freq",
        Tensor::from_f32(vec![d / 2], &inv_freq),
    );
    let posf = e.node(
        "Cast",
        "/model/rotary_emb/Cast",
        &[pos],
        vec![Attribute::int("to", DType::Float.to_onnx() as i64)],
    );
    let last = e.ints("/model/rotary_emb/axes", &[-1]);
    let posu = e.op("Unsqueeze", "/model/rotary_emb/Unsqueeze", &[posf, last]);
    let freqs = e.op("Mul", "/model/rotary_emb/Mul", &[posu, inv]);
    let emb = e.node(
        "Concat",
        "/model/rotary_emb/Concat",
        &[freqs, freqs],
        vec![Attribute::int("axis", -1)],
    );
    let heads_axis = e.ints("/model/rotary_emb/heads_axis", &[1]);
    let cos = e.op("Cos", "/model/rotary_emb/Cos", &[emb]);
    let cos = e.op(
        "Unsqueeze",
        "/model/rotary_emb/Unsqueeze_1",
        &[cos, heads_axis],
    );
    let sin = e.op("Sin", "/model/rotary_emb/Sin", &[emb]);
    let sin = e.op(
        "Unsqueeze",
        "/model/rotary_emb/Unsqueeze_2",
        &[sin, heads_axis],
    );
    // Causal mask from the positions: key after query → the float minimum.
    let qa = e.ints("/model/mask/q_axes", &[1, 3]);
    let ka = e.ints("/model/mask/k_axes", &[1, 2]);
    let pq = e.op("Unsqueeze", "/model/mask/Unsqueeze", &[pos, qa]);
    let pk = e.op("Unsqueeze", "/model/mask/Unsqueeze_1", &[pos, ka]);
    let future = e.op("Greater", "/model/mask/Greater", &[pk, pq]);
    let (min, zero) = (
        e.scalar("/model/mask/min", f32::MIN),
        e.scalar("/model/mask/zero", 0.0),
    );
    let mask = e.op("Where", "/model/mask/Where", &[future, min, zero]);
    let two = e.scalar("/model/two", 2.0);
    let eps = e.scalar("/model/eps", 1e-5);
    let scale = e.scalar("/model/scaling", 1.0 / (d as f32).sqrt());
    let merge = e.ints("/model/merge_shape", &[0, 0, h]);
    for l in 0..c.layers {
        let p = format!("model.layers.{l}");
        let y = e.rms_norm(&format!("{p}.input_layernorm"), x, h, two, eps);
        let q = e.linear(&format!("{p}.self_attn.q_proj"), y, h, a * d);
        let k = e.linear(&format!("{p}.self_attn.k_proj"), y, h, kv * d);
        let v = e.linear(&format!("{p}.self_attn.v_proj"), y, h, kv * d);
        let q = e.split_heads(&format!("{p}/self_attn/q"), q, a, d);
        let k = e.split_heads(&format!("{p}/self_attn/k"), k, kv, d);
        let v = e.split_heads(&format!("{p}/self_attn/v"), v, kv, d);
        let q = e.rotary(&format!("{p}/self_attn/q_rot"), q, d, cos, sin);
        let k = e.rotary(&format!("{p}/self_attn/k_rot"), k, d, cos, sin);
        let k = e.repeat_kv(&format!("{p}/self_attn/repeat_k"), k, a, a / kv, d);
        let v = e.repeat_kv(&format!("{p}/self_attn/repeat_v"), v, a, a / kv, d);
        let kt = e.node(
            "Transpose",
            &format!("/{p}/self_attn/Transpose"),
            &[k],
            vec![Attribute::ints("perm", vec![0, 1, 3, 2])],
        );
        let s = e.op("MatMul", &format!("/{p}/self_attn/MatMul"), &[q, kt]);
        let s = e.op("Mul", &format!("/{p}/self_attn/Mul"), &[s, scale]);
        let s = e.op("Add", &format!("/{p}/self_attn/Add"), &[s, mask]);
        let probs = e.node(
            "Softmax",
            &format!("/{p}/self_attn/Softmax"),
            &[s],
            vec![Attribute::int("axis", -1)],
        );
        let o = e.op("MatMul", &format!("/{p}/self_attn/MatMul_1"), &[probs, v]);
        let o = e.node(
            "Transpose",
            &format!("/{p}/self_attn/Transpose_1"),
            &[o],
            vec![Attribute::ints("perm", vec![0, 2, 1, 3])],
        );
        let o = e.op("Reshape", &format!("/{p}/self_attn/Reshape"), &[o, merge]);
        let o = e.linear(&format!("{p}.self_attn.o_proj"), o, a * d, h);
        x = e.op("Add", &format!("/{p}/Add"), &[x, o]);
        let y = e.rms_norm(&format!("{p}.post_attention_layernorm"), x, h, two, eps);
        let g = e.linear(&format!("{p}.mlp.gate_proj"), y, h, i);
        let u = e.linear(&format!("{p}.mlp.up_proj"), y, h, i);
        let sg = e.op("Sigmoid", &format!("/{p}/mlp/act_fn/Sigmoid"), &[g]);
        let silu = e.op("Mul", &format!("/{p}/mlp/act_fn/Mul"), &[g, sg]);
        let m = e.op("Mul", &format!("/{p}/mlp/Mul"), &[silu, u]);
        let down = e.linear(&format!("{p}.mlp.down_proj"), m, i, h);
        x = e.op("Add", &format!("/{p}/Add_1"), &[x, down]);
    }
    let y = e.rms_norm("model.norm", x, h, two, eps);
    let logits = if c.tied_embeddings {
        let wt = e.node(
            "Transpose",
            "/lm_head/Transpose",
            &[embed],
            vec![Attribute::ints("perm", vec![1, 0])],
        );
        e.op("MatMul", "/lm_head/MatMul", &[y, wt])
    } else {
        e.linear("lm_head", y, h, c.vocab)
    };
    e.g.value_mut(logits).name = "logits".into();
    e.g.value_mut(logits).dtype = Some(DType::Float);
    e.g.value_mut(logits).shape = Some(vec![
        Dim::Sym("batch".into()),
        Dim::Sym("seq".into()),
        Dim::Known(c.vocab),
    ]);
    e.g.outputs.push(logits);
    Model {
        ir_version: 8,
        opset_imports: vec![(String::new(), OPSET)],
        producer_name: "onnx-ac-estimate-llama".into(),
        graph: e.g,
        ..Model::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms_match_the_published_counts() {
        assert_eq!(LlamaConfig::llama_3_2_1b().parameter_count(), 1_235_814_400);
        assert_eq!(LlamaConfig::llama_3_1_8b().parameter_count(), 8_030_261_248);
        assert_eq!(
            LlamaConfig::llama_3_1_70b().parameter_count(),
            70_553_706_496
        );
    }
}
