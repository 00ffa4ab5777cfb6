#!/usr/bin/env python3
"""Export tiny configs of standard architectures to ONNX (both exporters), like
fixtures/export.py: random weights, fixed seed, eval(), dropout 0, batch 2, output named
`logits`. Every parameter gets N(0, 0.02) noise so that the TorchScript exporter does not
merge identical initializers.

Usage (a venv with fixtures/requirements-export.txt installed):
    python scripts/zoo/export_zoo.py [NAME ...]   (default: all)
Writes $ZOO_DIR/models/NAME.{ts17,dyn18}.onnx and $ZOO_DIR/export_status/NAME.VARIANT.json
($ZOO_DIR defaults to /tmp/zoo). Then scripts/zoo/run_zoo.sh runs onnx-ac on each.
"""
from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

HERE = Path(os.environ.get("ZOO_DIR", "/tmp/zoo"))
OUT = HERE / "models"
STATUS = HERE / "export_status"
B = 2


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def randomize_bn(model, gen):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                if m.weight is not None:
                    m.weight.copy_(1.0 + 0.2 * torch.randn(n, generator=gen))
                    m.bias.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                m.num_batches_tracked.fill_(100)


def perturb_params(model, gen, std=0.02):
    """Avoid identical-valued initializers (TorchScript exporter dedups them)."""
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.add_(std * torch.randn(p.shape, generator=gen))


def zero_dropout(model):
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0


# ----------------------------------------------------------------------------- vision

def img(gen, hw=32):
    return [("x", torch.randn(B, 3, hw, hw, generator=gen))]


def b_resnet18(gen):
    from torchvision.models import resnet18
    return resnet18(num_classes=10), img(gen, 32)


def b_mobilenet_v3_small(gen):
    from torchvision.models import mobilenet_v3_small
    return mobilenet_v3_small(num_classes=10, dropout=0.0), img(gen, 32)


def b_efficientnet_b0(gen):
    # reduced width/depth (same block types: MBConv, SE, SiLU, StochasticDepth)
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
    settings, last = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.34)
    m = EfficientNet(settings, dropout=0.0, stochastic_depth_prob=0.0, num_classes=10,
                     last_channel=last)
    return m, img(gen, 32)


def b_convnext_tiny(gen):
    # reduced ConvNeXt (same block: dwconv7x7, LayerNorm2d/permute, Linear, GELU, layer_scale)
    from torchvision.models.convnext import ConvNeXt, CNBlockConfig
    cfg = [CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1), CNBlockConfig(64, None, 2)]
    m = ConvNeXt(cfg, stochastic_depth_prob=0.0, layer_scale=0.5, num_classes=10)
    return m, img(gen, 32)


def b_vit_tiny(gen):
    from torchvision.models.vision_transformer import VisionTransformer
    m = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                          hidden_dim=64, mlp_dim=128, dropout=0.0, attention_dropout=0.0,
                          num_classes=10)
    return m, img(gen, 32)


def b_squeezenet1_1(gen):
    from torchvision.models import squeezenet1_1
    return squeezenet1_1(num_classes=10, dropout=0.0), img(gen, 64)


def b_densenet_tiny(gen):
    from torchvision.models.densenet import DenseNet
    m = DenseNet(growth_rate=8, block_config=(2, 2, 2), num_init_features=16, bn_size=2,
                 drop_rate=0.0, num_classes=10)
    return m, img(gen, 32)


class UNetSmall(nn.Module):
    def __init__(self, cin=3, ncls=4):
        super().__init__()
        def blk(a, b):
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b),
                                 nn.ReLU(inplace=True), nn.Conv2d(b, b, 3, padding=1),
                                 nn.ReLU(inplace=True))
        self.e1, self.e2, self.e3 = blk(cin, 8), blk(8, 16), blk(16, 32)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.d2 = blk(32, 16)
        self.d1 = blk(16 + 8, 8)
        self.head = nn.Conv2d(8, ncls, 1)

    def forward(self, x):
        e1 = self.e1(x)
        e2 = self.e2(self.pool(e1))
        e3 = self.e3(self.pool(e2))
        d2 = self.d2(torch.cat([self.up2(e3), e2], dim=1))
        up1 = F.interpolate(d2, scale_factor=2.0, mode="bilinear", align_corners=False)
        d1 = self.d1(torch.cat([up1, e1], dim=1))
        # per-pixel logits as [B, H, W, C] so cross-entropy over the last axis works
        return self.head(d1).permute(0, 2, 3, 1)


