"""`velo.guard.all_finite`: the finiteness test every optimizer's step guard relies on."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from velo.guard import all_finite


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("bad", [None, jnp.nan, jnp.inf, -jnp.inf])
def test_all_finite_flags_exactly_the_non_finite_trees(dtype, bad):
    # Finite values near the dtype's maximum: their sum overflows, the test must not.
    big = jnp.full((64, 33), jnp.finfo(dtype).max, dtype)
    float0 = np.zeros((2,), jax.dtypes.float0)  # the gradient of an integer leaf
    tree = {"w": big, "b": jnp.arange(5, dtype=dtype), "step": jnp.int32(3), "n": float0}
    if bad is not None:
        tree["w"] = tree["w"].at[63, 32].set(bad)
    assert bool(all_finite(tree)) is (bad is None)
    assert bool(all_finite({})) is True
    assert bool(all_finite(np.float32(bad if bad is not None else 1.0))) is (bad is None)
