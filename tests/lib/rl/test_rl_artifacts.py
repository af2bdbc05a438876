"""lib.rl.artifacts: the recorded sweep of the sorting organism. A prefix of a recorded run
reproduces its log step for step (runs are deterministic on one thread); stored final weights
give the recorded final accuracy; the stored masks are what their recipes make, each keeping its
fraction; every masked run kept its frozen weights bit-identical."""

import pytest
import torch

from lib.rl import artifacts as A
from lib.rl import masks as M
from lib.rl.rollout import exact_accuracy
from lib.rl.runs import eval_problems

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def stored():
    return A.load_runs(), A.load_masks()


@pytest.mark.parametrize("kind", ["full", "random-99-s0"])
def test_a_prefix_of_a_recorded_run_reproduces_its_log(stored, kind):
    runs, masks = stored
    lr = A.best(runs["runs"], kind)
    job = A.Job(kind, lr)
    record, _ = A.one_run(A.Setup(steps=6), job, masks.get(kind))
    recorded = runs["runs"][job.key]["log"]
    assert record["log"]["train"] == recorded["train"][:6]
    assert record["log"]["eval"][0] == recorded["eval"][0]


def test_stored_weights_give_the_recorded_accuracy(stored):
    runs, _ = stored
    key = A.Job("full", A.best(runs["runs"], "full")).key
    model = A.Setup().policy()
    state = A.load_state(key)  # the parameters (not the buffers)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(state[name])
    accuracy = exact_accuracy(model, A.organism_task(), eval_problems(512))
    assert abs(accuracy - runs["runs"][key]["log"]["eval"][-1]["accuracy"]) <= 2 / 512


def test_stored_masks_are_their_recipes(stored):
    runs, masks = stored
    start = A.Setup().policy()
    params = dict(start.named_parameters())
    assert set(masks) == set(A.MASKS)
    for name, (kind, keep, _) in A.MASKS.items():
        assert abs(M.kept_fraction(masks[name]) - keep) <= 0.05 * keep, name
        if kind in ("random", "magnitude"):
            remade = A.make_mask(name, start, A.organism_task())
            assert all(torch.equal(remade[n], masks[name][n]) for n in params), name
    fisher = A.make_mask("fisher-99", start, A.organism_task())  # float sums: ties at the cut may differ
    assert M.jaccard(fisher, masks["fisher-99"]) >= 0.98
    oracle_state = A.load_state(A.Job("full", A.best(runs["runs"], "full")).key)
    remade = A.make_mask("oracle-99", start, A.organism_task(), oracle_state)
    assert all(torch.equal(remade[n], masks["oracle-99"][n]) for n in params)


def test_every_masked_run_kept_its_frozen_weights(stored):
    runs, masks = stored
    masked = {k: r for k, r in runs["runs"].items() if r["job"]["kind"] in A.MASKS}
    assert len(masked) == 4 * len(A.SWEPT) + 2
    assert all(r["frozen_identical"] for r in masked.values())
    for r in masked.values():
        n = sum(m.sum().item() for m in masks[r["job"]["kind"]].values())
        assert r["state_bytes"] == 12 * n
