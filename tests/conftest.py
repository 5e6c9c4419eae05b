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


# The files that take longest (module fixtures that compile many programs, subprocess runs),
# started first: `make test` gives whole files to two workers (pytest-xdist), and a long file
# left for the end would run alone.
SLOW_FILES = (
    "test_meta_train_ops.py",
    "test_tasks.py",
    "test_lopt.py",
    "test_lopt_v2.py",
    "test_lopt_recorded.py",
    "test_meta_train.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file
