"""The plan: every run of a reproduction profile, in the order the runner executes them."""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import math
import json
from dataclasses import dataclass, replace
from typing import Any, Iterable, Optional, Sequence

from .arms import (BASELINE, SMALL_BASELINE, SMALL_MINILM, SMALL_PERMUTED_MINILM, SMALL_RANDOM_MINILM, Arm,
                   ablation_arms, aux_arm, budget_arms, control_arm, fixacc_arms, lambda_arms, long_aux_arm,
                   plateau_arm)
from .budgets import Profile
from .random_aux import CONTROL_KINDS

#: The auxiliary whose per-matrix std the main random control matches, per target: the paper's
#: best auxiliary for that target (image ← point, video ← point, point ← image, audio ← point).
CONTROL_AUX = {"image": "point", "video": "point", "point": "image", "audio": "point"}

#: MiniLM's controls by kind.
MINILM_CONTROLS = {"random": SMALL_RANDOM_MINILM, "permuted": SMALL_PERMUTED_MINILM}

#: Options that do not change a run's result (left out of its fingerprint).
NON_RESULT_OPTIONS = frozenset({"interrupt_at_step", "save_every_steps", "workers"})


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
    """``"mae:<modality>"``, ``"mae-short:<modality>"``, ``"mae-long:<modality>"`` or ``"mae-small:<modality>"``."""
    options: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.source.replace(":", "-")


def _arms_for(profile: Profile, setting: str, modality: str) -> list[Arm]:
    if setting not in profile.settings:
        return _fixacc_arms_for(profile, setting, modality)
    arms: list[Arm] = []
    if modality in profile.targets:
        arms.append(BASELINE)
        others = [a for a in profile.auxiliaries if a != modality]
        arms += [aux_arm(a) for a in others]
        control = control_aux(profile, modality)
        if control is not None:
            arms += [control_arm(kind, control) for kind in profile.controls]
    minilm_targets = profile.minilm_targets if setting == "scratch" else profile.minilm_mae_targets
    if modality in minilm_targets:
        arms += [SMALL_BASELINE, SMALL_MINILM]
        if modality in profile.minilm_control_targets:
            arms += [MINILM_CONTROLS[kind] for kind in profile.minilm_controls]
    if modality == "image" and modality in profile.targets and profile.ablation_aux != "image":
        if profile.ablations and setting == "mae":
            arms += ablation_arms(profile.ablation_aux)
        if profile.lambda_options and setting == "scratch":
            arms += lambda_arms(profile.ablation_aux, profile.lambda_options, profile.lambda_controls)
    if modality in profile.targets and modality in profile.plateau_targets:
        arms.append(plateau_arm({"epochs": 2 * profile.finetune[modality]["epochs"]}))
    if modality in profile.targets and modality in lead_targets(profile):
        arms += [long_aux_arm(aux) for aux in profile.aux_plateau if aux != modality]
    if setting == "scratch" and modality in profile.budget_targets:
        control = control_aux(profile, modality)
        for multiplier in profile.budget_multipliers:
            arms += budget_arms(control, multiplier, budget_options(profile, modality, multiplier))
    fixacc = _fixacc_arms_for(profile, setting, modality)
    if fixacc and any(a.name.startswith("fixacc-") for a in arms):
        raise ValueError(f"profile {profile.name}: the ablations' fix-acc arms and the linear-probe fix-acc study "
                         "share arm names; set ablations=False or fixacc_auxiliaries=()")
    arms = _unique(arms + fixacc)
    planned = {a.name for a in arms}
    for arm in arms:
        if arm.baseline and arm.baseline not in planned:
            raise ValueError(f"arm {arm.name} compares with {arm.baseline}, which is not planned")
    return arms


def _fixacc_arms_for(profile: Profile, setting: str, modality: str) -> list[Arm]:
    """The linear-probe fix-acc arms of a cell (image target, MAE-pretrained setting only)."""
    if not profile.fixacc_auxiliaries or setting != "mae" or modality != "image":
        return []
    others = tuple(a for a in profile.fixacc_auxiliaries if a != modality)
    control = CONTROL_AUX[modality] if profile.fixacc_controls else None
    return fixacc_arms(others, control, profile.fixacc_controls, profile.fixacc_options)


