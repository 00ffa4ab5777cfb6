#!/usr/bin/env python3
"""The second batch of architectures (see docs/architectures.md), otherwise the same as
export_zoo.py. Export tiny configs of standard architectures to ONNX (both exporters), like
fixtures/export.py: random weights, fixed seed, eval(), dropout 0, batch 2, output named
`logits`. Every parameter gets N(0, 0.02) noise so that the TorchScript exporter does not
merge identical initializers.

Usage (a venv with fixtures/requirements-export.txt installed):
    python scripts/zoo/export_zoo2.py [NAME ...]   (default: all)
Writes $ZOO_DIR/models/NAME.{ts17,dyn18}.onnx and $ZOO_DIR/export_status/NAME.VARIANT.json
($ZOO_DIR defaults to /tmp/zoo2). Then ZOO_DIR=/tmp/zoo2 scripts/zoo/run_zoo.sh runs onnx-ac
on each.
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

HERE = Path(os.environ.get("ZOO_DIR", "/tmp/zoo2"))
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


# ============================================================================= second batch

def causal_lm(cls):
    class M(cls):
        def forward(self, input_ids, attention_mask):
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   use_cache=False, return_dict=True).logits
    M.__name__ = cls.__name__
    return M


def seqcls(cls):
    class M(cls):
        def forward(self, input_ids, attention_mask):
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   return_dict=True).logits
    M.__name__ = cls.__name__
    return M


def pixcls(cls):
    class M(cls):
        def forward(self, pixel_values):
            return super().forward(pixel_values=pixel_values, return_dict=True).logits
    M.__name__ = cls.__name__
    return M


def b_gpt_neox(gen):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
    cfg = hf_eager(GPTNeoXConfig(vocab_size=256, hidden_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=128,
                                 max_position_embeddings=64, rotary_pct=0.25, use_cache=False,
                                 attention_dropout=0.0, hidden_dropout=0.0,
                                 use_parallel_residual=True, tie_word_embeddings=False))
    return causal_lm(GPTNeoXForCausalLM)(cfg), ids_mask(gen)


def b_phi(gen):
    from transformers import PhiConfig, PhiForCausalLM
    cfg = hf_eager(PhiConfig(vocab_size=256, hidden_size=64, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=128,
                             max_position_embeddings=64, partial_rotary_factor=0.5,
                             resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0,
                             use_cache=False, tie_word_embeddings=False))
    return causal_lm(PhiForCausalLM)(cfg), ids_mask(gen)


def b_qwen2(gen):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = hf_eager(Qwen2Config(vocab_size=256, hidden_size=64, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2,
                               intermediate_size=128, max_position_embeddings=64,
                               use_cache=False, tie_word_embeddings=False, attention_dropout=0.0))
    return causal_lm(Qwen2ForCausalLM)(cfg), ids_mask(gen)


def b_gemma(gen):
    from transformers import GemmaConfig, GemmaForCausalLM
    cfg = hf_eager(GemmaConfig(vocab_size=256, hidden_size=64, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                               intermediate_size=128, max_position_embeddings=64,
                               use_cache=False, attention_dropout=0.0))
    return causal_lm(GemmaForCausalLM)(cfg), ids_mask(gen)


def b_falcon(gen):
    from transformers import FalconConfig, FalconForCausalLM
    cfg = hf_eager(FalconConfig(vocab_size=256, hidden_size=64, num_hidden_layers=2,
                                num_attention_heads=4, new_decoder_architecture=False,
                                multi_query=True, parallel_attn=True, bias=False,
                                alibi=False, hidden_dropout=0.0, attention_dropout=0.0,
                                max_position_embeddings=64, use_cache=False))
    return causal_lm(FalconForCausalLM)(cfg), ids_mask(gen)


def b_bart(gen):
    from transformers import BartConfig, BartForConditionalGeneration

    class M(BartForConditionalGeneration):
        def forward(self, input_ids, attention_mask, decoder_input_ids):
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   decoder_input_ids=decoder_input_ids, use_cache=False,
                                   return_dict=True).logits

    cfg = hf_eager(BartConfig(vocab_size=256, d_model=64, encoder_layers=2, decoder_layers=2,
                              encoder_attention_heads=4, decoder_attention_heads=4,
                              encoder_ffn_dim=128, decoder_ffn_dim=128,
                              max_position_embeddings=64, dropout=0.0, attention_dropout=0.0,
                              activation_dropout=0.0, use_cache=False, pad_token_id=1,
                              bos_token_id=0, eos_token_id=2, decoder_start_token_id=2))
    ids = torch.randint(3, 256, (B, 16), generator=gen)
    inputs = [("input_ids", ids), ("attention_mask", torch.ones(B, 16, dtype=torch.int64)),
              ("decoder_input_ids", torch.randint(3, 256, (B, 12), generator=gen))]
    return M(cfg), inputs


def b_mistral(gen):
    from transformers import MistralConfig, MistralForCausalLM
    cfg = hf_eager(MistralConfig(vocab_size=256, hidden_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2,
                                 intermediate_size=128, max_position_embeddings=64,
                                 sliding_window=8, use_cache=False, tie_word_embeddings=False,
                                 attention_dropout=0.0))
    return causal_lm(MistralForCausalLM)(cfg), ids_mask(gen)


def b_bloom(gen):
    from transformers import BloomConfig, BloomForCausalLM
    cfg = hf_eager(BloomConfig(vocab_size=256, hidden_size=64, n_layer=2, n_head=4,
                               hidden_dropout=0.0, attention_dropout=0.0, use_cache=False,
                               tie_word_embeddings=False))
    return causal_lm(BloomForCausalLM)(cfg), ids_mask(gen)


def b_opt(gen):
    from transformers import OPTConfig, OPTForCausalLM
    cfg = hf_eager(OPTConfig(vocab_size=256, hidden_size=64, num_hidden_layers=2,
                             ffn_dim=128, num_attention_heads=4, max_position_embeddings=64,
                             word_embed_proj_dim=64, dropout=0.0, attention_dropout=0.0,
                             activation_dropout=0.0, layerdrop=0.0, use_cache=False,
                             pad_token_id=1, tie_word_embeddings=False))
    return causal_lm(OPTForCausalLM)(cfg), ids_mask(gen)


def b_electra(gen):
    from transformers import ElectraConfig, ElectraForSequenceClassification
    cfg = hf_eager(ElectraConfig(vocab_size=256, embedding_size=32, hidden_size=64,
                                 num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=128, max_position_embeddings=64,
                                 hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                 classifier_dropout=0.0, num_labels=3))
    return seqcls(ElectraForSequenceClassification)(cfg), ids_mask(gen)


def b_albert(gen):
    from transformers import AlbertConfig, AlbertForSequenceClassification
    cfg = hf_eager(AlbertConfig(vocab_size=256, embedding_size=32, hidden_size=64,
                                num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=128, max_position_embeddings=64,
                                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                classifier_dropout_prob=0.0, num_labels=3))
    return seqcls(AlbertForSequenceClassification)(cfg), ids_mask(gen)


def b_deberta_v2(gen):
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification
    cfg = hf_eager(DebertaV2Config(vocab_size=256, hidden_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, intermediate_size=128,
                                   max_position_embeddings=64, relative_attention=True,
                                   position_buckets=8, max_relative_positions=16,
                                   pos_att_type=["p2c", "c2p"], hidden_dropout_prob=0.0,
                                   attention_probs_dropout_prob=0.0, pooler_dropout=0.0,
                                   cls_dropout=0.0, num_labels=3, share_att_key=True,
                                   norm_rel_ebd="layer_norm"))
    return seqcls(DebertaV2ForSequenceClassification)(cfg), ids_mask(gen)


def b_swin(gen):
    from transformers import SwinConfig, SwinForImageClassification
    cfg = hf_eager(SwinConfig(image_size=32, patch_size=2, num_channels=3, embed_dim=16,
                              depths=[2, 2], num_heads=[2, 4], window_size=4, mlp_ratio=2.0,
                              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                              drop_path_rate=0.0, num_labels=10))
    return pixcls(SwinForImageClassification)(cfg), img(gen, 32)


def b_swin_tv(gen):
    from torchvision.models.swin_transformer import SwinTransformer
    m = SwinTransformer(patch_size=[2, 2], embed_dim=16, depths=[2, 2], num_heads=[2, 4],
                        window_size=[4, 4], stochastic_depth_prob=0.0, num_classes=10)
    return m, img(gen, 32)


def b_deit(gen):
    from transformers import DeiTConfig, DeiTForImageClassification
    cfg = hf_eager(DeiTConfig(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2,
                              num_attention_heads=4, intermediate_size=128,
                              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                              num_labels=10))
    return pixcls(DeiTForImageClassification)(cfg), img(gen, 32)


def b_beit(gen):
    from transformers import BeitConfig, BeitForImageClassification
    cfg = hf_eager(BeitConfig(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2,
                              num_attention_heads=4, intermediate_size=128,
                              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                              drop_path_rate=0.0, use_relative_position_bias=True,
                              use_mean_pooling=True, layer_scale_init_value=0.1,
                              num_labels=10))
    return pixcls(BeitForImageClassification)(cfg), img(gen, 32)


def b_convnextv2(gen):
    from transformers import ConvNextV2Config, ConvNextV2ForImageClassification
    cfg = ConvNextV2Config(num_channels=3, patch_size=2, hidden_sizes=[16, 32], num_stages=2,
                           depths=[1, 1], drop_path_rate=0.0, num_labels=10)
    return pixcls(ConvNextV2ForImageClassification)(cfg), img(gen, 32)


def b_regnet(gen):
    from torchvision.models import regnet_x_400mf
    return regnet_x_400mf(num_classes=10), img(gen, 32)


def b_shufflenet(gen):
    from torchvision.models import shufflenet_v2_x0_5
    return shufflenet_v2_x0_5(num_classes=10), img(gen, 32)


def b_mnasnet(gen):
    from torchvision.models import mnasnet0_5
    return mnasnet0_5(num_classes=10, dropout=0.0), img(gen, 32)


class CNN1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(4, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Conv1d(16, 32, 3, stride=2, padding=1), nn.BatchNorm1d(32), nn.ReLU(),
            nn.MaxPool1d(2), nn.Conv1d(32, 32, 3, padding=1, dilation=1), nn.BatchNorm1d(32),
            nn.GELU(), nn.AdaptiveAvgPool1d(1))
        self.fc = nn.Linear(32, 5)

    def forward(self, x):
        return self.fc(self.net(x).flatten(1))


def b_cnn1d(gen):
    return CNN1d(), [("x", torch.randn(B, 4, 64, generator=gen))]


class AutoEnc(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                 nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.dec = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                 nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(),
                                 nn.Upsample(scale_factor=2, mode="nearest"),
                                 nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, x):
        return self.dec(self.enc(x)).permute(0, 2, 3, 1)


def b_autoencoder(gen):
    return AutoEnc(), img(gen, 16)


class SRNet(nn.Module):
    def __init__(self, r=2):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 5, padding=2)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1)
        self.c3 = nn.Conv2d(16, 3 * r * r, 3, padding=1)
        self.ps = nn.PixelShuffle(r)
        self.pu = nn.PixelUnshuffle(r)

    def forward(self, x):
        h = torch.tanh(self.c1(x))
        h = torch.tanh(self.c2(h))
        y = self.ps(self.c3(h))
        y = y + 0.1 * self.ps(self.pu(y))
        return y.permute(0, 2, 3, 1)


def b_pixelshuffle_sr(gen):
    return SRNet(), img(gen, 16)


class MHAModel(nn.Module):
    def __init__(self, vocab=256, d=64):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.mha = nn.MultiheadAttention(d, 4, dropout=0.0, batch_first=True)
        self.mha2 = nn.MultiheadAttention(d, 4, dropout=0.0, batch_first=False, kdim=32, vdim=32)
        self.kv = nn.Linear(d, 32)
        self.ln = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 5)

    def forward(self, input_ids):
        x = self.emb(input_ids)
        a, _ = self.mha(x, x, x, need_weights=False)
        x = self.ln(x + a)
        xt = x.transpose(0, 1)
        kv = self.kv(xt)
        b, _ = self.mha2(xt, kv, kv, need_weights=True)
        x = x + b.transpose(0, 1)
        return self.fc(x.mean(1))


def b_mha(gen):
    return MHAModel(), tok(gen)


class SDPAModel(nn.Module):
    def __init__(self, causal, vocab=256, d=64, h=4):
        super().__init__()
        self.causal, self.h = causal, h
        self.emb = nn.Embedding(vocab, d)
        self.qkv = nn.Linear(d, 3 * d)
        self.o = nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, 128), nn.GELU(), nn.Linear(128, d))
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.fc = nn.Linear(d, vocab)

    def forward(self, input_ids):
        x = self.emb(input_ids)
        Bs, S, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=-1)
        q, k, v = (t.view(Bs, S, self.h, D // self.h).transpose(1, 2) for t in (q, k, v))
        if self.causal:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            a = F.scaled_dot_product_attention(q, k, v)
        x = x + self.o(a.transpose(1, 2).reshape(Bs, S, D))
        x = x + self.ff(self.ln2(x))
        return self.fc(x)


def b_sdpa(gen):
    return SDPAModel(False), tok(gen)


def b_sdpa_causal(gen):
    return SDPAModel(True), tok(gen)


class ToyOps(nn.Module):
    """EmbeddingBag + cumsum + masked_fill + torch.where heavy."""
    def __init__(self, vocab=256, d=32):
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, d, mode="mean")
        self.emb = nn.Embedding(vocab, d)
        self.lin = nn.Linear(d, d)
        self.fc = nn.Linear(2 * d, 5)

    def forward(self, input_ids):
        bag = self.bag(input_ids)                        # [B, d]
        e = self.emb(input_ids)                          # [B, S, d]
        c = torch.cumsum(e, dim=1) / torch.arange(1, e.shape[1] + 1, dtype=e.dtype).view(1, -1, 1)
        h = torch.tanh(self.lin(c))
        mask = (input_ids % 3 == 0).unsqueeze(-1)
        h = h.masked_fill(mask, 0.0)
        h = torch.where(h > 0.1, h, 0.5 * h * h)
        s = h.sum(1) / (~mask).sum(1).clamp(min=1).to(h.dtype)
        return self.fc(torch.cat([bag, s], dim=-1))


def b_toy_ops(gen):
    return ToyOps(), tok(gen)


class ToyOpsNoBag(ToyOps):
    """ToyOps with EmbeddingBag replaced by Embedding+mean (dyn18 EmbeddingBag -> Loop crashes ORT)."""
    def forward(self, input_ids):
        bag = self.emb(input_ids).mean(1)
        e = self.emb(input_ids)
        c = torch.cumsum(e, dim=1) / torch.arange(1, e.shape[1] + 1, dtype=e.dtype).view(1, -1, 1)
        h = torch.tanh(self.lin(c))
        mask = (input_ids % 3 == 0).unsqueeze(-1)
        h = h.masked_fill(mask, 0.0)
        h = torch.where(h > 0.1, h, 0.5 * h * h)
        s = h.sum(1) / (~mask).sum(1).clamp(min=1).to(h.dtype)
        return self.fc(torch.cat([bag, s], dim=-1))


def b_toy_ops_nobag(gen):
    return ToyOpsNoBag(), tok(gen)


class ToyOpsNoCumsum(ToyOps):
    """ToyOpsNoBag with cumsum replaced by a lower-triangular MatMul (masked_fill/where only)."""
    def forward(self, input_ids):
        e = self.emb(input_ids)
        bag = e.mean(1)
        S = e.shape[1]
        tri = torch.tril(torch.ones(S, S, dtype=e.dtype))
        c = (tri @ e) / torch.arange(1, S + 1, dtype=e.dtype).view(1, -1, 1)
        h = torch.tanh(self.lin(c))
        mask = (input_ids % 3 == 0).unsqueeze(-1)
        h = h.masked_fill(mask, 0.0)
        h = torch.where(h > 0.1, h, 0.5 * h * h)
        s = h.sum(1) / (~mask).sum(1).clamp(min=1).to(h.dtype)
        return self.fc(torch.cat([bag, s], dim=-1))


def b_toy_ops_nocumsum(gen):
    return ToyOpsNoCumsum(), tok(gen)


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


class RMSNet(nn.Module):
    def __init__(self, vocab=256, d=64):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(nn.ModuleDict(dict(
            n=RMSNorm(d), up=nn.Linear(d, 128, bias=False), gate=nn.Linear(d, 128, bias=False),
            down=nn.Linear(128, d, bias=False))) for _ in range(3))
        self.nf = RMSNorm(d)
        self.fc = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        x = self.emb(input_ids)
        for b in self.blocks:
            h = b["n"](x)
            x = x + b["down"](F.silu(b["gate"](h)) * b["up"](h))
        return self.fc(self.nf(x))


def b_rmsnorm_mlp(gen):
    return RMSNet(), tok(gen)


BUILDERS = {
    "gpt_neox": b_gpt_neox,
    "phi": b_phi,
    "qwen2": b_qwen2,
    "gemma": b_gemma,
    "falcon": b_falcon,
    "bart": b_bart,
    "mistral": b_mistral,
    "bloom": b_bloom,
    "opt": b_opt,
    "electra": b_electra,
    "albert": b_albert,
    "deberta_v2": b_deberta_v2,
    "swin_hf": b_swin,
    "swin_tv": b_swin_tv,
    "deit": b_deit,
    "beit": b_beit,
    "convnextv2": b_convnextv2,
    "regnet_x_400mf": b_regnet,
    "shufflenet_v2": b_shufflenet,
    "mnasnet0_5": b_mnasnet,
    "cnn1d": b_cnn1d,
    "autoencoder_up": b_autoencoder,
    "pixelshuffle_sr": b_pixelshuffle_sr,
    "mha": b_mha,
    "sdpa": b_sdpa,
    "sdpa_causal": b_sdpa_causal,
    "toy_ops": b_toy_ops,
    "toy_ops_nobag": b_toy_ops_nobag,
    "toy_ops_nocumsum": b_toy_ops_nocumsum,
    "rmsnorm_mlp": b_rmsnorm_mlp,
}
DYNAMIC = {}


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


def main(names):
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    STATUS.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        seed_all(100 + i)
        gen = torch.Generator().manual_seed(2000 + i)
        t0 = time.time()
        dyn = DYNAMIC.get(name)
        try:
            model, inputs = BUILDERS[dyn[0] if dyn else name](gen)
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
