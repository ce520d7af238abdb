"""Cross-modal re-parameterization, model-agnostic: attach, train, merge, save."""

from .attach import add_pathways, unwrap_model
from .config import PathwayConfig
from .errors import PathwayError
from .layer import BiasPathway, Pathway
from .merge import merge_pathways
from .module import has_pathways, iter_pathway_layers
from .optim import no_weight_decay_names, param_groups, pathway_parameter_names
from .peft_compat import prepare_peft_model
from .state import load_pathways, save_pathways
from .summary import PathwaySummary, pathway_scales, pathway_summary

__all__ = [
    "BiasPathway", "Pathway", "PathwayConfig", "PathwayError", "PathwaySummary", "add_pathways",
    "has_pathways", "iter_pathway_layers", "load_pathways", "merge_pathways", "no_weight_decay_names",
    "param_groups", "pathway_parameter_names", "prepare_peft_model",
    "pathway_scales", "pathway_summary", "save_pathways", "unwrap_model",
]
