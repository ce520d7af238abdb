"""Export a (merged) model as safetensors plus a small JSON config, and load it back.

Layout on disk::

    save_model(model, "run/vit.safetensors")  ->  run/vit.safetensors + run/vit.json
    save_model(model, "run/final")            ->  run/final/model.safetensors + run/final/config.json

The weights file holds exactly ``model.state_dict()``, so a merged image model also loads
into plain timm without this package::

    timm.create_model(arch, pretrained=True, num_classes=10,
                      pretrained_cfg_overlay=dict(file="run/vit.safetensors", num_classes=10))

(``num_classes`` goes in the overlay too: timm drops a classifier whose size differs from
the one its pretrained config declares.)

The config records how to rebuild the model: ``m2pt.models.create_model(**model_args)``
(``builder="m2pt"``) or ``timm.create_model(timm_architecture, **model_args)``
(``builder="timm"``). For a timm model, and for m2pt's image model (a plain timm ViT),
``config["timm"]`` holds every argument of ``timm.create_model``, so timm alone rebuilds it::

    timm.create_model(**config["timm"], pretrained_cfg_overlay=dict(file="run/final/model.safetensors"))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from torch import nn

from ..io import PathLike, atomic_write_json, load_tensor_file, read_safetensors_metadata, save_safetensors
from .formats import M2PT_METADATA_KEY, CheckpointError, is_pathway_key
from .hf_export import M2PT_HF_CONFIG, is_transformers_model, load_pretrained_export, save_pretrained_export

CONFIG_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def export_paths(path: PathLike) -> tuple[Path, Path]:
    """``(weights, config)`` paths for ``path``: a ``.safetensors`` file or a directory."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return path, path.with_suffix(".json")
    if path.is_dir() or not path.suffix:
        return path / WEIGHTS_NAME, path / CONFIG_NAME
    raise CheckpointError(
        f"save_model writes safetensors: name the file '*.safetensors' or pass a directory, got {path}.")


def _timm_architecture(model: nn.Module) -> str | None:
    pretrained_cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(pretrained_cfg, Mapping):
        return pretrained_cfg.get("architecture")
    return None


# The pretrained_cfg fields that describe the saved weights; source fields (url, hf_hub_id, ...)
# are left out so that timm loads the file given in ``pretrained_cfg_overlay``.
_TIMM_CFG_FIELDS = ("architecture", "input_size", "fixed_input_size", "interpolation", "crop_pct", "crop_mode",
                    "mean", "std", "first_conv", "classifier", "pool_size")


def timm_rebuild_args(model: nn.Module) -> dict[str, Any] | None:
    """Keyword arguments of ``timm.create_model`` that rebuild ``model`` with its saved weights.

    ``timm.create_model(**args, pretrained_cfg_overlay=dict(file=weights))`` then needs no other
    knowledge. Available for models timm's factory built (it records ``_model_args``) and m2pt
    image models (plain timm ViTs that record the same); None for others.
    """
    architecture = _timm_architecture(model)
    recorded = getattr(model, "_model_args", None)
    if architecture is None or not isinstance(recorded, Mapping):
        return None
    try:
        from timm.models._input import get_model_args  # also sees reset_classifier / set_input_size
        model_args = get_model_args(model)
    except ImportError:  # timm < 1.0.31
        model_args = {k: v for k, v in recorded.items() if not k.endswith("drop_rate") and k != "drop_path_rate"}
        if isinstance(getattr(model, "num_classes", None), int):
            model_args["num_classes"] = model.num_classes
    model_args = {k: v for k, v in model_args.items() if k not in ("pretrained", "pretrained_cfg", "model_name")}
    pretrained_cfg = {k: model.pretrained_cfg[k] for k in _TIMM_CFG_FIELDS if model.pretrained_cfg.get(k) is not None}
    pretrained_cfg["num_classes"] = model_args.get("num_classes", getattr(model, "num_classes", None))
    return {"model_name": architecture, "pretrained": True, "pretrained_cfg": pretrained_cfg, **model_args}


