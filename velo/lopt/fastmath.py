"""`exp` of float32 arrays from multiplies, adds and bit operations only.

Why: the per-element pass of a stacked shape group (`groups.py`) is computed group-wide, then
sliced into its tensors. XLA fuses each slice's computation into its own loop (one per tensor)
by duplicating the group-wide producer into every slice, but it never duplicates an op it deems
expensive, such as ``exp``. With rule v1's magnitude ``exp(m)``, the per-parameter MLP then ran
twice per element of a stacked group: once in a group-wide loop that wrote the magnitudes to
memory, and again for the direction in each tensor's loop. Written with arithmetic only, the
whole pass fuses into one loop per tensor. It agrees with XLA's ``exp`` to about 1 ulp
(tests/test_fastmath.py) and costs the same on a single tensor.

The identity: exp(x) = 2**n * exp(r) with n = round(x / ln 2) and r = x - n ln 2, where ln 2 is
split into a high part with few significant bits (so n times it is exact) and a low part (Cody
and Waite, "Software Manual for the Elementary Functions", 1980); exp(r) is its Taylor series
to degree 7, whose relative error on |r| <= ln(2) / 2 is below 1e-8; 2**n is written into the
exponent bits.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

# ln 2 = _LN2_HIGH + _LN2_LOW; _LN2_HIGH has 16 significant bits, so n * _LN2_HIGH is exact.
_LN2_HIGH = 0.693145751953125
_LN2_LOW = 1.428606765330187e-06
_TAYLOR_DEGREE = 7
# The range whose powers of two the float32 exponent bits hold (no denormals, no overflow).
_MIN_ARG, _MAX_ARG = -87.0, 88.0


def exp(x: jax.Array) -> jax.Array:
    """exp(x) of float32 ``x`` clamped to [-87, 88] (so ~1.6e-38 below, not 0)."""
    x = jnp.clip(x, _MIN_ARG, _MAX_ARG)
    n = jnp.round(x * (1.0 / math.log(2.0)))
    r = (x - n * _LN2_HIGH) - n * _LN2_LOW
    series = 1.0 / math.factorial(_TAYLOR_DEGREE)
    for k in range(_TAYLOR_DEGREE - 1, -1, -1):
        series = series * r + 1.0 / math.factorial(k)
    power_of_two = jax.lax.bitcast_convert_type((n.astype(jnp.int32) + 127) << 23, jnp.float32)
    return series * power_of_two
