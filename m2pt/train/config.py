"""The resolved configuration of one training run (fine-tuning or MAE pretraining)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from m2pt.pathway import PathwayConfig, PathwayError

AMP_DTYPES = ("bf16", "fp16")
OPTIMIZERS = ("adamw", "lars")


class TrainConfigError(ValueError):
    """A training option has an invalid value (raised before any work starts)."""


@dataclass
class TrainConfig:
    """Every option of a run; written to ``config.json`` in the run folder as resolved.

    Attributes:
        task: ``"finetune"`` or ``"pretrain"`` (MAE).
        modality: ``"image"``, ``"video"``, ``"point"`` or ``"audio"``.
        preset: Model size preset (``"base"``, ``"small"``, ``"tiny"``).
        model_overrides: Extra ``create_model`` arguments (e.g. ``{"depth": 2}``).
        data: Dataset path, or ``"builtin"`` for the generated offline dataset.
        test_data: The test set when ``data`` is a single list file (audio CSV/JSON, video
            list, ScanObjectNN ``.h5``): a file is never both the training and the test set.
        data_options: Extra dataset arguments (e.g. ``{"train_size": 64}``).
        output: Run folder.
        init: Optional target weights to start from (a file ``load_target_weights`` reads).
        aux: Auxiliary checkpoints; empty trains without pathways.
        pathway: How pathways are attached (a :class:`~m2pt.pathway.PathwayConfig`; a dict is converted).
        epochs: Passes over the training set.
        global_batch_size: Samples per optimiser step over all processes. When set, the
            per-process ``batch_size`` and ``accum_steps`` follow from the world size (see
            :func:`resolve_for_world`); None keeps ``batch_size`` x ``accum_steps`` per process.
        batch_size: Micro-batch per process. With ``global_batch_size`` set, the largest
            micro-batch per process (what fits in memory); gradient accumulation makes up the rest.
        accum_steps: Micro-batches per optimiser step (with ``global_batch_size``: at least this many).
        lr: Absolute peak lr; None derives it as ``blr * global_batch_size / 256``.
        blr, min_lr, warmup_epochs, weight_decay, layer_decay: Optimiser and schedule.
        optimizer: ``"adamw"`` or ``"lars"`` (MAE's linear probe).
        clip_grad: Clip the global gradient norm to this value (Point-MAE: 10); None: no clipping.
        linear_probe: Train only the classifier (behind a BatchNorm without affine, as MAE's
            linear probe) and the pathway scales λ; everything else is frozen. The BatchNorm is
            folded into the head of the saved model.
        drop_path, label_smoothing, mixup, cutmix: Regularisation (mixup/cutmix: alphas, images and video).
        mixup_prob, mixup_switch_prob: Chance that a batch is mixed, and that a mixed batch uses
            cutmix instead of mixup (when both alphas are set), as timm's ``Mixup``.
        augment: The training / test input pipeline: ``"none"`` (resize and normalise, the CPU
            profile) or the base method's (``"mae"`` image, ``"videomae"`` video, ``"audiomae"``
            audio, ``"pointmae"`` point), see ``m2pt.data.augment``.
        spec_augment: ``[freq_mask, time_mask]`` for audio, None disables it.
        mask_ratio, decoder_dim, decoder_depth, norm_pix_loss: MAE options.
        eval_every: Evaluate every N epochs (0: only at the end).
        seed, device: Run environment.
        amp: Mixed precision (autocast) on CUDA; the CPU always trains in float32.
        amp_dtype: ``"bf16"`` or ``"fp16"`` (with a gradient scaler, as the base methods ran).
        compile: Run the model through ``torch.compile``.
        max_train_batches: Cap on batches per epoch (tests, quick runs).
        save_every_steps: Also write the checkpoint every N optimiser steps (None: at epoch ends only).
        workers: DataLoader worker processes per training process (0: load in the main
            process; None: the cores left after one per process, at most 8).
        cache_data: Keep inputs in memory after their first read (audio fbank; not with random augmentation).
        interrupt_at_step: Behave as if SIGTERM arrived at this global step (tests).
    """

    task: str = "finetune"
    modality: str = "image"
    preset: str = "tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    data: str = "builtin"
    test_data: Optional[str] = None
    data_options: dict[str, Any] = field(default_factory=dict)
    output: str = "runs/m2pt"
    init: Optional[str] = None
    aux: list[str] = field(default_factory=list)
    pathway: PathwayConfig = field(default_factory=PathwayConfig)
    epochs: int = 3
    global_batch_size: Optional[int] = None
    batch_size: int = 128
    accum_steps: int = 1
    lr: Optional[float] = None
    blr: float = 5e-4
    min_lr: float = 1e-6
    warmup_epochs: float = 0.5
    weight_decay: float = 0.05
    layer_decay: Optional[float] = None
    optimizer: str = "adamw"
    clip_grad: Optional[float] = None
    linear_probe: bool = False
    drop_path: float = 0.0
    label_smoothing: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    augment: str = "none"
    spec_augment: Optional[list[int]] = None
    mask_ratio: float = 0.75
    decoder_dim: int = 128
    decoder_depth: int = 2
    norm_pix_loss: bool = True
    eval_every: int = 1
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    amp_dtype: str = "bf16"
    compile: bool = False
    max_train_batches: Optional[int] = None
    save_every_steps: Optional[int] = None
    workers: Optional[int] = None
    cache_data: bool = False
    interrupt_at_step: Optional[int] = None

    def __post_init__(self) -> None:
        if self.task not in ("finetune", "pretrain"):
            raise TrainConfigError(f"task must be 'finetune' or 'pretrain', got {self.task!r}")
        for name in ("epochs", "batch_size", "accum_steps"):
            if int(getattr(self, name)) < 1:
                raise TrainConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_train_batches", "save_every_steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise TrainConfigError(f"{name} must be a whole number of at least 1 (or unset), got {value!r}")
        if self.global_batch_size is not None and int(self.global_batch_size) < 1:
            raise TrainConfigError(f"global_batch_size must be at least 1 (or null), got {self.global_batch_size}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise TrainConfigError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.layer_decay is not None and not 0.0 < self.layer_decay <= 1.0:
            raise TrainConfigError(f"layer_decay must be in (0, 1], got {self.layer_decay}")
        if self.workers is not None and int(self.workers) < 0:
            raise TrainConfigError(f"workers must be 0 (load in the main process) or more, got {self.workers}")
        from m2pt.data.augment import check_augment

        try:
            check_augment(self.modality, self.augment)
        except ValueError as error:
            raise TrainConfigError(str(error)) from None
        if self.task == "pretrain" and self.augment != "none":
            raise TrainConfigError(f"augment={self.augment!r} is a fine-tuning pipeline; MAE pretraining "
                                   "reads its inputs with augment='none'")
        if self.amp_dtype not in AMP_DTYPES:
            raise TrainConfigError(f"amp_dtype must be one of {AMP_DTYPES}, got {self.amp_dtype!r}")
        if self.optimizer not in OPTIMIZERS:
            raise TrainConfigError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise TrainConfigError(f"clip_grad must be positive (or null for no clipping), got {self.clip_grad}")
        if self.linear_probe and self.task != "finetune":
            raise TrainConfigError("linear_probe applies to fine-tuning only")
        self.aux = [str(a) for a in self.aux]
        if not isinstance(self.pathway, PathwayConfig):
            try:
                self.pathway = PathwayConfig.from_dict(dict(self.pathway or {}))
            except PathwayError as exc:
                raise TrainConfigError(f"pathway: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every option (``pathway`` as a dict)."""
        out = dataclasses.asdict(self)
        out["pathway"] = self.pathway.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error. ``pathway`` may be a partial dict."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainConfigError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(data))

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some options changed (validated again)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})


