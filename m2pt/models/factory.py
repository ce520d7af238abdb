"""`create_model`: one entry point for the four modality models, with presets and recorded build args."""
import inspect
import json
from typing import Any, Callable, Dict, Mapping

from torch import nn

from m2pt.options import constructor_defaults, value_type_problem

from .audio import AudioTransformer
from .image import create_image_model
from .point import PointPartSegTransformer, PointTransformer
from .presets import MODALITIES, preset_kwargs
from .video import VideoTransformer

__all__ = ["create_model", "create_model_from_args", "valid_overrides", "POINT_TASKS"]

POINT_TASKS = ("classification", "partseg")

_BUILDERS: Dict[str, Callable[..., nn.Module]] = {
    "image": create_image_model,
    "video": VideoTransformer,
    "audio": AudioTransformer,
    "point": PointTransformer,
    "point/partseg": PointPartSegTransformer,
}


def _builder(modality: str, task: str) -> Callable[..., nn.Module]:
    if modality == "point":
        if task not in POINT_TASKS:
            raise ValueError(f"unknown point task {task!r}; valid tasks: {', '.join(POINT_TASKS)}")
        return _BUILDERS["point/partseg" if task == "partseg" else "point"]
    if task != "classification":
        raise ValueError(f"task {task!r} is only available for point models; {modality} supports 'classification'")
    return _BUILDERS[modality]


def _parameters(builder: Callable[..., nn.Module]) -> set:
    """Named parameters of a builder function, or of a model class and its model base classes."""
    if isinstance(builder, type):
        inits = [cls.__init__ for cls in builder.__mro__
                 if issubclass(cls, nn.Module) and cls is not nn.Module and "__init__" in vars(cls)]
    else:
        inits = [builder]
    return {name for init in inits for name, p in inspect.signature(init).parameters.items()
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def _check_override_types(overrides: Mapping[str, Any], preset: Mapping[str, Any],
                          builder: Callable[..., nn.Module]) -> None:
    """Refuse an override whose value is not of the type of the preset's (or the builder's default) value."""
    defaults = {**constructor_defaults([builder]), **preset}
    for name, value in overrides.items():
        expected = value_type_problem(value, defaults.get(name, inspect.Parameter.empty))
        if expected:
            raise ValueError(f"model override {name}={value!r} must be {expected} (the preset uses "
                             f"{defaults[name]!r})")


def valid_overrides(modality: str, task: str = "classification") -> list:
    """Names of the constructor arguments `create_model` accepts as overrides for a modality."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; valid modalities: {', '.join(MODALITIES)}")
    extra = {"task"} if modality == "point" else set()
    return sorted((_parameters(_builder(modality, task)) | extra) - {"num_classes"})


def create_model(modality: str, preset: str = "base", num_classes: int = 1000, **overrides: Any) -> nn.Module:
    """Build a modality model from a preset.

    Args:
        modality: "image", "video", "point" or "audio".
        preset: "base" (ViT-B, paper inputs), "small" or "tiny" (CPU-sized inputs); see `presets`.
        num_classes: Head classes (part labels for `task="partseg"`); 0 builds no head.
        **overrides: Constructor arguments replacing the preset's (`embed_dim`, `depth`, `num_heads`,
            `img_size`, `patch_size`, `in_chans`, `num_frames`, `num_points`, `num_groups`, `group_size`,
            `target_length`, `drop_path_rate`, ...). Point models also take `task` ("classification"
            or "partseg"). Values must be JSON-serialisable.

    Returns:
        The model, with `model.m2pt_model_args` (the arguments of this call, JSON-serialisable, so
        `create_model(**model.m2pt_model_args)` rebuilds it) and `model.pretrained_cfg["input_size"]`
        (expected input without the batch dimension).

    Raises:
        ValueError: Unknown modality, preset, task or override, listing the valid choices.
    """
    kwargs = preset_kwargs(modality, preset)
    task = overrides.get("task", "classification")
    builder = _builder(modality, task)
    valid = valid_overrides(modality, task)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown override(s) {', '.join(unknown)} for {modality} models; valid overrides: {', '.join(valid)}")
    _check_override_types(overrides, kwargs, builder)
    model_args = {"modality": modality, "preset": preset, "num_classes": num_classes, **overrides}
    try:
        json.dumps(model_args)
    except TypeError as error:
        raise ValueError(f"create_model arguments must be JSON-serialisable to be recorded: {error}") from None
    kwargs.update({k: v for k, v in overrides.items() if k != "task"})
    if kwargs["embed_dim"] % kwargs["num_heads"]:
        raise ValueError(f"embed_dim ({kwargs['embed_dim']}) must be divisible by num_heads ({kwargs['num_heads']})")
    if task == "partseg":
        kwargs = {k: v for k, v in kwargs.items() if k not in ("num_points", "num_groups") or k in overrides}
    model = builder(num_classes=num_classes, **kwargs)
    model.m2pt_model_args = model_args
    model.pretrained_cfg = {**getattr(model, "pretrained_cfg", {}), "modality": modality}
    if modality == "image":
        model.default_cfg = model.pretrained_cfg
    return model


def create_model_from_args(model_args: Mapping[str, Any]) -> nn.Module:
    """Rebuild a model from a recorded `m2pt_model_args` mapping."""
    return create_model(**dict(model_args))
