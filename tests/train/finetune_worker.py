"""Runs one fine-tuning from a JSON config: ``python finetune_worker.py CONFIG_JSON [--resume]``.

Used as the torchrun worker of the DDP test and as the process the SIGTERM test interrupts.
"""

import json
import sys

import torch

from m2pt.train.config import TrainConfig
from m2pt.train.finetuning import finetune

if __name__ == "__main__":
    torch.set_num_threads(1)
    config = TrainConfig.from_dict(json.loads(open(sys.argv[1]).read()))
    result = finetune(config, resume="--resume" in sys.argv, quiet=True, handle_signals=True)
    sys.exit(0 if result.get("finished") else 130)