def b_unet_small(gen):
    return UNetSmall(), img(gen, 16)


class UNetConvT(UNetSmall):
    """Same as UNetSmall but the second upsampling is a ConvTranspose too (no Resize)."""
    def __init__(self):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(16, 16, 2, stride=2)

    def forward(self, x):
        e1 = self.e1(x)
        e2 = self.e2(self.pool(e1))
        e3 = self.e3(self.pool(e2))
        d2 = self.d2(torch.cat([self.up2(e3), e2], dim=1))
        d1 = self.d1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1).permute(0, 2, 3, 1)


def b_unet_convt(gen):
    return UNetConvT(), img(gen, 16)


# ----------------------------------------------------------------------------- sequence (torch.nn)

class RNNClassifier(nn.Module):
    def __init__(self, cell, vocab=256, emb=32, hid=48, ncls=5):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.rnn = getattr(nn, cell)(emb, hid, num_layers=2, batch_first=True, bidirectional=False)
        self.fc = nn.Linear(hid, ncls)

    def forward(self, input_ids):
        out, _ = self.rnn(self.emb(input_ids))
        return self.fc(out[:, -1])


def tok(gen, s=16, vocab=256):
    return [("input_ids", torch.randint(0, vocab, (B, s), generator=gen))]


def b_lstm(gen):
    return RNNClassifier("LSTM"), tok(gen)


def b_gru(gen):
    return RNNClassifier("GRU"), tok(gen)


class TEncClassifier(nn.Module):
    def __init__(self, vocab=256, d=64, ncls=5):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, 16, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, 4, 128, dropout=0.0, batch_first=True,
                                           activation="gelu")
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.fc = nn.Linear(d, ncls)

    def forward(self, input_ids):
        h = self.enc(self.emb(input_ids) + self.pos)
        return self.fc(self.norm(h).mean(dim=1))


def b_transformer_encoder(gen):
    return TEncClassifier(), tok(gen)


# ----------------------------------------------------------------------------- HF

def hf_eager(cfg):
    cfg._attn_implementation = "eager"
    return cfg


def ids_mask(gen, s=16, vocab=256):
    return [("input_ids", torch.randint(0, vocab, (B, s), generator=gen)),
            ("attention_mask", torch.ones(B, s, dtype=torch.int64))]


def b_llama(gen):
    from transformers import LlamaConfig, LlamaForCausalLM

    class M(LlamaForCausalLM):
        def forward(self, input_ids, attention_mask):
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   use_cache=False, return_dict=True).logits

    cfg = hf_eager(LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                               num_key_value_heads=2, intermediate_size=128, vocab_size=256,
                               max_position_embeddings=64, use_cache=False,
                               tie_word_embeddings=False, attention_dropout=0.0))
    return M(cfg), ids_mask(gen)


def b_mixtral(gen):
    from transformers import MixtralConfig, MixtralForCausalLM

    class M(MixtralForCausalLM):
        def forward(self, input_ids, attention_mask):
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   use_cache=False, return_dict=True).logits

    cfg = hf_eager(MixtralConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                 num_key_value_heads=2, intermediate_size=128, vocab_size=256,
                                 max_position_embeddings=64, num_local_experts=4,
                                 num_experts_per_tok=2, use_cache=False,
                                 tie_word_embeddings=False, router_jitter_noise=0.0))
    return M(cfg), ids_mask(gen)


def b_t5(gen):
    from transformers import T5Config, T5ForConditionalGeneration

    class M(T5ForConditionalGeneration):
        def forward(self, input_ids, attention_mask, decoder_input_ids):
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   decoder_input_ids=decoder_input_ids, use_cache=False,
                                   return_dict=True).logits

    cfg = hf_eager(T5Config(vocab_size=256, d_model=64, d_kv=16, d_ff=128, num_layers=2,
                            num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=8,
                            relative_attention_max_distance=16, dropout_rate=0.0,
                            decoder_start_token_id=0, pad_token_id=0, use_cache=False))
    inputs = ids_mask(gen) + [("decoder_input_ids", torch.randint(0, 256, (B, 12), generator=gen))]
    return M(cfg), inputs


