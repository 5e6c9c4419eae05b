"""Test set-up: 8 simulated CPU devices, so sharded code paths run in every test.

XLA_FLAGS must be set before JAX initialises its backend, hence at import of this file.
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _eight_devices():
    assert jax.device_count() == 8, "conftest must run before anything initialises JAX"
