"""Hugging Face ``transformers`` encoder layouts: recognise them and name their block linears.

A layout says where the four block linears of Multimodal Pathway (fused qkv, attention output
projection, MLP fc1 and fc2) live in the state dict of one family of ``transformers`` models.
Most families keep query, key and value as separate linears; the fused qkv is their
concatenation along the output dim (``[q; k; v]``, timm's order).

transformers 5 renames some modules in memory and converts back when it saves: a ViT's
``encoder.layer.N.attention.attention.query`` (the hub name, in every ``model.safetensors``)
is ``layers.N.attention.q_proj`` in ``model.state_dict()``. Both spellings are layouts here.

Detection is by evidence: a layout is found only when every block it names has all of its
linears, under one prefix (``roberta.``, ``vit.``, ``wav2vec2.``, ... : any task-head prefix).
Half matches (an attention without its MLP, e.g. Dinov2's gated SwiGLU MLP) are reported, never
approximated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

# The canonical linears a layout's roles map to, and the rows of the fused qkv each of q/k/v takes.
ROLE_CANONICAL: dict[str, str] = {
    "q": "attn.qkv", "k": "attn.qkv", "v": "attn.qkv", "qkv": "attn.qkv",
    "proj": "attn.proj", "fc1": "mlp.fc1", "fc2": "mlp.fc2",
}
QKV_ROLES: tuple[str, ...] = ("q", "k", "v")


@dataclass(frozen=True)
class HFLayout:
    """Where one ``transformers`` family keeps its block linears.

    Attributes:
        name: The format name (``load_auxiliary(..., format=name)``).
        models: The model classes that use it (for messages).
        stack: Regular expression of the layer list (``encoder\\.layer``, ``layers``, ...).
        linears: Module path inside a block of each role: ``q``, ``k``, ``v`` (or a fused
            ``qkv``), ``proj``, ``fc1``, ``fc2``.
        split_biases: Bias parameters kept apart from their linear (``q`` / ``v`` -> the
            parameter name inside a block), like VideoMAE's ``q_bias`` and ``v_bias``.
        heads_interleaved: The fused qkv is ordered per head (``[q_h, k_h, v_h]`` for each
            head, DeBERTa's ``in_proj``) instead of ``[q; k; v]``.
        refused: ``(module path inside a block, why)``: modules whose presence means the block
            computes something the four linears do not capture.
    """

    name: str
    models: str
    stack: str
    linears: Mapping[str, str]
    split_biases: Mapping[str, str] = field(default_factory=dict)
    heads_interleaved: bool = False
    refused: tuple[tuple[str, str], ...] = ()

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.linears)

    def pattern(self) -> re.Pattern[str]:
        """``prefix``, ``stack``, ``block``, ``tail`` and ``param`` of any key this layout names."""
        tails = sorted(set(self.linears.values()), key=len, reverse=True)
        linear_keys = "|".join(rf"{re.escape(t)}\.(?:weight|bias)" for t in tails)
        split = "|".join(re.escape(t) for t in self.split_biases.values())
        alternatives = linear_keys + (f"|{split}" if split else "")
        return re.compile(
            rf"^(?P<prefix>(?:[^.]+\.)*?)(?P<stack>{self.stack})\.(?P<block>\d+)\.(?P<tail>{alternatives})$")


_GATED_MLP = "a gated (SwiGLU) MLP has three projections, not fc1/fc2; it has no exact counterpart in a ViT block"

HF_LAYOUTS: tuple[HFLayout, ...] = (
    HFLayout(
        "bert", "BertModel, RobertaModel, XLMRobertaModel, ElectraModel, CamembertModel (+ task heads)",
        r"encoder\.layer",
        {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
         "proj": "attention.output.dense", "fc1": "intermediate.dense", "fc2": "output.dense"},
    ),
    HFLayout(
        "deberta-v2", "DebertaV2Model (+ task heads)", r"encoder\.layer",
        {"q": "attention.self.query_proj", "k": "attention.self.key_proj", "v": "attention.self.value_proj",
         "proj": "attention.output.dense", "fc1": "intermediate.dense", "fc2": "output.dense"},
        refused=(("attention.self.pos_key_proj", "share_att_key=False adds position projections pos_key_proj / "
                  "pos_query_proj to every block, which a ViT block has no place for"),),
    ),
    HFLayout(
        "deberta", "DebertaModel (+ task heads)", r"encoder\.layer",
        {"qkv": "attention.self.in_proj", "proj": "attention.output.dense", "fc1": "intermediate.dense",
         "fc2": "output.dense"},
        split_biases={"q": "attention.self.q_bias", "v": "attention.self.v_bias"},
        heads_interleaved=True,
        refused=(("attention.self.pos_proj", "relative (disentangled) attention adds position projections "
                  "pos_proj / pos_q_proj to every block, which a ViT block has no place for"),
                 ("attention.self.head_logits_proj", "talking-head attention mixes heads with extra linears")),
    ),
    HFLayout(
        "hf-vit", "ViTModel, DeiTModel, BeitModel, Data2VecVisionModel, ViTMAEModel, VideoMAEModel, ASTModel "
        "(+ task heads; hub key names)", r"encoder\.layer",
        {"q": "attention.attention.query", "k": "attention.attention.key", "v": "attention.attention.value",
         "proj": "attention.output.dense", "fc1": "intermediate.dense", "fc2": "output.dense"},
        split_biases={"q": "attention.attention.q_bias", "v": "attention.attention.v_bias"},
    ),
    HFLayout(
        "hf-vit", "ViT, DeiT, BEiT, ViTMAE, AST (transformers 5 in-memory names)", r"layers",
        {"q": "attention.q_proj", "k": "attention.k_proj", "v": "attention.v_proj",
         "proj": "attention.o_proj", "fc1": "mlp.fc1", "fc2": "mlp.fc2"},
    ),
    HFLayout(
        "dinov2", "Dinov2Model (transformers 5 in-memory names)", r"encoder\.layer",
        {"q": "attention.q_proj", "k": "attention.k_proj", "v": "attention.v_proj",
         "proj": "attention.o_proj", "fc1": "mlp.fc1", "fc2": "mlp.fc2"},
        refused=(("mlp.gate_proj", _GATED_MLP),),
    ),
    HFLayout(
        "dinov2", "Dinov2Model (+ task heads; hub key names)", r"encoder\.layer",
        {"q": "attention.attention.query", "k": "attention.attention.key", "v": "attention.attention.value",
         "proj": "attention.output.dense", "fc1": "mlp.fc1", "fc2": "mlp.fc2"},
        refused=(("mlp.weights_in", _GATED_MLP),),
    ),
    HFLayout(
        "clip", "CLIPVisionModel, CLIPTextModel, SiglipVisionModel (towers of CLIPModel)", r"encoder\.layers",
        {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
         "proj": "self_attn.out_proj", "fc1": "mlp.fc1", "fc2": "mlp.fc2"},
    ),
    HFLayout(
        "wav2vec2", "Wav2Vec2Model, HubertModel, WavLMModel, Data2VecAudioModel (+ task heads)", r"encoder\.layers",
        {"q": "attention.q_proj", "k": "attention.k_proj", "v": "attention.v_proj",
         "proj": "attention.out_proj", "fc1": "feed_forward.intermediate_dense",
         "fc2": "feed_forward.output_dense"},
    ),
)
HF_FORMATS: tuple[str, ...] = tuple(dict.fromkeys(layout.name for layout in HF_LAYOUTS))


@dataclass
class HFMatch:
    """One layout found under one prefix.

    Attributes:
        layout: The layout.
        prefix: What stands before the layer list (``""``, ``"roberta."``, ``"vit."``, ...).
        stack: The layer list as spelled in the keys (``"encoder.layer"``, ``"layers"``, ...).
        blocks: The roles found in each block (``{0: {"q", "k", ...}}``).
    """

    layout: HFLayout
    prefix: str
    stack: str
    blocks: dict[int, set[str]]

    @property
    def complete(self) -> bool:
        needed = set(self.layout.roles)
        indices = sorted(self.blocks)
        return bool(indices) and indices == list(range(len(indices))) and all(
            needed <= roles for roles in self.blocks.values())

    def block_prefix(self, block: int) -> str:
        return f"{self.prefix}{self.stack}.{block}."

    def describe(self) -> str:
        where = f"under {self.prefix!r}" if self.prefix else "without prefix"
        return f"{self.layout.name!r} ({self.layout.models}) {where}, {len(self.blocks)} block(s)"

    @property
    def evidence(self) -> tuple[int, int]:
        """``(complete blocks, most roles in one block)``: how strongly the keys point to this layout."""
        needed = set(self.layout.roles)
        return (sum(needed <= roles for roles in self.blocks.values()),
                max((len(roles) for roles in self.blocks.values()), default=0))

    def missing(self) -> str:
        """The first block and linears that keep this match from being complete (for messages)."""
        indices = sorted(self.blocks)
        gaps = sorted(set(range(indices[-1] + 1)) - set(indices)) if indices else []
        if gaps:
            return f"block(s) {gaps} are absent (found blocks {indices})"
        for block in indices:
            absent = [r for r in self.layout.roles if r not in self.blocks[block]]
            if absent:
                names = ", ".join(repr(f"{self.block_prefix(block)}{self.layout.linears[r]}.weight") for r in absent)
                return f"block {block} of {len(indices)}: {names} is missing"
        return "nothing is missing"

    def source_name(self, block: int, canonical: str, param: str) -> str:
        """The key a canonical ``blocks.N.<canonical>.<param>`` comes from."""
        roles = [r for r, c in ROLE_CANONICAL.items() if c == canonical and r in self.layout.linears]
        tails = [self.layout.linears[r] for r in roles]
        if len(tails) == 1:
            return f"{self.block_prefix(block)}{tails[0]}.{param}"
        inner = ",".join(t.rpartition(".")[2] for t in tails)
        return f"{self.block_prefix(block)}{tails[0].rpartition('.')[0]}.{{{inner}}}.{param}"


def find_hf_layouts(keys: Iterable[str], only: str | None = None) -> list[HFMatch]:
    """Every (layout, prefix) whose block linears appear in ``keys``, complete or not."""
    keys = list(keys)
    found: list[HFMatch] = []
    for layout in HF_LAYOUTS:
        if only is not None and layout.name != only:
            continue
        pattern = layout.pattern()
        role_of = {tail: role for role, tail in layout.linears.items()}
        matches: dict[tuple[str, str], dict[int, set[str]]] = {}
        for key in keys:
            m = pattern.match(key)
            if m is None or not m.group("tail").endswith(".weight"):
                continue
            tail = m.group("tail")[: -len(".weight")]
            blocks = matches.setdefault((m.group("prefix"), m.group("stack")), {})
            blocks.setdefault(int(m.group("block")), set()).add(role_of[tail])
        found.extend(HFMatch(layout, prefix, stack, blocks) for (prefix, stack), blocks in matches.items())
    return found


def refusal(match: HFMatch, keys: Iterable[str]) -> str | None:
    """Why a match cannot map exactly: a block holds a module of ``layout.refused`` (None: none does)."""
    keys = list(keys)
    for block in sorted(match.blocks):
        start = match.block_prefix(block)
        for module, why in match.layout.refused:
            key = next((k for k in keys if k.startswith(f"{start}{module}.")), None)
            if key is not None:
                return f"{key!r}: {why}"
    return None


def partial_reason(match: HFMatch, keys: Iterable[str]) -> str:
    """Why an incomplete match is not a layout: a refused module, or the linears it lacks."""
    return refusal(match, list(keys)) or match.missing()
