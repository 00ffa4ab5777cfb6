#!/usr/bin/env python3
"""The second batch of architectures (see docs/architectures.md), exported exactly as
export_zoo.py does (its helpers and its `main`): tiny configs, random weights, eval(),
dropout 0, batch 2, output `logits`, both exporters.

Usage (a venv with fixtures/requirements-export.txt installed):
    python scripts/zoo/export_zoo2.py [NAME ...]   (default: all)
Writes $ZOO_DIR/models/NAME.{ts17,dyn18}.onnx ($ZOO_DIR defaults to /tmp/zoo2); then
ZOO_DIR=/tmp/zoo2 scripts/zoo/run_zoo.sh runs onnx-ac on each.
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("ZOO_DIR", "/tmp/zoo2")  # read by export_zoo at import
sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_zoo  # noqa: E402
from export_zoo import *  # noqa: E402,F401,F403  (helpers: hf_eager, ids_mask, img, tok, B, torch, nn, F, ...)


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


if __name__ == "__main__":
    export_zoo.main(sys.argv[1:] or list(BUILDERS), builders=BUILDERS, dynamic={})