def b_distilbert(gen):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    class M(DistilBertForSequenceClassification):
        def forward(self, input_ids, attention_mask):
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   return_dict=True).logits

    cfg = hf_eager(DistilBertConfig(vocab_size=256, dim=64, n_layers=2, n_heads=4, hidden_dim=128,
                                    max_position_embeddings=64, dropout=0.0, attention_dropout=0.0,
                                    seq_classif_dropout=0.0, num_labels=3))
    return M(cfg), ids_mask(gen)


def b_roberta(gen):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    class M(RobertaForSequenceClassification):
        def forward(self, input_ids, attention_mask):
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   return_dict=True).logits

    cfg = hf_eager(RobertaConfig(vocab_size=256, hidden_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=128,
                                 max_position_embeddings=64, hidden_dropout_prob=0.0,
                                 attention_probs_dropout_prob=0.0, classifier_dropout=0.0,
                                 num_labels=3, pad_token_id=1))
    ids = torch.randint(3, 256, (B, 16), generator=gen)
    return M(cfg), [("input_ids", ids), ("attention_mask", torch.ones(B, 16, dtype=torch.int64))]


def b_wav2vec2(gen):
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    class M(Wav2Vec2ForSequenceClassification):
        def forward(self, input_values):
            return super().forward(input_values=input_values, return_dict=True).logits

    cfg = hf_eager(Wav2Vec2Config(
        vocab_size=32, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, conv_dim=(16, 16, 16), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm="group",
        hidden_dropout=0.0, activation_dropout=0.0, attention_dropout=0.0, feat_proj_dropout=0.0,
        final_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0, num_labels=4,
        classifier_proj_size=16, use_weighted_layer_sum=False, do_stable_layer_norm=False))
    return M(cfg), [("input_values", torch.randn(B, 800, generator=gen))]


def b_wav2vec2_nown(gen):
    """wav2vec2 with the pos-conv weight_norm parametrization removed (no ReduceL2)."""
    from torch.nn.utils import parametrize
    m, inputs = b_wav2vec2(gen)
    conv = m.wav2vec2.encoder.pos_conv_embed.conv
    parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)
    return m, inputs


def b_whisper_enc(gen):
    from transformers import WhisperConfig, WhisperForAudioClassification

    class M(WhisperForAudioClassification):
        def forward(self, input_features):
            return super().forward(input_features=input_features, return_dict=True).logits

    cfg = hf_eager(WhisperConfig(
        vocab_size=256, num_mel_bins=16, encoder_layers=2, encoder_attention_heads=4,
        decoder_layers=2, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
        d_model=64, max_source_positions=16, max_target_positions=16, dropout=0.0,
        attention_dropout=0.0, activation_dropout=0.0, encoder_layerdrop=0.0,
        classifier_proj_size=32, num_labels=4, use_weighted_layer_sum=False))
    return M(cfg), [("input_features", torch.randn(B, 16, 32, generator=gen))]


BUILDERS = {
    "resnet18": b_resnet18,
    "mobilenet_v3_small": b_mobilenet_v3_small,
    "efficientnet_b0": b_efficientnet_b0,
    "convnext_tiny": b_convnext_tiny,
    "vit_tiny": b_vit_tiny,
    "squeezenet1_1": b_squeezenet1_1,
    "densenet_tiny": b_densenet_tiny,
    "unet_small": b_unet_small,
    "unet_convt": b_unet_convt,
    "lstm": b_lstm,
    "gru": b_gru,
    "transformer_encoder": b_transformer_encoder,
    "llama": b_llama,
    "t5": b_t5,
    "distilbert": b_distilbert,
    "roberta": b_roberta,
    "wav2vec2": b_wav2vec2,
    "wav2vec2_nown": b_wav2vec2_nown,
    "whisper_enc": b_whisper_enc,
    "mixtral": b_mixtral,
}
HF = {"llama", "t5", "distilbert", "roberta", "wav2vec2", "whisper_enc", "mixtral",
      "transformer_encoder", "vit_tiny"}


# symbolic-dim variants (ts17 only, dynamic_axes like fixtures/export.py): name -> (builder, axes)
DYNAMIC = {
    "llama_dynamic": ("llama", {0: "batch", 1: "seq"}, {0: "batch", 1: "seq"}),
    "t5_dynamic": ("t5", {0: "batch", 1: "seq"}, {0: "batch"}),
    "vit_tiny_dynbatch": ("vit_tiny", {0: "batch"}, {0: "batch"}),
    "resnet18_dynbatch": ("resnet18", {0: "batch"}, {0: "batch"}),
}