def _summary(model: nn.Module) -> dict[str, Any]:
    """Width, depth and heads of a ViT-like model (what an auxiliary loader wants to know)."""
    summary: dict[str, Any] = {"num_parameters": sum(p.numel() for p in model.parameters())}
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, nn.Sequential | nn.ModuleList) and len(blocks):
        summary["depth"] = len(blocks)
        attn = getattr(blocks[0], "attn", None)
        qkv = getattr(attn, "qkv", None)
        if isinstance(qkv, nn.Linear):
            summary["embed_dim"] = qkv.in_features
        if isinstance(getattr(attn, "num_heads", None), int):
            summary["num_heads"] = attn.num_heads
    return summary


def save_model(model: nn.Module, path: PathLike, config: Mapping[str, Any] | None = None,
               extra: Mapping[str, Any] | None = None, classes: Sequence[str] | None = None,
               input_spec: Mapping[str, Any] | None = None) -> Path:
    """Save a plain (merged) model as safetensors with a JSON config beside it.

    Args:
        model: The model. Pathways must be merged first (``m2pt.merge_pathways``).
        path: ``*.safetensors`` (config at ``<stem>.json``) or a directory
            (``model.safetensors`` + ``config.json``). A Hugging Face ``transformers`` model
            is written by its own ``save_pretrained`` into the directory ``path`` (plus
            ``m2pt.json``), so ``from_pretrained(path)`` loads it without m2pt.
        config: Build arguments: for an m2pt model the keyword arguments of
            ``m2pt.models.create_model`` (default: ``model.m2pt_model_args``); for a timm
            model the keyword arguments of ``timm.create_model`` besides the architecture
            (e.g. ``img_size``, ``num_classes``).
        extra: JSON-serialisable notes stored in the config under ``"extra"`` (e.g. how the
            model was trained and its metrics).
        classes: Class names in label order (stored under ``"classes"``), so that evaluation
            and prediction match data to the model by name.
        input_spec: What the model's input is (stored under ``"input"``; see
            ``m2pt.data.input_spec``): modality, input size, normalisation, ...

    Returns:
        The path of the weights file.

    Raises:
        ValueError: the model has unmerged pathways, or the build arguments are not JSON.
    """
    state_dict = model.state_dict()
    unmerged = next((k for k in state_dict if is_pathway_key(k)), None)
    if unmerged is not None:
        raise CheckpointError(
            f"The model still has unmerged pathways ({unmerged!r}). Call m2pt.merge_pathways(model) first to "
            "save a plain model, or m2pt.save_pathways to save the pathway state for later training.")

    from ..pathway.peft_compat import lora_layers

    adapters = lora_layers(model)
    if adapters:
        raise CheckpointError(
            f"The model still has PEFT adapter layers ({adapters[0][0]!r}): merge them first with "
            "model.merge_and_unload() (exact on pathway layers, see m2pt.prepare_peft_model), then "
            "m2pt.merge_pathways if pathways remain; or save the adapter alone with model.save_pretrained.")

    m2pt_args = getattr(model, "m2pt_model_args", None)
    architecture = _timm_architecture(model)
    timm_args = timm_rebuild_args(model)
    model_args = dict(config) if config is not None else (dict(m2pt_args) if m2pt_args is not None else {})
    if m2pt_args is not None or (config is not None and architecture is None):
        builder = "m2pt"
    elif architecture is not None:
        builder = "timm"
        if config is None and timm_args is not None:
            model_args = {k: v for k, v in timm_args.items() if k not in ("model_name", "pretrained", "pretrained_cfg")}
    else:
        builder = None
    document = {
        "m2pt_config_version": CONFIG_VERSION,
        "builder": builder,
        "model_args": model_args,
        "timm_architecture": architecture,
        # timm.create_model(**config["timm"], pretrained_cfg_overlay=dict(file=<weights>)) rebuilds the model.
        "timm": timm_args,
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "summary": _summary(model),
        "extra": dict(extra or {}),
        "classes": [str(c) for c in classes] if classes is not None else None,
        "input": dict(input_spec) if input_spec is not None else None,
    }
    try:
        encoded = json.dumps(document, sort_keys=True)
    except TypeError as exc:
        raise CheckpointError(f"The build arguments of the model are not JSON-serialisable ({exc}): {model_args!r}") from exc

    if is_transformers_model(model):
        return save_pretrained_export(model, path, document)
    weights_path, config_path = export_paths(path)
    document["weights"] = weights_path.name
    save_safetensors(state_dict, weights_path, metadata={"format": "pt", M2PT_METADATA_KEY: encoded})
    atomic_write_json(config_path, document)
    return weights_path


