"""The ``m2pt`` command: pretrain, finetune, merge, evaluate, info, export, demo."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

EXAMPLES = {
    "demo": "examples:\n  m2pt demo\n  m2pt demo --quick --output /tmp/m2pt-demo",
    "pretrain": "examples:\n  m2pt pretrain --modality point --output runs/point_mae\n"
                "  m2pt pretrain --modality audio --epochs 20 --mask-ratio 0.8 --output runs/audio_mae\n"
                "  torchrun --nproc_per_node=2 -m m2pt.cli pretrain --modality video --output runs/video_mae",
    "finetune": "examples:\n  m2pt finetune --modality image --output runs/plain\n"
                "  m2pt finetune --modality image --aux runs/point_mae/encoder.safetensors --output runs/m2pt\n"
                "  m2pt finetune --recipe image --data /data/imagenet --aux pointmae_pretrain.pth "
                "--init mae_pretrain_vit_base.pth --output runs/in1k\n"
                "  m2pt finetune --output runs/m2pt --resume\n"
                "  m2pt finetune --config configs/paper/in1k_mae_m2pt_point.json --set data=/data/imagenet "
                "--set init=mae_pretrain_vit_base.pth --set 'aux=[\"pointmae.pth\"]' --output runs/in1k_point\n"
                "  WORLD_SIZE=8 m2pt finetune --recipe image --output runs/x --print-config",
    "merge": "examples:\n  m2pt merge runs/m2pt/pathways.safetensors merged.safetensors\n  m2pt merge runs/m2pt out.safetensors\n"
             "  m2pt merge runs/m2pt out.safetensors --overwrite",
    "predict": "examples:\n  m2pt predict runs/m2pt/model.safetensors clip1.wav clip2.wav\n"
               "  m2pt predict model.safetensors photos/*.png --top-k 3",
    "evaluate": "examples:\n  m2pt evaluate runs/m2pt/model.safetensors\n"
                "  m2pt evaluate merged.safetensors --data /data/fashion_images --split test",
    "info": "examples:\n  m2pt info runs/m2pt/pathways.safetensors\n  m2pt info mae_pretrain_vit_base.pth\n"
            "  m2pt info runs/m2pt",
    "export": "examples:\n  m2pt export runs/m2pt/model.safetensors --onnx model.onnx\n"
              "  m2pt export merged.safetensors --onnx model.onnx --exporter torchscript --batch-size 8",
}


def key_value(text: str) -> tuple[str, Any]:
    """argparse type for ``KEY=VALUE``: the value parsed as JSON when it is JSON, else kept as text."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _add_training_arguments(p: argparse.ArgumentParser, task: str) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--recipe", help="preset of options (image, image-linprobe, video, audio, point, pretrain, cpu, "
                                    "cpu-pretrain); default "
                                    f"{'cpu-pretrain' if task == 'pretrain' else 'cpu'} unless --config is given")
    g.add_argument("--config", help="a JSON file of training options (e.g. configs/paper/*.json), over the recipe")
    g.add_argument("--set", dest="set_options", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                   help="set any option last (JSON value), e.g. epochs=2, pathway.scale_init=1e-4 (repeatable)")
    g.add_argument("--print-config", action="store_true",
                   help="print the resolved options as JSON (batch and lr for this WORLD_SIZE) and exit")
    g.add_argument("--modality", choices=["image", "video", "point", "audio"])
    g.add_argument("--preset", help="model size: base, small, tiny")
    g.add_argument("--model-override", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                   help="create_model argument, e.g. depth=2 (repeatable)")
    g.add_argument("--data", help="dataset path, or 'builtin' (default) for the generated offline data")
    g.add_argument("--test-data", help="test list when --data is a single list file (never both train and test)")
    g.add_argument("--data-option", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                   help="dataset argument, e.g. train_size=2000 (repeatable)")
    g.add_argument("--output", "-o", help="run folder (required unless the --config file names one)")
    g.add_argument("--resume", action="store_true", help="continue the run in --output where it stopped")
    g.add_argument("--overwrite", action="store_true", help="replace a run already in --output")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bars or log lines on the terminal")
    g.add_argument("--seed", type=int)
    g.add_argument("--device", help="auto (default), cpu, cuda")
    g.add_argument("--no-amp", dest="amp", action="store_false", default=None, help="no autocast on CUDA")
    g.add_argument("--amp-dtype", choices=["bf16", "fp16"],
                   help="autocast dtype on CUDA; fp16 uses a gradient scaler (the base methods ran fp16)")
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    g.add_argument("--max-train-batches", type=int, help="cap batches per epoch (quick runs)")
    g.add_argument("--save-every-steps", type=int, metavar="N",
                   help="also checkpoint every N optimiser steps (default: at epoch ends and on signals)")
    g.add_argument("--cache-data", action="store_true", default=None,
                   help="keep inputs in memory after the first read (e.g. audio fbank)")
    g.add_argument("--workers", type=int, metavar="N",
                   help="data loading processes per training process (0: the main process; default: the cores "
                        "left after one per training process, at most 8)")
    g.add_argument("--augment", help="input pipeline: none (resize, normalise) or the base method's: mae (image), "
                                     "videomae (video), audiomae (audio), pointmae (point)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int)
    o.add_argument("--global-batch-size", type=int,
                   help="samples per optimiser step over all processes (paper recipes set it)")
    o.add_argument("--batch-size", type=int,
                   help="micro-batch per process; with a global batch size, the largest that fits in memory")
    o.add_argument("--accum-steps", type=int, help="gradient accumulation steps (with a global batch: at least)")
    o.add_argument("--lr", type=float, help="absolute peak lr (default: blr * global batch / 256)")
    o.add_argument("--blr", type=float)
    o.add_argument("--min-lr", type=float)
    o.add_argument("--warmup-epochs", type=float)
    o.add_argument("--weight-decay", type=float)
    o.add_argument("--layer-decay", type=float)
    o.add_argument("--optimizer", choices=["adamw", "lars"])
    o.add_argument("--clip-grad", type=float, help="clip the gradient norm to this value")
    o.add_argument("--drop-path", type=float)
    o.add_argument("--eval-every", type=int)
    if task == "finetune":
        o.add_argument("--label-smoothing", type=float)
        o.add_argument("--mixup", type=float, help="mixup alpha (images)")
        o.add_argument("--cutmix", type=float, help="cutmix alpha (images)")
        o.add_argument("--mixup-prob", type=float, help="chance that a batch is mixed (default 1)")
        o.add_argument("--mixup-switch-prob", type=float, help="chance of cutmix instead of mixup when both are set")
        o.add_argument("--spec-augment", type=int, nargs=2, metavar=("FREQ", "TIME"), help="audio SpecAugment masks")
        o.add_argument("--init", help="target weights to start from")
        o.add_argument("--linear-probe", action="store_true", default=None,
                       help="train only the classifier (behind a BatchNorm) and λ: the paper's 'fix acc'")
        w = p.add_argument_group("pathways (PathwayConfig)")
        w.add_argument("--aux", action="append", default=None, help="auxiliary checkpoint (repeatable); none: plain run")
        add_pathway_arguments(w)
    else:
        m = p.add_argument_group("masked autoencoding")
        m.add_argument("--mask-ratio", type=float, help="default 0.75 (0.6 point, 0.8 audio, 0.9 video)")
        m.add_argument("--decoder-dim", type=int)
        m.add_argument("--decoder-depth", type=int)
        m.add_argument("--no-norm-pix-loss", dest="norm_pix_loss", action="store_false", default=None)


_PATHWAY_DEST = "pathway__"
#: Short forms kept from earlier releases: flag -> (field, value).
_PATHWAY_ALIASES = {"--fixed-scale": ("train_scale", False), "--freeze-aux": ("train_aux", False),
                    "--freeze-target": ("train_target", False)}
_SKIP = {"command", "func", "recipe", "config", "set_options", "print_config", "resume", "overwrite", "quiet",
         "model_override", "data_option"}


def _block_pairing(text: str) -> Any:
    """``in_order``, ``reversed`` or a JSON object ``{target_block: aux_block}``."""
    if text.strip().startswith("{"):
        try:
            return {int(k): int(v) for k, v in json.loads(text).items()}
        except (json.JSONDecodeError, ValueError, AttributeError) as exc:
            raise argparse.ArgumentTypeError(f"block pairing {text!r} is not a JSON object of block numbers: {exc}")
    return text


def _attribute_docs(cls: type) -> dict[str, str]:
    """``{attribute: first sentence}`` from the ``Attributes:`` section of a Google-style docstring."""
    docs: dict[str, str] = {}
    lines = (cls.__doc__ or "").splitlines()
    if not any(line.strip() == "Attributes:" for line in lines):
        return docs
    section = lines[next(i for i, line in enumerate(lines) if line.strip() == "Attributes:") + 1:]
    current = None
    for line in section:
        match = re.match(r"^\s{8}(\w+): (.*)$", line)
        if match:
            current = match.group(1)
            docs[current] = match.group(2)
        elif current and line.strip():
            docs[current] += " " + line.strip()
    return {name: text.split(". ")[0].rstrip(".") for name, text in docs.items()}


def add_pathway_arguments(group: Any) -> None:
    """One flag per :class:`~m2pt.pathway.PathwayConfig` field, typed and documented from the dataclass."""
    import dataclasses
    import typing

    from m2pt.pathway import PathwayConfig

    hints = typing.get_type_hints(PathwayConfig)
    docs = _attribute_docs(PathwayConfig)
    for f in dataclasses.fields(PathwayConfig):
        flag, dest = "--" + f.name.replace("_", "-"), _PATHWAY_DEST + f.name
        text = f"{docs.get(f.name, f.name)} (default {f.default!r})"
        if f.name == "layers":
            group.add_argument(flag, dest=dest, nargs="+", metavar="SUFFIX",
                               help=text + "; a regular expression: --set pathway.layers='\"REGEX\"'")
        elif f.name == "block_pairing":
            group.add_argument(flag, dest=dest, type=_block_pairing, help=text)
        elif hints[f.name] is bool:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif typing.get_origin(hints[f.name]) is typing.Literal:
            group.add_argument(flag, dest=dest, choices=list(typing.get_args(hints[f.name])), help=text)
        else:
            group.add_argument(flag, dest=dest, type=type(f.default), help=text)
    for flag, (name, value) in _PATHWAY_ALIASES.items():
        group.add_argument(flag, dest=_PATHWAY_DEST + name, action="store_const", const=value,
                           help=f"same as --no-{name.replace('_', '-')}")


def _set_option(options: dict[str, Any], key: str, value: Any) -> None:
    """``options[key] = value``; ``pathway.FIELD`` sets one pathway field."""
    section, dot, field = key.partition(".")
    if not dot:
        options[key] = value
        return
    if section != "pathway":
        raise ValueError(f"--set {key}: only pathway.FIELD has sub-options")
    options["pathway"] = {**_as_dict(options.get("pathway")), field: value}


def _as_dict(pathway: Any) -> dict[str, Any]:
    if pathway is None:
        return {}
    return dict(pathway) if isinstance(pathway, dict) else pathway.to_dict()


def config_from_args(args: argparse.Namespace, task: str) -> "Any":
    """Recipe, then the ``--config`` file, then the flags given, then ``--set`` (later wins)."""
    from m2pt.train.config import TrainConfig, TrainConfigError
    from m2pt.train.recipes import DEFAULT_MASK_RATIO, recipe

    default_recipe = None if args.config else ("cpu-pretrain" if task == "pretrain" else "cpu")
    options: dict[str, Any] = recipe(args.recipe or default_recipe) if (args.recipe or default_recipe) else {}
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"--config {path}: no such file")
        try:
            loaded = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise TrainConfigError(f"--config {path} is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise TrainConfigError(f"--config {path} must hold a JSON object of training options, "
                                   f"got a {type(loaded).__name__}")
        if loaded.get("task", task) != task:
            raise TrainConfigError(f"--config {path} is a {loaded['task']} configuration; run it with "
                                   f"'m2pt {loaded['task']} --config {path}'")
        pathway = {**_as_dict(options.get("pathway")), **_as_dict(loaded.pop("pathway", None))}
        options.update(loaded)
        options["pathway"] = pathway
    options["task"] = task
    mask_ratio_given = "mask_ratio" in options
    for key, value in vars(args).items():
        if key in _SKIP or value is None:
            continue
        if key.startswith(_PATHWAY_DEST):
            _set_option(options, "pathway." + key[len(_PATHWAY_DEST):], value)
        else:
            options[key] = value
    options["model_overrides"] = {**options.get("model_overrides", {}), **dict(args.model_override)}
    options["data_options"] = {**options.get("data_options", {}), **dict(args.data_option)}
    for key, value in args.set_options:
        _set_option(options, key, value)
    set_keys = {key for key, _ in args.set_options}
    if (args.blr is not None or "blr" in set_keys) and args.lr is None and "lr" not in set_keys:
        options["lr"] = None  # an explicit base lr replaces a recipe's absolute lr
    if task == "pretrain" and not mask_ratio_given and args.mask_ratio is None and not any(
            k == "mask_ratio" for k, _ in args.set_options):
        options["mask_ratio"] = DEFAULT_MASK_RATIO.get(options.get("modality", "image"), 0.75)
    _absolute_paths(options)
    if "output" not in options and not args.print_config:
        raise TrainConfigError("no run folder: give --output (or an 'output' in the --config file)")
    return TrainConfig.from_dict(options)