def plan_settings(profile: Profile) -> tuple[str, ...]:
    """``profile.settings``, plus ``"mae"`` (for the fix-acc arms only) when the fix-acc study needs it."""
    if profile.fixacc_auxiliaries and "mae" not in profile.settings:
        return tuple(profile.settings) + ("mae",)
    return tuple(profile.settings)


def control_aux(profile: Profile, modality: str) -> Optional[str]:
    """The auxiliary whose controls a target gets: :data:`CONTROL_AUX`, else its first other auxiliary."""
    others = [a for a in profile.auxiliaries if a != modality]
    return CONTROL_AUX[modality] if CONTROL_AUX[modality] in others else (others[0] if others else None)


def budget_options(profile: Profile, modality: str, multiplier: int) -> dict[str, Any]:
    """Fine-tuning options of the gain-versus-budget study: ``multiplier`` × the base training set."""
    options = copy.deepcopy(profile.budget_base[modality])
    options["data_options"]["train_size"] = options["data_options"]["train_size"] * multiplier
    return options


def merge_options(options: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``options`` updated with an arm's ``overrides`` (``data_options`` and ``model_overrides`` merged)."""
    merged = copy.deepcopy(options)
    for key, value in overrides.items():
        if key in ("data_options", "model_overrides") and isinstance(value, dict):
            merged[key] = {**merged.get(key, {}), **copy.deepcopy(value)}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _unique(arms: Iterable[Arm]) -> list[Arm]:
    seen: dict[str, Arm] = {}
    for arm in arms:
        seen.setdefault(arm.name, arm)
    return list(seen.values())


def build_plan(profile: Profile, seeds: Optional[Sequence[int]] = None,
               only: Sequence[str] = ()) -> tuple[list[PretrainSpec], list[RunSpec]]:
    """Every pretraining and fine-tuning run of ``profile``.

    Runs are ordered seed-major (all arms of seed 0 first), so that a run stopped early still
    has complete comparisons for the seeds it finished; with ``profile.order == "informative"``
    by :func:`priority` tier first, seed-major inside a tier. A profile with a
    ``min_lambda_lr_sum`` is checked (:func:`check_lambda_lr_sums`). Baselines of a selected arm are always
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
        for setting in plan_settings(profile):
            for modality in dict.fromkeys(profile.targets + profile.minilm_targets + profile.minilm_mae_targets):
                for arm in _arms_for(profile, setting, modality):
                    options = profile.finetune_options(modality, arm.preset)
                    if arm.whole_budget:
                        options = {key: options[key] for key in ("modality", "preset", "task")}
                    if arm.options:
                        options = merge_options(options, arm.options)
                    runs.append(RunSpec(setting, modality, arm, seed, options))
    runs = select_runs(runs, only)
    if profile.order == "informative":
        runs = order_informative(profile, runs)
    elif profile.order != "seed":
        raise ValueError(f"unknown run order {profile.order!r}; known: seed, informative")
    check_lambda_lr_sums(profile, runs)
    return pretrainings_for(profile, runs), runs


def lead_targets(profile: Profile) -> tuple[str, ...]:
    """The targets whose comparisons come first: those of the gain-versus-budget study (image and
    audio: they learn within a CPU budget), else the first two targets."""
    return profile.budget_targets or profile.targets[:2]


def priority(profile: Profile, run: RunSpec) -> int:
    """Tier of a run in the ``informative`` order (lower runs first).

    0. lead targets: baseline, the pathway from the control auxiliary, its random and permuted
       controls (the question "knowledge or statistics?"), and the plateau check (is that
       question asked at convergence?);
    1. lead targets: the gain-versus-budget study;
    2. the fix-acc study (linear probe of the MAE-pretrained image target; short runs);
    3. lead targets: pathways from the other auxiliaries and from the auxiliary pretrained twice
       as long (is the auxiliary at its plateau?);
    4. the other targets: baseline, pathway from the control auxiliary, its controls;
    5. the other targets: the other pathways;
    6. MiniLM on the ``small`` preset;
    7. the rest (plateau of the other targets, ablations, λ options).
    """
    lead = run.modality in lead_targets(profile)
    if run.arm.group == "main":
        control = control_aux(profile, run.modality)
        primary = run.arm.aux is None or (control is not None and run.arm.aux.endswith(f"mae:{control}"))
        return (0 if primary else 3) if lead else (4 if primary else 5)
    if run.arm.group == "plateau" and lead:
        return 0
    if run.arm.group == "budget" and lead:
        return 1
    if run.arm.group == "auxplateau" and lead:
        return 3
    if run.arm.group == "fixacc":
        return 2
    if run.arm.group == "minilm":
        return 6
    return 7


def order_informative(profile: Profile, runs: Sequence[RunSpec]) -> list[RunSpec]:
    """Runs by :func:`priority` tier, seed-major inside a tier (plan order otherwise kept)."""
    index = {run.run_id: i for i, run in enumerate(runs)}
    return sorted(runs, key=lambda r: (priority(profile, r), r.seed, index[r.run_id]))


def lambda_lr_sums_of(run: RunSpec) -> list[float]:
    """λ's learning-rate sum per block of a run (:func:`m2pt.experiments.lr_budget.lambda_lr_sums`)."""
    from .lr_budget import lambda_lr_sums

    return lambda_lr_sums(run.options, run.arm.pathway)


def check_lambda_lr_sums(profile: Profile, runs: Sequence[RunSpec]) -> None:
    """Raise if a pathway run of ``profile.lr_sum_groups`` gives some λ a learning-rate sum below
    ``profile.min_lambda_lr_sum``.

    Raises:
        ValueError: Naming the runs, their smallest sum and how to fix the budget.
    """
    if profile.min_lambda_lr_sum <= 0:
        return
    cache: dict[str, float] = {}
    low = []
    for run in runs:
        if run.arm.aux is None or run.arm.group not in profile.lr_sum_groups:
            continue
        key = json.dumps([result_options(run.options), run.arm.pathway], sort_keys=True, default=str)
        if key not in cache:
            cache[key] = min(lambda_lr_sums_of(run))
        if cache[key] < profile.min_lambda_lr_sum:
            low.append(f"{run.run_id} ({cache[key]:.3g})")
    if low:
        raise ValueError(f"profile {profile.name}: λ's learning-rate sum is below {profile.min_lambda_lr_sum:g} in "
                         f"{len(low)} run(s): {', '.join(low[:5])}{' ...' if len(low) > 5 else ''}; raise their "
                         "epochs, training set or lr")


def select_runs(runs: Sequence[RunSpec], only: Sequence[str]) -> list[RunSpec]:
    """The runs ``--only`` patterns select (all without patterns), each selected arm's baseline
    at the same seed kept, in their given order.

    A baseline missing from ``runs`` is left out rather than invented: extra-seed runs, for
    one, list their baseline runs themselves.
    """
    if not only:
        return list(runs)
    by_cell = {(r.setting, r.modality, r.seed, r.arm.name): r for r in runs}
    keep = {r.run_id for r in runs if r.matches(only)}
    for run in [r for r in runs if r.run_id in keep and r.arm.baseline]:
        baseline = by_cell.get((run.setting, run.modality, run.seed, run.arm.baseline))
        if baseline is not None:
            keep.add(baseline.run_id)
    return [r for r in runs if r.run_id in keep]


def extra_seed_runs(profile: Profile, runs: Sequence[RunSpec], rows: Sequence[dict[str, Any]]) -> list[RunSpec]:
    """Runs of ``profile.extra_seeds`` for every comparison whose gain is too uncertain.

    A comparison (an arm and its baseline) gets the extra seeds once it has at least
    :data:`~m2pt.experiments.aggregate.MIN_PAIRS` finished seed pairs among ``runs`` and twice
    the standard error of its gain (paired over seeds; unpaired where pairing is undefined)
    exceeds ``profile.extra_seed_se`` points. The decision depends on finished results only, so a
    resumed study plans the same extra runs again.

    Args:
        profile: The profile (``extra_seeds``, ``extra_seed_se``).
        runs: The planned runs.
        rows: ``results.jsonl`` rows (rows of other plans and stale fingerprints are ignored).

    Returns:
        The extra runs (arm and baseline), in the profile's order.
    """
    from .aggregate import MIN_PAIRS, summarize

    if not profile.extra_seeds:
        return []
    planned = {run.run_id: run for run in runs}
    current = [row for row in rows if row.get("run_id") in planned
               and row.get("fingerprint") == planned[row["run_id"]].fingerprint()]
    cells: set[tuple[str, str, str]] = set()
    for summary in summarize(current):
        if not summary.baseline_arm or summary.paired_n < MIN_PAIRS:
            continue
        se = summary.paired_se if not math.isnan(summary.paired_se) else summary.se_diff
        if not math.isnan(se) and 2 * se > profile.extra_seed_se:
            cells |= {(summary.setting, summary.modality, summary.arm),
                      (summary.setting, summary.modality, summary.baseline_arm)}
    have = {(r.setting, r.modality, r.arm.name, r.seed) for r in runs}
    extra: dict[str, RunSpec] = {}
    for run in runs:
        if (run.setting, run.modality, run.arm.name) not in cells:
            continue
        for seed in profile.extra_seeds:
            if (run.setting, run.modality, run.arm.name, seed) not in have:
                new = RunSpec(run.setting, run.modality, run.arm, seed, run.options)
                extra.setdefault(new.run_id, new)
    return in_profile_order(profile, list(extra.values()))


def current_rows(runs: Sequence[RunSpec], rows: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The rows that are results of the plan as it stands: rows of a planned cell (setting,
    modality, arm), at any seed, whose fingerprint is the one that cell gives at the row's seed.

    A row whose cell is planned with other options (a budget changed since it ran) or is no
    longer planned is stale: summing it with current runs would mix two experiments.

    Returns:
        ``(kept rows, number of stale rows left out)``.
    """
    cells = {(run.setting, run.modality, run.arm.name): run for run in runs}
    kept: list[dict[str, Any]] = []
    stale = 0
    for row in rows:
        run = cells.get((row.get("setting"), row.get("modality"), row.get("arm")))
        if run is not None and isinstance(row.get("seed"), int) \
                and row.get("fingerprint") == replace(run, seed=row["seed"]).fingerprint():
            kept.append(row)
        else:
            stale += 1
    return kept, stale


def in_profile_order(profile: Profile, runs: Sequence[RunSpec]) -> list[RunSpec]:
    """``runs`` in the profile's order: by tier (:func:`order_informative`) or as given."""
    return order_informative(profile, runs) if profile.order == "informative" else list(runs)


def pretraining_sources(run: RunSpec) -> list[str]:
    """The sources whose files ``run`` reads: its auxiliary (a control's: the source it is drawn
    from) and its initialisation; MAE pretrainings among them are named ``mae...:<modality>``."""
    sources = []
    for source in (run.arm.aux, run.init_source):
        if source:
            control, _, inner = source.partition(":")
            sources.append(inner if control in CONTROL_KINDS else source)
    return sources


def pretrainings_for(profile: Profile, runs: Sequence[RunSpec]) -> list[PretrainSpec]:
    """The MAE pretrainings ``runs`` need (as auxiliary, a control's source or initialisation),
    plain ``mae:`` ones first."""
    sources: dict[str, PretrainSpec] = {}
    for run in runs:
        for source in pretraining_sources(run):
            kind, _, modality = source.partition(":")
            if kind == "mae":
                options = profile.pretrain_options(modality)
            elif kind == "mae-short":
                options = profile.pretrain_options(modality, short=True)
            elif kind == "mae-long":
                options = profile.pretrain_options(modality, long=True)
            elif kind.startswith("mae-"):
                options = profile.pretrain_options(modality, preset=kind.removeprefix("mae-"))
            else:
                continue
            sources.setdefault(source, PretrainSpec(source, options))
    return sorted(sources.values(), key=lambda p: (p.source.count("-"), p.source))
