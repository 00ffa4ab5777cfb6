#!/usr/bin/env python3
"""The 8-layer transformers of issue #11 (docs/benchmarks.md's deep table), exported exactly
as export_zoo.py does (its helpers and its `main`: random weights, eval(), dropout 0, both
exporters, output `logits`), at realistic depth and batch instead of tiny configs:

  gpt2_8l   GPT2LMHeadModel, 8 layers, width 256, 4 heads, vocab 1000, batch 8 x 128 tokens
  llama_8l  LlamaForCausalLM, 8 layers, width 256, 4 heads (2 KV), MLP 688, vocab 1000, 8 x 128
  vit_8l    ViTForImageClassification, 8 layers, width 256, 4 heads, MLP 1024, 64 x 128 image,
            patch 8 (128 patches + CLS), batch 8

All with eager attention; `gpt2_8l_dynbatch` (asked for by name) is gpt2_8l with a symbolic
batch, for scripts/zoo/bench_seed.py. Usage (a venv with fixtures/requirements-export.txt installed):
    python scripts/zoo/export_deep.py [NAME ...]   (default: all)
Writes $ZOO_DIR/models/NAME.{ts17,dyn18}.onnx ($ZOO_DIR defaults to /tmp/zoo_deep); then
scripts/zoo/bench_deep.sh runs the budget table on them.
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("ZOO_DIR", "/tmp/zoo_deep")  # read by export_zoo at import
sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_zoo  # noqa: E402
from export_zoo import hf_eager, torch  # noqa: E402
from export_zoo2 import causal_lm, pixcls  # noqa: E402  (the HF forward wrappers)

LAYERS, WIDTH, HEADS, VOCAB = 8, 256, 4, 1000
BATCH, SEQ = 8, 128


def ids_mask(gen):
    return [("input_ids", torch.randint(0, VOCAB, (BATCH, SEQ), generator=gen)),
            ("attention_mask", torch.ones(BATCH, SEQ, dtype=torch.int64))]


def b_gpt2_8l(gen):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = hf_eager(GPT2Config(n_layer=LAYERS, n_embd=WIDTH, n_head=HEADS, vocab_size=VOCAB,
                              n_positions=SEQ, resid_pdrop=0.0, embd_pdrop=0.0,
                              attn_pdrop=0.0, use_cache=False))
    return causal_lm(GPT2LMHeadModel)(cfg), ids_mask(gen)


def b_llama_8l(gen):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = hf_eager(LlamaConfig(num_hidden_layers=LAYERS, hidden_size=WIDTH,
                               num_attention_heads=HEADS, num_key_value_heads=2,
                               intermediate_size=688, vocab_size=VOCAB,
                               max_position_embeddings=SEQ, use_cache=False,
                               tie_word_embeddings=False, attention_dropout=0.0))
    return causal_lm(LlamaForCausalLM)(cfg), ids_mask(gen)


def b_vit_8l(gen):
    from transformers import ViTConfig, ViTForImageClassification

    cfg = hf_eager(ViTConfig(num_hidden_layers=LAYERS, hidden_size=WIDTH,
                             num_attention_heads=HEADS, intermediate_size=4 * WIDTH,
                             image_size=(64, 128), patch_size=8, num_labels=10,
                             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    return pixcls(ViTForImageClassification)(cfg), [("pixel_values", torch.randn(BATCH, 3, 64, 128, generator=gen))]


BUILDERS = {"gpt2_8l": b_gpt2_8l, "llama_8l": b_llama_8l, "vit_8l": b_vit_8l}
# The seed-style table (scripts/zoo/bench_seed.py): GPT-2 with a symbolic batch (ts17 only,
# traced at batch 8; bind it with --dim batch=N). Not in the default list.
DYNAMIC = {"gpt2_8l_dynbatch": ("gpt2_8l", {0: "batch"}, {0: "batch"})}

if __name__ == "__main__":
    export_zoo.main(sys.argv[1:] or list(BUILDERS), builders=BUILDERS, dynamic=DYNAMIC)
