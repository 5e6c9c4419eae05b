"""Loss-curve arithmetic behind VeLO's speed-up metric: smoothing, lower envelope, steps to reach.

A curve is a ``[T]`` array of training losses; entry ``i`` is the loss measured at step ``i + 1``
of the run. Non-finite entries (a diverged run) count as an infinitely high loss.
"""

from __future__ import annotations

import numpy as np


def ema(curves: np.ndarray, decay: float) -> np.ndarray:
    """Bias-corrected exponential moving average along the last axis.

    ``m_t = decay * m_{t-1} + (1 - decay) * x_t``, ``m_0 = 0``, ``s_t = m_t / (1 - decay^t)``: the
    first smoothed value is the first loss (not pulled towards zero), and NaN stays NaN from where
    it appears.

    Args:
      curves: ``[..., T]`` losses.
      decay: in ``[0, 1)``; VeLO uses 0.95.

    Returns:
      ``[..., T]`` float64 smoothed losses.
    """
    x = np.asarray(curves, np.float64)
    out = np.empty_like(x)
    m = np.zeros(x.shape[:-1])
    for t in range(x.shape[-1]):
        m = decay * m + (1.0 - decay) * x[..., t]
        out[..., t] = m / (1.0 - decay ** (t + 1))
    return out


def monotone_envelope(curves: np.ndarray) -> np.ndarray:
    """The best loss reached by any of ``curves`` at or before each step.

    Args:
      curves: ``[K, T]`` (or ``[T]``) losses, typically EMA-smoothed runs at K learning rates.

    Returns:
      ``[T]`` non-increasing curve: the running minimum of the pointwise minimum over the K runs.
    """
    x = np.atleast_2d(np.asarray(curves, np.float64))
    x = np.where(np.isfinite(x), x, np.inf)
    return np.minimum.accumulate(x.min(axis=0))


def steps_to_reach(envelope: np.ndarray, target: float) -> float | None:
    """Fractional step at which a non-increasing ``envelope`` first gets down to ``target``.

    Between the integer steps the envelope is linear, so the answer is interpolated: an envelope
    going 4.0 -> 2.0 from step 3 to step 4 reaches 3.0 at step 3.5.

    Args:
      envelope: ``[T]`` non-increasing losses at steps ``1..T`` (see `monotone_envelope`).
      target: the loss to reach.

    Returns:
      A step in ``[1, T]``, or ``None`` if the envelope never gets to ``target`` (or it is NaN).
    """
    if not np.isfinite(target) or not envelope[-1] <= target:
        return None
    j = int(np.argmax(envelope <= target))  # first index at or below target
    if j == 0:
        return 1.0
    above, below = envelope[j - 1], envelope[j]
    if not np.isfinite(above):  # jump from a diverged start: no slope to interpolate on
        return float(j + 1)
    return float(j + (above - target) / (above - below))