# Options that may differ on --resume: they change where, how fast or how often, not what is trained.
_RESUME_SAFE = {"device", "cache_data", "save_every_steps", "quiet", "epochs", "workers"}
_RESUME_IGNORED = {"command", "func", "resume", "overwrite", "output", "print_config"}
_FLAG_NAMES = {"amp": "--no-amp", "train_scale": "--fixed-scale", "train_aux": "--freeze-aux",
               "train_target": "--freeze-target"}
_PATH_OPTIONS = ("data", "test_data", "init")


def _flag(dest: str) -> str:
    dest = dest[len(_PATHWAY_DEST):] if dest.startswith(_PATHWAY_DEST) else dest
    return _FLAG_NAMES.get(dest, "--" + dest.replace("_", "-"))


def _absolute_paths(options: dict[str, Any]) -> None:
    """Store existing data/checkpoint paths as absolute ones, so the run resumes from any directory."""
    for key in _PATH_OPTIONS:
        if isinstance(options.get(key), str) and options[key] != "builtin" and Path(options[key]).expanduser().exists():
            options[key] = str(Path(options[key]).expanduser().resolve())
    if options.get("aux"):
        options["aux"] = [str(Path(a).expanduser().resolve()) if Path(a).expanduser().exists() else a
                          for a in options["aux"]]


