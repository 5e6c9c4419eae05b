"""`velo.lopt.fastmath.exp` against float64 exp."""

import jax.numpy as jnp
import numpy as np

from velo.lopt import fastmath

ULP = 2.0**-23


def test_exp_agrees_with_float64_to_about_one_ulp():
    x = np.linspace(-87.0, 88.0, 1_000_001, dtype=np.float32)
    got = np.asarray(fastmath.exp(jnp.asarray(x)), np.float64)
    relative = np.abs(got / np.exp(x.astype(np.float64)) - 1.0)
    assert relative.max() < 1.5 * ULP
    assert np.all(got[1:] >= got[:-1])  # monotone, no jumps where n changes


def test_exp_special_values():
    x = jnp.asarray([0.0, 1.0, -1000.0, 1000.0, np.nan, -np.inf], jnp.float32)
    got = np.asarray(fastmath.exp(x))
    assert got[0] == 1.0
    assert got[1] == np.float32(np.e)
    np.testing.assert_allclose(got[[2, 5]], np.exp(np.float32(-87.0)), rtol=2 * ULP)  # clamped
    np.testing.assert_allclose(got[3], np.exp(np.float32(88.0)), rtol=2 * ULP)
    assert np.isnan(got[4])