def export(model, inputs, path: Path, variant: str, dyn_axes=None):
    args = tuple(t for _, t in inputs)
    in_names = [n for n, _ in inputs]
    for stale in [path, *path.parent.glob(path.name + "*.data")]:
        if stale.exists():
            stale.unlink()
    if variant == "ts17":
        kw = {"dynamic_axes": dyn_axes} if dyn_axes else {}
        torch.onnx.export(model, args, str(path), dynamo=False, opset_version=17,
                          do_constant_folding=False, input_names=in_names, output_names=["logits"],
                          **kw)
    else:
        torch.onnx.export(model, args, str(path), dynamo=True, opset_version=18, optimize=False,
                          input_names=in_names, output_names=["logits"], external_data=False)
    m = onnx.load(str(path))
    onnx.save(m, str(path), save_as_external_data=False)
    for p in path.parent.glob(path.name + "*.data"):
        p.unlink()


def check_ort(path, inputs, want):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in s.get_inputs()]
    feeds = dict(zip(names, [t.numpy() for _, t in inputs]))
    got = s.run(None, feeds)[0]
    return float(np.abs(got - want).max()) if got.shape == want.shape else f"shape {got.shape} vs {want.shape}"


def main(names, builders=None, dynamic=None):
    """Exports `names` with `builders` (default: this file's) and their `dynamic` variants."""
    builders = BUILDERS if builders is None else builders
    dynamic = DYNAMIC if dynamic is None else dynamic
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    STATUS.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        seed_all(100 + i)
        gen = torch.Generator().manual_seed(2000 + i)
        t0 = time.time()
        dyn = dynamic.get(name)
        try:
            model, inputs = builders[dyn[0] if dyn else name](gen)
            zero_dropout(model)
            randomize_bn(model, gen)
            # all models (not only HF): the TorchScript exporter merges identical-valued
            # initializers (zero biases, constant layer_scale) into one + Identity nodes
            perturb_params(model, gen)
            model.eval()
            with torch.no_grad():
                want = model(*[t for _, t in inputs]).numpy()
        except Exception as e:
            for v in ("ts17", "dyn18"):
                (STATUS / f"{name}.{v}.json").write_text(json.dumps(
                    {"name": name, "variant": v, "ok": False, "stage": "build",
                     "error": f"{type(e).__name__}: {e}"[:2000], "tb": traceback.format_exc()[-4000:]}))
            print(f"{name}: BUILD FAILED {e}", flush=True)
            continue
        nparams = sum(p.numel() for p in model.parameters())
        axes = None
        if dyn:
            axes = {n: dict(dyn[1]) for n, _ in inputs}
            if name == "t5_dynamic":  # decoder length differs from encoder length
                axes["decoder_input_ids"] = {0: "batch", 1: "dec_seq"}
            axes["logits"] = dict(dyn[2])
            if name == "t5_dynamic":
                axes["logits"] = {0: "batch", 1: "dec_seq"}
        for v in (("ts17",) if dyn else ("ts17", "dyn18")):
            path = OUT / f"{name}.{v}.onnx"
            t1 = time.time()
            st = {"name": name, "variant": v, "params": nparams, "logits_shape": list(want.shape),
                  "inputs": {n: list(t.shape) for n, t in inputs}}
            try:
                export(model, inputs, path, v, axes)
                g = onnx.load(str(path)).graph
                st.update(ok=True, nodes=len(g.node),
                          ops=sorted({n.op_type for n in g.node}))
                try:
                    st["ort_vs_torch"] = check_ort(path, inputs, want)
                except Exception as e:
                    st["ort_vs_torch"] = f"ORT FAIL: {str(e)[:300]}"
            except Exception as e:
                if path.exists():
                    path.unlink()
                st.update(ok=False, stage="export", error=f"{type(e).__name__}: {e}"[:3000],
                          tb=traceback.format_exc()[-4000:])
            st["export_s"] = round(time.time() - t1, 2)
            (STATUS / f"{name}.{v}.json").write_text(json.dumps(st, indent=1))
            print(f"{name}.{v}: {'ok' if st['ok'] else 'EXPORT FAILED: ' + st['error'][:300]} "
                  f"({st['export_s']} s) ort_vs_torch={st.get('ort_vs_torch')}", flush=True)
        print(f"{name}: total {time.time() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(BUILDERS))
