"""The plan: every run of a reproduction profile, in the order the runner executes them."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from .arms import (BASELINE, SMALL_BASELINE, SMALL_MINILM, SMALL_RANDOM_MINILM, Arm, ablation_arms, aux_arm,
                   lambda_arms, random_arm)
from .budgets import Profile
from .random_aux import CONTROL_KINDS

#: The auxiliary whose per-matrix std the main random control matches, per target: the paper's
#: best auxiliary for that target (image ← point, video ← point, point ← image, audio ← point).
CONTROL_AUX = {"image": "point", "video": "point", "point": "image", "audio": "point"}

#: Options that do not change a run's result (left out of its fingerprint).
NON_RESULT_OPTIONS = frozenset({"interrupt_at_step"})


def result_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` without the keys that do not change the result."""
    return {k: v for k, v in options.items() if k not in NON_RESULT_OPTIONS}


@dataclass(frozen=True)
class RunSpec:
    """One fine-tuning run.

    Attributes:
        setting: ``"scratch"`` (random target init) or ``"mae"`` (target MAE-pretrained on its
            own modality first).
        modality: Target modality.
        arm: The arm (what is connected, with which options).
        seed: Seed of model init, data order and random controls.
        options: ``TrainConfig`` options of the budget (without output, init, aux, pathway).
    """

    setting: str
    modality: str
    arm: Arm
    seed: int
    options: dict[str, Any]

    @property
    def run_id(self) -> str:
        """``setting/modality/arm/seedN``: the run's folder under ``<output>/runs``."""
        return f"{self.setting}/{self.modality}/{self.arm.name}/seed{self.seed}"

    @property
    def preset(self) -> str:
        return self.arm.preset

    @property
    def init_source(self) -> Optional[str]:
        """The MAE checkpoint the target starts from (``"mae:<modality>"``), None from scratch."""
        if self.setting == "scratch":
            return None
        return f"mae:{self.modality}" if self.preset == "tiny" else f"mae-{self.preset}:{self.modality}"

    def fingerprint(self) -> str:
        """A hash of everything that defines the run (a changed plan does not reuse old results)."""
        payload = {"setting": self.setting, "modality": self.modality, "aux": self.arm.aux, "preset": self.preset,
                   "pathway": self.arm.pathway, "seed": self.seed, "options": result_options(self.options)}
        return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]

    def matches(self, patterns: Sequence[str]) -> bool:
        """Whether ``--only`` patterns select this run (any pattern matching the arm, modality,
        setting, group or ``run_id``; shell wildcards allowed; no patterns select everything)."""
        if not patterns:
            return True
        fields = (self.arm.name, self.modality, self.setting, self.arm.group, self.run_id,
                  f"{self.setting}/{self.modality}/{self.arm.name}")
        return any(fnmatch.fnmatchcase(f, p) for p in patterns for f in fields)


@dataclass(frozen=True)
class PretrainSpec:
    """One MAE pretraining that runs need (as auxiliary or as target initialisation)."""

    source: str
    """``"mae:<modality>"``, ``"mae-short:<modality>"`` or ``"mae-small:<modality>"``."""
    options: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.source.replace(":", "-")


def _arms_for(profile: Profile, setting: str, modality: str) -> list[Arm]:
    arms: list[Arm] = []
    if modality in profile.targets:
        arms.append(BASELINE)
        others = [a for a in profile.auxiliaries if a != modality]
        arms += [aux_arm(a) for a in others]
        control = CONTROL_AUX[modality] if CONTROL_AUX[modality] in others else (others[0] if others else None)
        if control is not None:
            arms.append(random_arm(control))
    minilm_targets = profile.minilm_targets if setting == "scratch" else profile.minilm_mae_targets
    if modality in minilm_targets:
        arms += [SMALL_BASELINE, SMALL_MINILM]
        if modality in profile.minilm_control_targets:
            arms.append(SMALL_RANDOM_MINILM)
    if modality == "image" and modality in profile.targets and profile.ablation_aux != "image":
        if profile.ablations and setting == "mae":
            arms += ablation_arms(profile.ablation_aux)
        if profile.lambda_options and setting == "scratch":
            arms += lambda_arms(profile.ablation_aux, profile.lambda_options, profile.lambda_controls)
    arms = _unique(arms)
    planned = {a.name for a in arms}
    for arm in arms:
        if arm.baseline and arm.baseline not in planned:
            raise ValueError(f"arm {arm.name} compares with {arm.baseline}, which is not planned")
    return arms


def _unique(arms: Iterable[Arm]) -> list[Arm]:
    seen: dict[str, Arm] = {}
    for arm in arms:
        seen.setdefault(arm.name, arm)
    return list(seen.values())


def build_plan(profile: Profile, seeds: Optional[Sequence[int]] = None,
               only: Sequence[str] = ()) -> tuple[list[PretrainSpec], list[RunSpec]]:
    """Every pretraining and fine-tuning run of ``profile``.

    Runs are ordered seed-major (all arms of seed 0 first), so that a run stopped early still
    has complete comparisons for the seeds it finished. Baselines of a selected arm are always
    kept, so that ``--only`` never yields gains without their reference.

    Args:
        profile: Budgets and which targets, auxiliaries and studies to run.
        seeds: Seeds to run (default: the profile's).
        only: ``--only`` patterns (see :meth:`RunSpec.matches`).

    Returns:
        ``(pretrainings, runs)``; pretrainings are only those the selected runs need.
    """
    seeds = tuple(profile.seeds if seeds is None else seeds)
    if not seeds:
        raise ValueError("at least one seed is needed")
    runs: list[RunSpec] = []
    for seed in seeds:
        for setting in profile.settings:
            for modality in dict.fromkeys(profile.targets + profile.minilm_targets + profile.minilm_mae_targets):
                for arm in _arms_for(profile, setting, modality):
                    runs.append(RunSpec(setting, modality, arm, seed, profile.finetune_options(modality, arm.preset)))
    if only:
        selected = {r.run_id for r in runs if r.matches(only)}
        keep = set(selected)
        by_cell = {(r.setting, r.modality, r.seed, r.arm.name): r for r in runs}
        for run_id in selected:
            run = next(r for r in runs if r.run_id == run_id)
            if run.arm.baseline:
                keep.add(by_cell[(run.setting, run.modality, run.seed, run.arm.baseline)].run_id)
        runs = [r for r in runs if r.run_id in keep]
    return _pretrainings(profile, runs), runs


def _pretrainings(profile: Profile, runs: Sequence[RunSpec]) -> list[PretrainSpec]:
    sources: dict[str, PretrainSpec] = {}
    for run in runs:
        for source in (run.arm.aux, run.init_source):
            if source is None:
                continue
            control, _, inner = source.partition(":")
            source = inner if control in CONTROL_KINDS else source
            kind, _, modality = source.partition(":")
            if kind == "mae":
                options = profile.pretrain_options(modality)
            elif kind == "mae-short":
                options = profile.pretrain_options(modality, short=True)
            elif kind.startswith("mae-"):
                options = profile.pretrain_options(modality, preset=kind.removeprefix("mae-"))
            else:
                continue
            sources.setdefault(source, PretrainSpec(source, options))
    return sorted(sources.values(), key=lambda p: (p.source.count("-"), p.source))