def resolve_for_world(config: TrainConfig, world_size: int) -> TrainConfig:
    """The options one process of ``world_size`` runs with: batch, accumulation and lr made explicit.

    With ``global_batch_size`` set, each process takes ``global_batch_size / world_size`` samples
    per optimiser step, in the fewest micro-batches (at least ``accum_steps``) of at most
    ``batch_size`` that divide it evenly. Without it, ``global_batch_size`` becomes
    ``batch_size * accum_steps * world_size``. ``lr`` becomes absolute:
    ``blr * global_batch_size / 256`` unless given. Resolving a resolved config at the same
    world size changes nothing.

    Raises:
        TrainConfigError: the global batch does not split evenly over the processes.
    """
    if world_size < 1:
        raise TrainConfigError(f"world_size must be at least 1, got {world_size}")
    if config.global_batch_size is None:
        batch, accum = config.batch_size, config.accum_steps
        global_batch = batch * accum * world_size
    else:
        global_batch = int(config.global_batch_size)
        if global_batch % world_size:
            raise TrainConfigError(
                f"global_batch_size {global_batch} does not split evenly over {world_size} processes; "
                f"choose a multiple of {world_size} (--global-batch-size) or another number of processes")
        per_process = global_batch // world_size
        accum = max(config.accum_steps, math.ceil(per_process / config.batch_size))
        while per_process % accum:
            accum += 1
        batch = per_process // accum
    lr = float(config.lr) if config.lr is not None else config.blr * global_batch / 256
    return config.replace(global_batch_size=global_batch, batch_size=batch, accum_steps=accum, lr=lr)
