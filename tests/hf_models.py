"""Small randomly initialised Hugging Face ``transformers`` models (width 32, 2 blocks, 2 heads).

``HUB_NAMES`` spells, by hand and independently of m2pt's layout tables, the key of each block
linear in the file ``save_pretrained`` writes: the tests compare m2pt's fused tensors with them.
"""

from __future__ import annotations

import warnings

import torch
import transformers as hf
from torch import nn

WIDTH, DEPTH, HEADS, MLP = 32, 2, 2, 64
_AUDIO_CONV = dict(conv_dim=(8, 8), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=8,
                   num_conv_pos_embedding_groups=2)
_IMAGE = dict(image_size=32, patch_size=16)


def _config(cls, **extra):
    base = dict(hidden_size=WIDTH, num_hidden_layers=DEPTH, num_attention_heads=HEADS, intermediate_size=MLP)
    return cls(**{**base, **extra})


# name -> (model class, config factory)
MODELS = {
    "BertModel": (hf.BertModel, lambda: _config(hf.BertConfig, vocab_size=50)),
    "BertForMaskedLM": (hf.BertForMaskedLM, lambda: _config(hf.BertConfig, vocab_size=50)),
    "RobertaForMaskedLM": (hf.RobertaForMaskedLM, lambda: _config(hf.RobertaConfig, vocab_size=50)),
    "XLMRobertaModel": (hf.XLMRobertaModel, lambda: _config(hf.XLMRobertaConfig, vocab_size=50)),
    "ElectraModel": (hf.ElectraModel, lambda: _config(hf.ElectraConfig, vocab_size=50, embedding_size=16)),
    "DebertaModel": (hf.DebertaModel, lambda: _config(hf.DebertaConfig, vocab_size=50)),
    "DebertaV2Model": (hf.DebertaV2Model, lambda: _config(hf.DebertaV2Config, vocab_size=50)),
    "ViTModel": (hf.ViTModel, lambda: _config(hf.ViTConfig, **_IMAGE)),
    "ViTForImageClassification": (hf.ViTForImageClassification, lambda: _config(hf.ViTConfig, num_labels=3, **_IMAGE)),
    "DeiTModel": (hf.DeiTModel, lambda: _config(hf.DeiTConfig, **_IMAGE)),
    "BeitModel": (hf.BeitModel, lambda: _config(hf.BeitConfig, **_IMAGE)),
    "Data2VecVisionModel": (hf.Data2VecVisionModel, lambda: _config(hf.Data2VecVisionConfig, **_IMAGE)),
    "Dinov2Model": (hf.Dinov2Model, lambda: hf.Dinov2Config(  # MLP width from mlp_ratio
        hidden_size=WIDTH, num_hidden_layers=DEPTH, num_attention_heads=HEADS, mlp_ratio=MLP // WIDTH, **_IMAGE)),
    "ViTMAEForPreTraining": (hf.ViTMAEForPreTraining, lambda: _config(
        hf.ViTMAEConfig, decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=32, **_IMAGE)),
    "VideoMAEModel": (hf.VideoMAEModel, lambda: _config(hf.VideoMAEConfig, num_frames=4, tubelet_size=2, **_IMAGE)),
    "ASTModel": (hf.ASTModel, lambda: _config(hf.ASTConfig, max_length=64, num_mel_bins=32, patch_size=16)),
    "CLIPVisionModel": (hf.CLIPVisionModel, lambda: _config(hf.CLIPVisionConfig, **_IMAGE)),
    "CLIPTextModel": (hf.CLIPTextModel, lambda: _config(hf.CLIPTextConfig, vocab_size=50, bos_token_id=0,
                                                        eos_token_id=1, pad_token_id=1)),
    "Wav2Vec2Model": (hf.Wav2Vec2Model, lambda: _config(hf.Wav2Vec2Config, **_AUDIO_CONV)),
    "Wav2Vec2ForCTC": (hf.Wav2Vec2ForCTC, lambda: _config(hf.Wav2Vec2Config, vocab_size=20, **_AUDIO_CONV)),
    "HubertModel": (hf.HubertModel, lambda: _config(hf.HubertConfig, **_AUDIO_CONV)),
    "WavLMModel": (hf.WavLMModel, lambda: _config(hf.WavLMConfig, **_AUDIO_CONV)),
}

_BERT = ("encoder.layer.{i}.attention.self.{qkv}", "encoder.layer.{i}.attention.output.dense",
         "encoder.layer.{i}.intermediate.dense", "encoder.layer.{i}.output.dense")
_VIT = ("encoder.layer.{i}.attention.attention.{qkv}", "encoder.layer.{i}.attention.output.dense",
        "encoder.layer.{i}.intermediate.dense", "encoder.layer.{i}.output.dense")
_QKV = ("query", "key", "value")
_PROJ = ("q_proj", "k_proj", "v_proj")
# name -> (prefix, (qkv template, proj, fc1, fc2), names of q/k/v, expected m2pt format)
HUB_NAMES = {
    "BertModel": ("", _BERT, _QKV, "bert"),
    "BertForMaskedLM": ("bert.", _BERT, _QKV, "bert"),
    "RobertaForMaskedLM": ("roberta.", _BERT, _QKV, "bert"),
    "XLMRobertaModel": ("", _BERT, _QKV, "bert"),
    "ElectraModel": ("", _BERT, _QKV, "bert"),
    "DebertaV2Model": ("", _BERT, ("query_proj", "key_proj", "value_proj"), "deberta-v2"),
    "ViTModel": ("", _VIT, _QKV, "hf-vit"),
    "ViTForImageClassification": ("vit.", _VIT, _QKV, "hf-vit"),
    "DeiTModel": ("", _VIT, _QKV, "hf-vit"),
    "BeitModel": ("", _VIT, _QKV, "hf-vit"),
    "Data2VecVisionModel": ("", _VIT, _QKV, "hf-vit"),
    "ViTMAEForPreTraining": ("vit.", _VIT, _QKV, "hf-vit"),
    "VideoMAEModel": ("", _VIT, _QKV, "hf-vit"),
    "ASTModel": ("", _VIT, _QKV, "hf-vit"),
    "Dinov2Model": ("", ("encoder.layer.{i}.attention.attention.{qkv}", "encoder.layer.{i}.attention.output.dense",
                         "encoder.layer.{i}.mlp.fc1", "encoder.layer.{i}.mlp.fc2"), _QKV, "dinov2"),
    "CLIPVisionModel": ("", ("encoder.layers.{i}.self_attn.{qkv}", "encoder.layers.{i}.self_attn.out_proj",
                             "encoder.layers.{i}.mlp.fc1", "encoder.layers.{i}.mlp.fc2"), _PROJ, "clip"),
    "CLIPTextModel": ("", ("encoder.layers.{i}.self_attn.{qkv}", "encoder.layers.{i}.self_attn.out_proj",
                           "encoder.layers.{i}.mlp.fc1", "encoder.layers.{i}.mlp.fc2"), _PROJ, "clip"),
}
_WAV2VEC2 = ("encoder.layers.{i}.attention.{qkv}", "encoder.layers.{i}.attention.out_proj",
             "encoder.layers.{i}.feed_forward.intermediate_dense", "encoder.layers.{i}.feed_forward.output_dense")
HUB_NAMES.update({
    "Wav2Vec2Model": ("", _WAV2VEC2, _PROJ, "wav2vec2"),
    "Wav2Vec2ForCTC": ("wav2vec2.", _WAV2VEC2, _PROJ, "wav2vec2"),
    "HubertModel": ("", _WAV2VEC2, _PROJ, "wav2vec2"),
    "WavLMModel": ("", _WAV2VEC2, _PROJ, "wav2vec2"),
})


def randomize_(model: nn.Module, seed: int) -> nn.Module:
    """Non-zero random values in every parameter (HF zero-initialises biases, q_bias, ...)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model


def build(name: str, seed: int = 0) -> nn.Module:
    """A small ``transformers`` model with random non-zero weights, in eval mode."""
    cls, config = MODELS[name]
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cls(config())
    return randomize_(model, seed).eval()


def save_quietly(model: nn.Module, folder) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf.logging.set_verbosity_error()
        model.save_pretrained(folder)
