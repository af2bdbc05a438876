"""The model zoo: reproducible training, hash-checked loading."""

import shutil

import pytest
import torch

from lib import zoo

NAMES = list(zoo.RECIPES)


@pytest.mark.parametrize("name", NAMES)
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


@pytest.mark.parametrize("name", NAMES)
def test_load_checks_the_hash_and_gives_a_working_model(name):
    meta = zoo.manifest(name)
    model = zoo.load(name)
    tokens = torch.zeros(1, 5, dtype=torch.long)
    assert model(tokens).shape == (1, 5, meta["config"]["d_vocab"])
    assert model.tokenizer.bos_token_id is not None
    assert model.to_tokens("x", prepend_bos=True)[0, 0].item() == model.tokenizer.bos_token_id


def test_corrupted_weights_are_refused(tmp_path):
    shutil.copytree(zoo.ORGANISMS_DIR / "induction-2l", tmp_path / "induction-2l")
    weights = tmp_path / "induction-2l" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupted: sha256 .* does not match the manifest"):
        zoo.load("induction-2l", root=tmp_path)


def test_missing_files_and_unknown_names_are_refused(tmp_path):
    shutil.copytree(zoo.ORGANISMS_DIR / "induction-2l", tmp_path / "induction-2l")
    (tmp_path / "induction-2l" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="python -m lib.zoo train induction-2l"):
        zoo.load("induction-2l", root=tmp_path)
    with pytest.raises(KeyError, match="the zoo has: induction-2l"):
        zoo.manifest("nope")


def test_word_tokenizer_prepends_bos_and_round_trips(tmp_path):
    tok = zoo.word_tokenizer(["a", "b", "<bos>", "<unk>", "<pad>"], tmp_path / "tok")
    assert tok("a b a")["input_ids"] == [2, 0, 1, 0]
    assert tok.decode([0, 1], skip_special_tokens=True) == "a b"
    assert tok("zzz")["input_ids"] == [2, 3]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_full_retraining_reproduces_the_committed_weights(name):
    """Slow (minutes): retrain in full; the final metrics equal the recorded ones."""
    _, log = zoo.train(name, progress=False)
    for key, value in zoo.manifest(name)["final_metrics"].items():
        assert log[-1][key] == pytest.approx(value, rel=1e-3, abs=1e-4), key
