"""Training: fine-tuning with pathways, MAE pretraining of auxiliary models, run folders."""

from .config import TrainConfig, TrainConfigError, resolve_for_world
from .finetuning import evaluate_model, finetune
from .recipes import RECIPES, recipe
from .run_dir import RunFolderError

__all__ = ["RECIPES", "RunFolderError", "TrainConfig", "TrainConfigError", "evaluate_model", "finetune", "recipe",
           "resolve_for_world"]