def _find_config(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        return path / WEIGHTS_NAME, path / CONFIG_NAME
    if path.suffix == ".json":
        return path.with_suffix(".safetensors"), path
    config_path = path.with_suffix(".json")
    if not config_path.is_file() and (path.parent / CONFIG_NAME).is_file():
        config_path = path.parent / CONFIG_NAME
    return path, config_path


def read_export_config(path: PathLike) -> dict[str, Any]:
    """The JSON config of an exported model (``path``: weights file, config file or directory).

    Without the ``.json`` beside the weights, the copy that :func:`save_model` stores in the
    safetensors header is used, so a lone ``.safetensors`` still knows its classes and input.

    Raises:
        FileNotFoundError: no config beside the weights.
        ValueError: the config is not the JSON that :func:`save_model` writes.
    """
    if not Path(path).exists():
        raise FileNotFoundError(f"no model at {path}: the file (or export folder) does not exist")
    weights_path, config_path = _find_config(Path(path))
    if not config_path.is_file() and weights_path.suffix == ".safetensors" and weights_path.is_file():
        embedded = read_safetensors_metadata(weights_path).get(M2PT_METADATA_KEY)
        if embedded:  # the weights file carries the same document in its header
            return json.loads(embedded)
    if not config_path.is_file():
        raise FileNotFoundError(
            f"No model config at {config_path}: load_model needs the JSON that save_model writes beside the "
            "weights. To load bare weights, build the model yourself and use m2pt.checkpoints.load_target_weights.")
    try:
        document = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path} is not valid JSON ({exc}); re-export the model with save_model.") from exc
    if not isinstance(document, dict) or "builder" not in document or not isinstance(document.get("model_args"), dict):
        raise CheckpointError(
            f"{config_path} is not an m2pt model config (expected the keys 'builder' and 'model_args' that "
            "save_model writes).")
    return document


def load_model(path: PathLike) -> nn.Module:
    """Rebuild a model saved by :func:`save_model` and load its weights (strictly).

    Args:
        path: The ``.safetensors`` file, its ``.json`` config, or the export directory.

    Returns:
        The model, in the mode its builder leaves it (training mode for timm and m2pt), with
        ``m2pt_classes`` (class names or None) and ``m2pt_input`` (input spec or None).

    Raises:
        FileNotFoundError: weights or config missing.
        ValueError: garbled config, no way to rebuild the model, or weights that do not fit.
        ImportError: the m2pt model zoo (``m2pt.models``) is unavailable for an m2pt model.
    """
    if (Path(path) / M2PT_HF_CONFIG).is_file():
        return load_pretrained_export(path)
    weights_path, config_path = _find_config(Path(path))
    document = read_export_config(path)
    builder, model_args = document["builder"], document["model_args"]
    if builder == "m2pt":
        try:
            from m2pt.models import create_model
        except ImportError as exc:
            raise ImportError(
                f"{config_path} describes an m2pt model, but m2pt.models.create_model cannot be imported: {exc}") from exc
        model = create_model(**model_args)
    elif builder == "timm":
        import timm

        model = timm.create_model(document["timm_architecture"], pretrained=False, **model_args)
    else:
        raise CheckpointError(
            f"{config_path} records no way to rebuild the model (builder={builder!r}, class "
            f"{document.get('model_class')!r}). Build it yourself and load the weights with "
            "m2pt.checkpoints.load_target_weights(model, path, strict=True).")

    state_dict = load_tensor_file(weights_path)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"The weights in {weights_path} do not fit the model rebuilt from {config_path}:\n{exc}") from exc
    model.m2pt_classes = document.get("classes")
    model.m2pt_input = document.get("input")
    return model
