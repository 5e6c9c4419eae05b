"""Hand-designed optimizers, all with velo's calling convention.

Every optimizer is an `optax.GradientTransformationExtraArgs` whose update is
``update(grads, state, params, *, loss=None, loss_fn=None)``. Build them by name with `make`
(guarded against non-finite steps), or use the transforms below directly.
"""

from velo.baselines.catapult import catapult_learning_rate, catapult_warmup
from velo.baselines.cosine import adamw_cosine, lion_cosine, warmup_cosine
from velo.baselines.gi_adam import gi_adam, scale_by_gi_adam
from velo.baselines.lookahead import lookahead, ranger, slow_params
from velo.baselines.mechanic import mechanic
from velo.baselines.radam import radam
from velo.baselines.registry import defaults, eval_params_fn, make, names
from velo.baselines.salsa import salsa, salsa_paper
from velo.guard import check_float_params, skip_nonfinite

__all__ = [
    "adamw_cosine", "catapult_learning_rate", "catapult_warmup", "check_float_params", "defaults",
    "eval_params_fn", "gi_adam", "lookahead", "make", "mechanic", "names", "radam", "ranger",
    "lion_cosine", "salsa", "salsa_paper", "scale_by_gi_adam", "skip_nonfinite",
    "slow_params", "warmup_cosine",
]
