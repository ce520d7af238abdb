"""The evidence: ``m2pt reproduce`` runs the paper's experiments at CPU scale and aggregates them."""

from .aggregate import ArmSummary, se_of_difference, summarize
from .arms import Arm
from .budgets import Profile, get_profile
from .plan import PretrainSpec, RunSpec, build_plan
from .lr_budget import lambda_lr_sums
from .random_aux import permuted, std_matched_random, write_control_auxiliary, write_random_auxiliary
from .reproduce import aggregate, reproduce

__all__ = ["Arm", "ArmSummary", "PretrainSpec", "Profile", "RunSpec", "aggregate", "build_plan", "get_profile",
           "lambda_lr_sums", "permuted", "reproduce", "se_of_difference", "std_matched_random", "summarize",
           "write_control_auxiliary", "write_random_auxiliary"]
