"""Training budgets of the reproduction: how much data and how many epochs each run gets.

Every built-in input pipeline used here is deterministic (no augmentation; centre clips and
crops; seeded point subsets), so inputs are kept in memory after their first read
(``cache_data``): video decoding and audio fbank are paid once per run instead of per epoch.

A *profile* fixes, per modality, the options of every fine-tuning run and of every MAE
pretraining, so that all arms of a comparison see the same data, the same data order (same
seed) and the same number of steps. ``quick`` and ``full`` are sized for 2 CPU cores, where a
tiny fine-tuning run takes tens of seconds and two run at once; ``converged`` trains every
target towards its plateau with budgets in which λ can move (many CPU hours); ``gpu`` runs the
most informative arms on one GPU.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

MODALITIES: tuple[str, ...] = ("image", "video", "point", "audio")

#: Learning rate of point-cloud fine-tuning (the others use ``_COMMON_FINETUNE``'s).
POINT_LR = 5e-4

#: Point clouds are the slow modality on a CPU (the mini-PointNet tokenizer); the reproduction
#: uses 256 points in 16 groups of 16 for both pretraining and fine-tuning.
POINT_MODEL = {"num_points": 256, "num_groups": 16, "group_size": 16}

_COMMON_FINETUNE: dict[str, Any] = dict(
    lr=1e-3, weight_decay=0.05, warmup_epochs=0.5, label_smoothing=0.1, min_lr=1e-5, drop_path=0.0,
    eval_every=1, amp=False, device="cpu", cache_data=True)
_COMMON_PRETRAIN: dict[str, Any] = dict(
    task="pretrain", lr=1e-3, weight_decay=0.05, warmup_epochs=0.5, min_lr=1e-5, decoder_dim=128,
    decoder_depth=2, eval_every=0, amp=False, device="cpu", cache_data=True)
_MASK_RATIO = {"image": 0.75, "video": 0.9, "audio": 0.8, "point": 0.6}


def _data(modality: str, train: int, test: int) -> dict[str, Any]:
    options: dict[str, Any] = {"train_size": train, "test_size": test}
    if modality == "point":
        options["points_per_shape"] = POINT_MODEL["num_points"]
    if modality == "video":
        # Digit classes are not learnt from scratch within a CPU budget (chance after 3 epochs);
        # the 8 motion directions are, and they need the temporal axis.
        options["label_by"] = "direction"
    return options


def _model(modality: str) -> dict[str, Any]:
    return dict(POINT_MODEL) if modality == "point" else {}


@dataclass
class Profile:
    """Every budget of one reproduction profile.

    Attributes:
        name: ``"quick"`` or ``"full"``.
        seeds: Default seeds (one run per seed and arm).
        finetune: Per modality, ``TrainConfig`` options of every fine-tuning run.
        pretrain: Per modality, ``TrainConfig`` options of the MAE pretraining of the auxiliary
            (and of the "MAE-pretrained target" initialisation).
        short_pretrain_epochs: Epochs of the "auxiliary pretrained for fewer epochs" ablation.
        small_finetune_scale: Fraction of the fine-tuning data used by ``small``-preset runs
            (the MiniLM study; width 384 costs about 4x the tiny preset per item).
        small_pretrain_scale: Fraction of the pretraining epochs of ``small``-preset MAE runs.
        targets: Target modalities of the main grid.
        auxiliaries: Auxiliary modalities of the main grid (each target uses the others).
        settings: ``"scratch"`` and/or ``"mae"`` (target MAE-pretrained on its own modality).
        minilm_targets: Targets of the MiniLM study from scratch (``small`` preset).
        minilm_mae_targets: Targets of the MiniLM study in the MAE-pretrained setting (each
            needs its own ``small`` MAE pretraining, the costliest item of the plan).
        minilm_control_targets: Targets that also get MiniLM's std-matched random control.
        ablation_aux: Auxiliary modality of the image ablations and the λ study.
        ablations: Run the image ablations (layer subsets, λ init, fixed λ, reversed, short
            auxiliary, fix acc).
        lambda_options: Arms of the λ study (names from ``arms.LAMBDA_OPTIONS``).
        lambda_controls: λ options that also get a run with the random control.
        controls: Controls of the main grid, per target: ``"random"`` (std-matched) and/or
            ``"permuted"`` (the pretrained values, rows and columns shuffled).
        minilm_controls: The same for MiniLM on ``minilm_control_targets``.
        order: ``"seed"``: seed-major (all arms of seed 0 first); ``"informative"``: the pairs that
            answer the main question first (:func:`m2pt.experiments.plan.priority`).
        extra_seeds: Seeds added, once the planned seeds have finished, to every arm (and its
            baseline) whose gain has ``2·SE > extra_seed_se`` points.
        extra_seed_se: The threshold of ``extra_seeds`` (accuracy points).
        budget_targets: Targets of the gain-versus-budget study (baseline, pathway and random
            control at ``budget_multipliers`` × the ``budget_base`` training set).
        budget_multipliers: Training-set multipliers of the gain-versus-budget study.
        budget_base: Per target, the fine-tuning options of the 1× budget.
        plateau_targets: Targets whose baseline also runs twice as long (``baseline-x2``): the
            target has reached its plateau when that improves it by less than 1 point.
        aux_plateau: Auxiliary modalities whose MAE also pretrains twice as long
            (``mae-long:<m>``); each lead target gets a pathway from it (``aux-<m>-long``). The
            auxiliary is at its plateau when that moves the target's gain by less than 1 point
            (:mod:`m2pt.experiments.aux_plateau`).
        min_lambda_lr_sum: Every λ of the runs in ``lr_sum_groups`` must see a learning-rate sum
            of at least this (:mod:`m2pt.experiments.lr_budget`); checked when the plan is built.
        lr_sum_groups: Groups of arms that ``min_lambda_lr_sum`` applies to.
        fixacc_auxiliaries: Auxiliaries of the paper's "fix acc" with its protocol (image target
            MAE-pretrained on its own modality, MAE's linear probe, only λ and the classifier
            train; :func:`m2pt.experiments.arms.fixacc_arms`); empty: no such study. Its runs are in
            the ``mae`` setting even when ``settings`` does not hold it (only these arms then).
        fixacc_controls: Controls of the fix-acc study (of the image target's control auxiliary).
        fixacc_options: ``TrainConfig`` options of the fix-acc runs over the image budget.
    """

    name: str
    seeds: tuple[int, ...]
    finetune: dict[str, dict[str, Any]]
    pretrain: dict[str, dict[str, Any]]
    short_pretrain_epochs: int
    small_finetune_scale: float
    small_pretrain_scale: float = 0.5
    targets: tuple[str, ...] = MODALITIES
    auxiliaries: tuple[str, ...] = MODALITIES
    settings: tuple[str, ...] = ("scratch", "mae")
    minilm_targets: tuple[str, ...] = MODALITIES
    minilm_mae_targets: tuple[str, ...] = ("image",)
    minilm_control_targets: tuple[str, ...] = ("image",)
    ablation_aux: str = "point"
    ablations: bool = True
    lambda_options: tuple[str, ...] = ("lr10", "lr100", "channel", "match")
    lambda_controls: tuple[str, ...] = ("lr100",)
    controls: tuple[str, ...] = ("random",)
    minilm_controls: tuple[str, ...] = ("random",)
    order: str = "seed"
    extra_seeds: tuple[int, ...] = ()
    extra_seed_se: float = 1.0
    budget_targets: tuple[str, ...] = ()
    budget_multipliers: tuple[int, ...] = (1, 4, 16)
    budget_base: dict[str, dict[str, Any]] = field(default_factory=dict)
    plateau_targets: tuple[str, ...] = ()
    aux_plateau: tuple[str, ...] = ()
    min_lambda_lr_sum: float = 0.0
    lr_sum_groups: tuple[str, ...] = ("main", "minilm")
    fixacc_auxiliaries: tuple[str, ...] = ()
    fixacc_controls: tuple[str, ...] = ()
    fixacc_options: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def finetune_options(self, modality: str, preset: str = "tiny") -> dict[str, Any]:
        """``TrainConfig`` options of a fine-tuning run (a fresh copy)."""
        options = copy.deepcopy(self.finetune[modality])
        options.update(modality=modality, preset=preset, task="finetune")
        if preset != "tiny":
            data = options["data_options"]
            data["train_size"] = max(options["batch_size"] * 2, int(data["train_size"] * self.small_finetune_scale))
        return options

    def pretrain_options(self, modality: str, preset: str = "tiny", short: bool = False,
                         long: bool = False) -> dict[str, Any]:
        """``TrainConfig`` options of an MAE pretraining (a fresh copy): ``short`` for the
        short-auxiliary ablation, ``long`` twice the epochs (the auxiliary's plateau check)."""
        options = copy.deepcopy(self.pretrain[modality])
        options.update(modality=modality, preset=preset)
        if short:
            options["epochs"] = self.short_pretrain_epochs
        if long:
            options["epochs"] = 2 * options["epochs"]
        if preset != "tiny":
            options["epochs"] = max(1, round(options["epochs"] * self.small_pretrain_scale))
        return options


def _finetune(modality: str, train: int, test: int, epochs: int, batch: int) -> dict[str, Any]:
    options = {**_COMMON_FINETUNE, "data_options": _data(modality, train, test), "model_overrides": _model(modality),
               "epochs": epochs, "batch_size": batch}
    if modality == "point":
        # The mini-PointNet's BatchNorm running statistics lag behind at a higher lr on these budgets.
        options["lr"] = POINT_LR
    return options


def _pretrain(modality: str, train: int, test: int, epochs: int, batch: int) -> dict[str, Any]:
    return {**_COMMON_PRETRAIN, "data_options": _data(modality, train, test), "model_overrides": _model(modality),
            "epochs": epochs, "batch_size": batch, "mask_ratio": _MASK_RATIO[modality]}


def full_profile() -> Profile:
    """About 1 h 45 min on 2 CPU cores with 2 workers (measured: 207 runs at about 30 s each, plus
    6 pretrainings); ``m2pt reproduce --list`` prints the plan."""
    return Profile(
        name="full", seeds=(0, 1, 2),
        finetune={
            "image": _finetune("image", 2000, 1000, 3, 64),
            "audio": _finetune("audio", 800, 200, 4, 16),
            "video": _finetune("video", 800, 200, 3, 32),
            "point": _finetune("point", 800, 200, 3, 16),
        },
        pretrain={
            "image": _pretrain("image", 3000, 1000, 6, 64),
            "audio": _pretrain("audio", 800, 200, 8, 32),
            "video": _pretrain("video", 800, 200, 6, 32),
            "point": _pretrain("point", 800, 200, 6, 32),
        },
        short_pretrain_epochs=1, small_finetune_scale=0.5)


def quick_profile() -> Profile:
    """The whole pipeline on a subset (image and audio targets, 2 seeds): 8 min 10 s measured on
    2 CPU cores with 2 workers, pretrainings included."""
    return Profile(
        name="quick", seeds=(0, 1),
        finetune={
            "image": _finetune("image", 1500, 500, 2, 64),
            "audio": _finetune("audio", 400, 200, 3, 16),
            "video": _finetune("video", 400, 100, 2, 32),
            "point": _finetune("point", 400, 100, 2, 16),
        },
        pretrain={
            "image": _pretrain("image", 1500, 500, 2, 64),
            "audio": _pretrain("audio", 400, 200, 3, 32),
            "video": _pretrain("video", 400, 100, 2, 32),
            "point": _pretrain("point", 400, 100, 2, 32),
        },
        short_pretrain_epochs=1, small_finetune_scale=0.5,
        targets=("image", "audio"), auxiliaries=("image", "audio"), settings=("scratch", "mae"),
        minilm_targets=("image",), minilm_mae_targets=(), ablation_aux="audio", ablations=False,
        lambda_options=("lr100",), lambda_controls=("lr100",))


def _with_data(options: dict[str, Any], **data: Any) -> dict[str, Any]:
    return {**options, "data_options": {**options["data_options"], **data}}


#: The linear probe of the "fix acc" study on 2 CPU cores: MAE's ``main_linprobe.py`` settings
#: (LARS, blr 0.1, no weight decay, label smoothing or drop path, cosine to 0)
#: at a global batch the built-in data fills (256, so lr = 0.1) and 8 epochs (λ's lr sum ≈ 31 on
#: 20,000 images). Same data as the image fine-tuning budget. Features are average-pooled with a
#: fresh ``fc_norm`` (MAE's ``main_linprobe.py --global_pool``), not class-token pooled: the study's
#: image MAE was pretrained before m2pt kept the trained final norm in its encoders, and this
#: profile's runs stay as they were planned.
FIXACC_LINEAR_PROBE: dict[str, Any] = dict(
    linear_probe=True, optimizer="lars", lr=None, blr=0.1, weight_decay=0.0, batch_size=256, epochs=8,
    warmup_epochs=1.0, min_lr=0.0, layer_decay=None, label_smoothing=0.0, drop_path=0.0)


#: Built-in audio of the converged and GPU profiles: the clips through recording conditions.
REALISTIC_AUDIO = {"augment": "realistic"}

#: Training options of the converged profile's long runs (audio, video and point, 36-96 epochs).
#: With the quick budgets' half-epoch warmup and no clipping, audio's train loss rose in mid
#: training and single runs collapsed (one from 33 to 17 % and back), so the arms' results
#: depended on which run had spiked (results/converged/audio-48-epochs-short-warmup.md). The
#: image target's 7 epochs keep the quick options: its 3 seeds ended within 0.3 points.
LONG_RUN_OPTIONS: dict[str, Any] = {"warmup_epochs": 5.0, "clip_grad": 1.0}


def converged_profile() -> Profile:
    """Targets trained towards their plateau, λ free to engage (learning-rate sum >= 1 in every
    block), the permuted control beside the random one, MiniLM on the ``small`` image target,
    the gain-versus-budget study, the targets' plateau check and the point auxiliary's (its MAE
    pretrained twice as long, used by the image and audio targets). From scratch only (the
    setting where the paper reports its largest gain, +5.4 points, and where the
    gain-versus-budget question lives), but for the paper's "fix acc" with its protocol: MAE's
    linear probe of the image target MAE-pretrained on its own modality, pathways from the point,
    audio and video MAEs (W' frozen, λ trained) and the point pathway's random and permuted
    controls (:data:`FIXACC_LINEAR_PROBE`).
    Many CPU hours: ``m2pt reproduce --profile converged`` prints its estimate first; the
    most informative pairs run first (see :func:`m2pt.experiments.plan.priority`)."""
    quick = quick_profile()
    # Audio runs 96 epochs. At 24 its baseline was not at its plateau (doubling it moved one seed by
    # +11 points): results/converged/audio-24-epochs.md. At 48 neither (+2.78, paired 2·SE 2.54, 3
    # seeds; seeds ended 78-90 % and 3 of 4 above the label-smoothing floor 0.5 of the train loss),
    # while at 96 every seed reaches that floor and they end within 3 points:
    # results/converged/audio-48-epochs.md.
    finetune = {
        "image": _finetune("image", 20000, 2000, 7, 64),
        "audio": _with_data({**_finetune("audio", 3000, 600, 96, 32), **LONG_RUN_OPTIONS}, **REALISTIC_AUDIO),
        "video": {**_finetune("video", 2000, 400, 36, 32), **LONG_RUN_OPTIONS},
        "point": {**_finetune("point", 2000, 400, 36, 16), **LONG_RUN_OPTIONS},
    }
    budget_base = {
        "image": _with_data(quick.finetune["image"], test_size=finetune["image"]["data_options"]["test_size"]),
        "audio": _with_data(quick.finetune["audio"], test_size=finetune["audio"]["data_options"]["test_size"],
                            **REALISTIC_AUDIO),
    }
    return Profile(
        name="converged", seeds=(0, 1, 2), finetune=finetune,
        pretrain={
            "image": _pretrain("image", 20000, 2000, 10, 64),
            "audio": _with_data(_pretrain("audio", 3000, 600, 20, 32), **REALISTIC_AUDIO),
            "video": _pretrain("video", 2000, 400, 20, 32),
            "point": _pretrain("point", 2000, 400, 20, 32),
        },
        short_pretrain_epochs=1, small_finetune_scale=1.0, small_pretrain_scale=0.5,
        settings=("scratch",), minilm_targets=("image",), minilm_mae_targets=(), minilm_control_targets=("image",),
        ablations=False, lambda_options=(), lambda_controls=(), controls=("random", "permuted"),
        minilm_controls=("random", "permuted"), order="informative", extra_seeds=(3, 4), extra_seed_se=1.0,
        budget_targets=("image", "audio"), budget_multipliers=(1, 4, 16), budget_base=budget_base,
        plateau_targets=MODALITIES, aux_plateau=("point",), min_lambda_lr_sum=1.0,
        lr_sum_groups=("main", "minilm", "fixacc", "auxplateau"),
        fixacc_auxiliaries=("point", "audio", "video"), fixacc_controls=("random", "permuted"),
        fixacc_options=dict(FIXACC_LINEAR_PROBE))


def gpu_profile() -> Profile:
    """The most informative arms at a budget sized for about 10 minutes on one GPU (several runs
    at once; not measured yet): the image target on 50,000 Fashion-MNIST images for 20 epochs, tiny preset with the
    point pathway and its two controls, ``small`` preset with MiniLM and its two controls. Only
    data that needs no system package at run time (Fashion-MNIST is read from the data cache;
    generate it first with ``scripts/gpu_reproduce.sh prepare``)."""
    gpu = dict(device="cuda", amp=True)
    image = {**_finetune("image", 50000, 10000, 20, 256), **gpu}
    return Profile(
        name="gpu", seeds=(0, 1, 2),
        finetune={"image": image},
        pretrain={"point": {**_pretrain("point", 4000, 400, 40, 64), **gpu}},
        short_pretrain_epochs=1, small_finetune_scale=1.0, small_pretrain_scale=0.5,
        targets=("image",), auxiliaries=("image", "point"), settings=("scratch",), minilm_targets=("image",),
        minilm_mae_targets=(), minilm_control_targets=("image",), ablations=False, lambda_options=(),
        lambda_controls=(), controls=("random", "permuted"), minilm_controls=("random", "permuted"),
        order="informative", plateau_targets=("image",), min_lambda_lr_sum=1.0)


PROFILES = {"quick": quick_profile, "full": full_profile, "converged": converged_profile, "gpu": gpu_profile}


def get_profile(name: str) -> Profile:
    """The profile of that name (``quick``, ``full``, ``converged`` or ``gpu``)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    return PROFILES[name]()