def _resumed_config(args: argparse.Namespace, task: str) -> Any:
    """The stored config of the run in ``--output``, in that folder (wherever it is now).

    Flags that would change the run are refused, naming each; ``--epochs`` may raise the
    budget, and ``--device``, ``--cache-data``, ``--save-every-steps`` may change.
    """
    from m2pt.train.config import TrainConfig, TrainConfigError
    from m2pt.train.run_dir import CONFIG, RunFolderError

    if not args.output:
        raise RunFolderError("--resume needs --output, the run folder to continue")
    if args.overwrite:
        raise RunFolderError("--resume and --overwrite together: --resume continues the run in --output, "
                             "--overwrite deletes it. Pass only one.")
    path = Path(args.output) / CONFIG
    if not path.is_file():
        raise RunFolderError(f"--resume: {path} does not exist; nothing to resume in {args.output}")
    try:
        stored = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"--resume: {path} is not valid JSON ({exc})") from exc
    given = {k: v for k, v in vars(args).items() if k not in _RESUME_IGNORED and v not in (None, [], False)}
    refused = sorted(_flag(k) for k in given if k not in _RESUME_SAFE)
    if refused:
        raise TrainConfigError(
            f"--resume continues the run as it was configured; {', '.join(refused)} would change it. Drop "
            f"{'these flags' if len(refused) > 1 else 'this flag'} (the run's options are in {path}), or start a new "
            "run in another --output. On resume only --epochs (to raise it), --device, --cache-data, --workers and "
            "--save-every-steps may be given.")
    if "epochs" in given and given["epochs"] < int(stored.get("epochs", 0)):
        raise TrainConfigError(f"--epochs {given['epochs']} on --resume is below the run's {stored['epochs']} "
                               "epochs; a resumed run can only be extended")
    known = set(TrainConfig.__dataclass_fields__)
    config = {k: v for k, v in stored.items() if k in known}
    config.update({k: v for k, v in given.items() if k in known}, output=str(args.output))
    return TrainConfig.from_dict(config)


