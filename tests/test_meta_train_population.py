"""Member initialisation (`population.init_members`): every member of a sharded population gets
exactly the state its own single run would, on the LSTM whose vmapped init once deadlocked."""

from __future__ import annotations

import jax
import numpy as np

from meta_train import population
from meta_train.devices import make_mesh
from meta_train.learner import lopt_learner
from tasks.build import make_task
from tasks.spec import TaskSpec
from velo.train import init_state

# The spec whose vmapped orthogonal init (a batched LAPACK QR) deadlocked XLA's CPU thread pool.
LSTM = TaskSpec("rnn", "english", {"cell": "lstm", "hidden": 32, "embed": 8, "seq": 16}, 8)


def test_each_member_gets_the_state_of_its_own_single_run():
    task = make_task(LSTM, "lstm")
    learner = lopt_learner("v2_tiny", ("hypernet/step",))
    mesh = make_mesh(2)
    base = learner.init(None)
    members = jax.tree.map(lambda x: np.stack([x + 0.1 * i for i in range(4)]), base)
    keys = jax.random.split(jax.random.key(7), 4)
    horizon = np.int32(300)
    states = population.init_members(task, learner, mesh)(members, horizon, keys)
    for i in range(4):
        member = jax.tree.map(lambda x, i=i: x[i], members)
        alone = init_state(task, learner.optimizer(member, horizon), keys[i])
        for got, want in zip(jax.tree.leaves(jax.tree.map(lambda x, i=i: x[i], states)),
                             jax.tree.leaves(alone), strict=True):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-7)
    # Different keys give different initial weights (the members are not one copy).
    assert any(not np.allclose(np.asarray(x[0]), np.asarray(x[1]))
               for x in jax.tree.leaves(states.params))
