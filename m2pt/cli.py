"""The ``m2pt`` command."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def _demo(args: argparse.Namespace) -> int:
    from .quickcheck import run_quickcheck

    return run_quickcheck(steps=args.steps, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="m2pt", description="Multimodal Pathway: improve a transformer with another modality's weights.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="end-to-end run on generated data: attach, train, merge, verify",
        description="Attach pathways from a real pretrained language model (MiniLM) to a ViT, train a few "
                    "steps on generated images, merge, and verify that the merged plain ViT gives the same "
                    "outputs.\n\nexample:\n  m2pt demo --steps 30",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--steps", type=int, default=30, help="training steps (default 30)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
