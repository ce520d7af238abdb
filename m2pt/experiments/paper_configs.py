"""Run a paper-scale configuration file (``configs/paper/*.json``) on a GPU machine.

Each file holds the options of one :class:`~m2pt.train.config.TrainConfig` (the paper's
recipe for that task, with placeholder paths for the dataset and the checkpoints)::

    python -m m2pt.experiments.paper_configs configs/paper/in1k_mae_m2pt_point.json \\
        --set data=/datasets/imagenet --set 'aux=["/ckpt/pointmae.pth"]'
    torchrun --nproc_per_node=8 -m m2pt.experiments.paper_configs configs/paper/in1k_mae_m2pt_point.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from m2pt.cli import key_value


def load_config(path: str | Path, overrides: Sequence[tuple[str, Any]] = ()) -> Any:
    """A validated ``TrainConfig`` from a JSON file (and ``key=value`` overrides)."""
    from m2pt.pathway import PathwayConfig
    from m2pt.train.config import TrainConfig

    options = json.loads(Path(path).read_text())
    options.update(dict(overrides))
    config = TrainConfig.from_dict(options)
    PathwayConfig.from_dict(config.pathway)  # unknown pathway fields fail here, before any work
    return config


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m2pt.experiments.paper_configs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="a configs/paper/*.json file")
    parser.add_argument("--set", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                        help="override an option (JSON value), repeatable")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="validate and print the options only")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.set)
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    if config.task == "pretrain":
        from m2pt.train.mae import pretrain

        pretrain(config, resume=args.resume)
    else:
        from m2pt.train.finetuning import finetune

        finetune(config, resume=args.resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
