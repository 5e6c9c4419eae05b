"""Weight reparameterisation: the optimizer sees ``theta`` while the model uses ``scale * theta``.

VeLO trained on tasks reparameterised this way so that the learned optimizer cannot rely on
parameters and gradients having "natural" magnitudes: with scale ``s`` the optimizer's variable is
``w / s`` and its gradient ``s * dL/dw``. Scales are powers of ten (bucketed, so a handful of
compiled programs covers the whole range). Label smoothing and label noise live with the losses
and batch samplers (`tasks.objectives`, `tasks.batches`).
"""

from __future__ import annotations

import jax
import numpy as np

from tasks.base import TaskFns
from tasks.spec import TaskSpec


def reparam_scales(spec: TaskSpec, params_shape) -> object | None:
    """A pytree of Python float scales matching ``params_shape``, or ``None`` for no reparam.

    ``"global"`` gives every tensor ``10**reparam_exponent``; ``"tensor"`` draws one integer
    exponent per tensor uniformly from ``[-|e|, |e|]`` with a generator seeded by ``spec.seed``.
    """
    e = spec.reparam_exponent
    if spec.reparam == "none":
        return None
    if spec.reparam == "global":
        return jax.tree.map(lambda _: 10.0**e, params_shape)
    leaves, treedef = jax.tree.flatten(params_shape)
    exponents = np.random.default_rng([spec.seed, 0x5CA1E]).integers(-abs(e), abs(e) + 1,
                                                                      len(leaves))
    return jax.tree.unflatten(treedef, [10.0 ** int(k) for k in exponents])


def reparameterise(fns: TaskFns, scales) -> TaskFns:
    """``fns`` over ``theta`` where the model's parameters are ``scales * theta``."""

    def model_params(theta):
        return jax.tree.map(lambda t, s: t * s, theta, scales)

    def init(key):
        return jax.tree.map(lambda w, s: w / s, fns.init(key), scales)

    def loss(theta, batch, key):
        return fns.loss(model_params(theta), batch, key)

    def test_metrics(theta):
        return fns.test_metrics(model_params(theta))

    return TaskFns(init, loss, fns.sample_batch, test_metrics, fns.normalizer)
