"""lib.zoo.training: reproducible training, fine-tuning from a parent, the written folder."""

import dataclasses
import shutil

import pytest

from lib import zoo

NAMES = list(zoo.ORGANISMS)
# In CI, one organism trained from scratch and one fine-tuned from a parent; the rest are slow.
PREFIX_CASES = [
    name if name in ("induction-2l", "chat-4l") else pytest.param(name, marks=pytest.mark.slow)
    for name in NAMES
]


@pytest.mark.parametrize("name", PREFIX_CASES)
def test_training_prefix_reproduces_the_recorded_log(name):
    """The first steps of the recipe, retrained here, give the losses and metrics the manifest
    recorded for the committed weights."""
    recorded = zoo.manifest(name)["training_log"]
    prefix = recorded[2]["step"]
    _, log = zoo.train(name, steps=prefix, progress=False)
    assert [e["step"] for e in log] == [e["step"] for e in recorded[:3]]
    # the truncated run's last entry is logged before that step's update (there is none), so only
    # its training loss, computed before the update in both runs, is comparable
    for got, want in zip(log, recorded[:2]):
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-5), (got["step"], key)
    assert log[2]["loss"] == pytest.approx(recorded[2]["loss"], rel=1e-4, abs=1e-5)


def test_a_fine_tuned_child_starts_from_its_parent_and_records_it(tmp_path):
    """A recipe naming a parent trains from the parent's weights (step 0's loss is the parent's
    loss on that batch, not a fresh model's), and its manifest records the parent's weight hash."""
    shutil.copytree(zoo.ORGANISMS_DIR / "induction-2l", tmp_path / "induction-2l")
    parent = zoo.recipe("induction-2l")
    child = dataclasses.replace(parent, name="child-2l", parent="induction-2l", steps=3, log_every=1, lr=1e-4)
    dest = zoo.train_and_save(child, root=tmp_path, progress=False)
    meta = zoo.verify("child-2l", tmp_path)
    assert dest == tmp_path / "child-2l" and meta["parent"] == {
        "name": "induction-2l",
        "sha256": zoo.manifest("induction-2l")["files"]["model.safetensors"],
    }
    fresh_loss = zoo.manifest("induction-2l")["training_log"][0]["loss"]  # the parent's own step 0
    trained_loss = zoo.manifest("induction-2l")["final_metrics"]["loss"]
    assert meta["training_log"][0]["loss"] < 0.5 * fresh_loss, (
        meta["training_log"][0],
        fresh_loss,
        trained_loss,
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folder left behind"


def test_a_child_with_another_config_is_refused(tmp_path):
    shutil.copytree(zoo.ORGANISMS_DIR / "induction-2l", tmp_path / "induction-2l")
    recipe = zoo.recipe("induction-2l")
    child = dataclasses.replace(
        recipe, name="wide", parent="induction-2l", config={**recipe.config, "d_model": 32}
    )
    with pytest.raises(ValueError, match="its config must be the parent's"):
        zoo.train_and_save(child, root=tmp_path, progress=False)
    assert not list(p for p in tmp_path.iterdir() if p.name != "induction-2l")


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_full_retraining_reproduces_the_committed_weights(name):
    """Slow (minutes): retrain in full; the final metrics equal the recorded ones."""
    _, log = zoo.train(name, progress=False)
    for key, value in zoo.manifest(name)["final_metrics"].items():
        assert log[-1][key] == pytest.approx(value, rel=1e-3, abs=1e-4), key