def resolved_options(config: Any, world_size: Optional[int] = None) -> dict[str, Any]:
    """The options one process runs with under ``world_size`` (default: ``WORLD_SIZE`` as torchrun sets it)."""
    from m2pt.train.config import resolve_for_world

    world_size = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else world_size
    return {"world_size": world_size, **resolve_for_world(config, world_size).to_dict()}


def _train(args: argparse.Namespace, task: str) -> int:
    from m2pt.train.finetuning import finetune
    from m2pt.train.mae import pretrain

    config = _resumed_config(args, task) if args.resume else config_from_args(args, task)
    if args.print_config:
        print(json.dumps(resolved_options(config), indent=2))
        return 0
    run = pretrain if task == "pretrain" else finetune
    result = run(config, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet, handle_signals=True)
    if not result.get("finished"):
        print(f"stopped ({result.get('stop_reason')}) at step {result.get('step')}; continue with: "
              f"m2pt {task} --output {config.output} --resume", file=sys.stderr)
        return 130
    if not args.quiet:
        print(json.dumps(result, indent=2))
    return 0


def _merge(args: argparse.Namespace) -> int:
    from m2pt.train.merge_file import merge_pathway_file

    out = merge_pathway_file(args.pathways, args.output, model_args_file=args.config, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from m2pt.checkpoints import load_model
    from m2pt.train.config import TrainConfig
    from m2pt.train.data import build_split
    from m2pt.train.finetuning import evaluate_model
    from m2pt.train.predict import evaluation_data_options, match_model_classes

    model = load_model(args.model)
    model_args = model.m2pt_model_args
    overrides = {k: v for k, v in model_args.items() if k not in ("modality", "preset", "num_classes")}
    spec = getattr(model, "m2pt_input", None) or {}
    data_options = {**evaluation_data_options(spec, model_args["modality"], args.data), **dict(args.data_option)}
    config = TrainConfig(modality=model_args["modality"], preset=model_args["preset"], model_overrides=overrides,
                         data=args.data, data_options=data_options)
    dataset = match_model_classes(build_split(config, args.split), model, f"--data {args.data}")
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    metrics = evaluate_model(model.to(device), dataset, device, multi_label=bool(getattr(dataset, "multi_label", False)))
    print(json.dumps(metrics, indent=2))
    return 0


def _predict(args: argparse.Namespace) -> int:
    import torch

    from m2pt.checkpoints import load_model
    from m2pt.train.predict import model_classes_and_input, predict_files

    model = load_model(args.model)
    classes, spec = model_classes_and_input(model, args.model)
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    print(json.dumps(predict_files(model, args.files, classes, spec, top_k=args.top_k, device=device), indent=2))
    return 0


def _info(args: argparse.Namespace) -> int:
    from m2pt.train.inspect import describe_checkpoint

    description = describe_checkpoint(args.checkpoint)
    if not args.all_layers and "layers" in description:
        description["layers"] = description["layers"][:8] + (["..."] if len(description["layers"]) > 8 else [])
    print(json.dumps(description, indent=2))
    return 0


def _export(args: argparse.Namespace) -> int:
    from m2pt.checkpoints import load_model
    from m2pt.checkpoints.onnx import example_inputs, export_onnx

    model = load_model(args.model)
    result = export_onnx(model, args.onnx, example_inputs(model, args.batch_size), exporter=args.exporter,
                         opset=args.opset, check=not args.no_check)
    finite = result.max_abs_diff is None or result.max_abs_diff != float("inf")
    print(json.dumps({"onnx": str(result.path), "exporter": result.exporter, "input_shape": list(result.input_shape),
                      "max_abs_diff_vs_torch": result.max_abs_diff if finite else None,
                      "nan_or_inf_vs_torch": not finite}, indent=2))
    if result.max_abs_diff is not None and result.max_abs_diff > args.atol:
        how = ("gives NaN or Inf where PyTorch does not" if result.max_abs_diff == float("inf")
               else f"differs from PyTorch by {result.max_abs_diff:.3g} > --atol {args.atol:g}")
        other = "torchscript" if result.exporter == "dynamo" else "dynamo"
        print(f"m2pt export: error: onnxruntime {how}; {result.path} was written but does not reproduce the model "
              f"(try --exporter {other}).", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from m2pt.train.demo import run_demo

    run_demo(output=args.output, quick=args.quick, seed=args.seed, quiet=args.quiet, handle_signals=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="m2pt", description="Multimodal Pathway: improve a transformer with another modality's weights.")
    from m2pt import __version__

    parser.add_argument("--version", action="version", version=f"m2pt {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=description, epilog=EXAMPLES[name],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)

    demo = add("demo", "MAE-pretrain an audio model, fine-tune an image ViT with and without pathways, merge",
               "The method end to end on built-in data, about 5-10 minutes on 2 CPU cores.")
    demo.add_argument("--output", "-o", default="runs/demo")
    demo.add_argument("--quick", action="store_true", help="a much smaller budget (about a minute)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", "-q", action="store_true")
    demo.set_defaults(func=_demo)

    pre = add("pretrain", "MAE-style pretraining of an auxiliary model",
              "Masked autoencoding on any modality; writes <output>/encoder.safetensors, an auxiliary checkpoint.")
    _add_training_arguments(pre, "pretrain")
    pre.set_defaults(func=lambda a: _train(a, "pretrain"))

    fine = add("finetune", "fine-tune a model, with pathways from --aux checkpoints",
               "Fine-tune a modality model; with --aux, every block linear gets W + λW' and the result is merged "
               "into a plain model (<output>/model.safetensors).")
    _add_training_arguments(fine, "finetune")
    fine.set_defaults(func=lambda a: _train(a, "finetune"))

    merge = add("merge", "pathway checkpoint -> plain model", "Fold W + λW' into W; the output has the vanilla "
                "architecture and loads with strict=True.")
    merge.add_argument("pathways", help="pathways.safetensors, or a run folder")
    merge.add_argument("output", help="output .safetensors")
    merge.add_argument("--config", help="JSON with model_args (default: config.json beside the pathway file)")
    merge.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    merge.set_defaults(func=_merge)

    ev = add("evaluate", "test metrics of a saved model", "Top-1/top-5 (or mAP) of a plain m2pt model on a dataset.")
    ev.add_argument("model", help="model .safetensors written by m2pt")
    ev.add_argument("--data", default="builtin")
    ev.add_argument("--data-option", action="append", type=key_value, default=[], metavar="KEY=VALUE")
    ev.add_argument("--split", default="test")
    ev.add_argument("--device", default="auto")
    ev.set_defaults(func=_evaluate)

    pred = add("predict", "top-k class names for files, with a saved model",
               "Read each file as the model's input (as recorded in the model file: modality, size, normalisation) "
               "and print its top-k classes by name.")
    pred.add_argument("model", help="model .safetensors written by m2pt")
    pred.add_argument("files", nargs="+", help="input files (images, audio, videos, point clouds)")
    pred.add_argument("--top-k", type=int, default=5)
    pred.add_argument("--device", default="auto")
    pred.set_defaults(func=_predict)

    info = add("info", "what a checkpoint holds", "Format, shapes, where pathways are, λ statistics.")
    info.add_argument("checkpoint", help="a checkpoint file or run folder")
    info.add_argument("--all-layers", action="store_true", help="list every pathway layer")
    info.set_defaults(func=_info)

    export = add("export", "merged model -> ONNX", "Export a plain (merged) model written by m2pt to ONNX with a "
                 "dynamic batch, and check it with onnxruntime.")
    export.add_argument("model", help="model .safetensors (or export folder) written by m2pt")
    export.add_argument("--onnx", required=True, help="output .onnx file")
    export.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo")
    export.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    export.add_argument("--batch-size", type=int, default=2, help="batch of the example input")
    export.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    export.add_argument("--atol", type=float, default=1e-4, help="largest accepted |onnxruntime - torch|")
    export.set_defaults(func=_export)

    from m2pt.experiments.command import add_reproduce_command

    add_reproduce_command(commands)
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    from m2pt.checkpoints import CheckpointError
    from m2pt.data import DatasetError
    from m2pt.pathway import PathwayError
    from m2pt.train.config import TrainConfigError
    from m2pt.train.run_dir import RunFolderError

    return (CheckpointError, DatasetError, PathwayError, TrainConfigError, RunFolderError, FileNotFoundError,
            ValueError, OSError)


def configure_process() -> None:
    """Process-wide settings of the ``m2pt`` command (a library import changes none of them).

    OpenMP threads that spin while waiting steal the CPU from the threads doing the work
    whenever another process is busy too: on a shared 2-core machine, small-model training
    steps ran 10-15x slower. Passive waiting avoids that; it only takes effect when set before
    torch is first imported (``import m2pt`` does not import it). An ``OMP_WAIT_POLICY``
    already in the environment is kept.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: Optional[Sequence[str]] = None) -> int:
    configure_process()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _known_errors() as exc:
        print(f"m2pt {args.command}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
