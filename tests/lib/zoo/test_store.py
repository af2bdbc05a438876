"""lib.zoo.store: every file of an organism hashed, the parent chain verified, artifacts."""

import json
import re
import shutil

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from lib import zoo
from lib.zoo import store

NAMES = list(zoo.ORGANISMS)


def organism_files(name: str) -> list[str]:
    folder = zoo.ORGANISMS_DIR / name
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def root(tmp_path):
    """A copy of the zoo to tamper with."""
    for name in NAMES:
        shutil.copytree(zoo.ORGANISMS_DIR / name, tmp_path / name)
    return tmp_path


def flip_byte(path, index=-2):
    raw = bytearray(path.read_bytes())
    raw[index] ^= 0x01
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("name", NAMES)
def test_every_file_is_hashed_in_the_manifest(name):
    """The manifest lists every file of the folder but itself and its own hash, with sha256s that
    hold; manifest.sha256 holds the manifest's."""
    meta = zoo.verify(name)
    folder = zoo.ORGANISMS_DIR / name
    assert sorted(meta["files"]) == [
        f for f in organism_files(name) if f not in ("manifest.json", "manifest.sha256")
    ]
    assert {"model.safetensors", "tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json"} <= set(
        meta["files"]
    )
    for relative, digest in meta["files"].items():
        assert zoo.sha256(folder / relative) == digest
    assert (folder / "manifest.sha256").read_text().strip() == zoo.sha256(folder / "manifest.json")


@pytest.mark.parametrize("name", NAMES)
def test_load_gives_a_working_model(name):
    meta = zoo.manifest(name)
    model = zoo.load(name)
    tokens = torch.zeros(1, 5, dtype=torch.long)
    assert model(tokens).shape == (1, 5, meta["config"]["d_vocab"])
    assert model.to_tokens("x", prepend_bos=True)[0, 0].item() == model.tokenizer.bos_token_id


@pytest.mark.parametrize("name", NAMES)
def test_loading_keeps_the_trained_function(name):
    """Folding and centring the weights on load changes no prediction: the loaded model's
    log-probabilities are those of the raw trained weights (softmax1 keeps its value biases, which
    fold into the output bias only where pattern rows sum to 1)."""
    meta = zoo.manifest(name)
    raw = HookedTransformer(HookedTransformerConfig(**meta["config"])).eval()
    raw.load_state_dict(zoo.state_dict(name))
    tokens = torch.randint(0, meta["config"]["d_vocab"], (4, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = raw(tokens).log_softmax(-1), zoo.load(name)(tokens).log_softmax(-1)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_a_log_is_extended_only_by_a_retrain_that_followed_it(root):
    """extend_log adds metrics from a retrain whose log equals the recorded one on every metric the
    recorded log holds, keeps the weights and re-hashes the manifest; any other log is refused."""
    meta = zoo.manifest("induction-2l", root)
    weights = meta["files"]["model.safetensors"]
    extended = [{**entry, "extra": float(entry["step"])} for entry in meta["training_log"]]
    for bad in (extended[:-1], [{**extended[0], "loss": extended[0]["loss"] + 1e-6}, *extended[1:]]):
        with pytest.raises(ValueError, match="does not extend the recorded one"):
            store.extend_log("induction-2l", bad, "bad", root)
    assert zoo.verify("induction-2l", root) == meta
    store.extend_log("induction-2l", extended, "retrained with an extra metric", root)
    meta = zoo.verify("induction-2l", root)
    assert meta["training_log"] == extended and meta["final_metrics"] == extended[-1]
    assert meta["training_log_note"] == "retrained with an extra metric"
    assert meta["files"]["model.safetensors"] == weights


@pytest.mark.parametrize("relative", [f"{name}/{f}" for name in NAMES for f in organism_files(name)])
def test_a_flipped_byte_in_any_file_is_refused_naming_the_file(root, relative):
    """Weights, tokenizer, manifest, its hash: one changed byte anywhere and loading fails with a
    message naming that file (tokenizer_config.json once changed 13 of 19 glued numbers silently)."""
    name, _ = relative.split("/", 1)
    flip_byte(root / relative)
    with pytest.raises(ValueError, match=re.escape(str(root / relative))):
        zoo.load(name, root=root)


def test_missing_and_unexpected_files_are_named(root):
    (root / "induction-2l" / "tokenizer" / "tokenizer_config.json").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"tokenizer_config.json is missing; .*python -m lib.zoo train induction-2l"
    ):
        zoo.load("induction-2l", root=root)
    (root / "language-4l" / "tokenizer" / "added_tokens.json").write_text("{}")
    with pytest.raises(ValueError, match=r"added_tokens.json is not in the manifest of 'language-4l'"):
        zoo.load("language-4l", root=root)
    (root / "language-4l" / "manifest.sha256").unlink()
    with pytest.raises(FileNotFoundError, match="manifest.sha256 is missing"):
        zoo.manifest("language-4l", root=root)


def test_unknown_names_list_the_zoo(tmp_path):
    with pytest.raises(
        ValueError,
        match="'nope' is not a zoo organism; the zoo has: induction-2l, induction-2l-softmax1, language-4l",
    ):
        zoo.manifest("nope")
    with pytest.raises(ValueError, match="the zoo has"):
        zoo.recipe("nope")


def test_artifacts_are_stored_hashed_and_verified(root):
    path = zoo.add_artifact(
        "induction-2l", "saes/demo.json", lambda p: p.write_text('{"k": 1}'), "a demo artifact", root=root
    )
    assert path == root / "induction-2l" / "artifacts" / "saes" / "demo.json"
    meta = zoo.verify("induction-2l", root)
    assert meta["artifacts"] == {"artifacts/saes/demo.json": "a demo artifact"}
    assert meta["files"]["artifacts/saes/demo.json"] == zoo.sha256(path)
    assert zoo.artifact("induction-2l", "saes/demo.json", root) == path
    assert not list(path.parent.glob(".*")), "no temporary file left behind"
    flip_byte(path)
    with pytest.raises(ValueError, match=r"demo.json is corrupted"):
        zoo.artifact("induction-2l", "saes/demo.json", root)
    with pytest.raises(FileNotFoundError, match="has no artifact 'other'"):
        zoo.artifact("language-4l", "other", root)


def test_a_folder_artifact_is_hashed_file_by_file_and_replaced_whole(root):
    def fill(weights: bytes):
        def write(path):
            path.mkdir()
            (path / "cfg.json").write_text("{}")
            (path / "weights.bin").write_bytes(weights)

        return write

    path = zoo.add_artifact("induction-2l", "saes/one", fill(b"old"), "an SAE", root=root)
    zoo.add_artifact("induction-2l", "saes/one", fill(b"new"), "an SAE", root=root)
    assert (path / "weights.bin").read_bytes() == b"new" and not list(path.parent.glob(".*"))
    meta = zoo.verify("induction-2l", root)
    assert {f for f in meta["files"] if f.startswith("artifacts/")} == {
        "artifacts/saes/one/cfg.json",
        "artifacts/saes/one/weights.bin",
    }
    assert zoo.artifact("induction-2l", "saes/one", root) == path


def test_a_failed_artifact_writes_nothing(root):
    def fail(path):
        path.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        zoo.add_artifact("induction-2l", "x.json", fail, "never", root=root)
    assert not (root / "induction-2l" / "artifacts").exists() or not any(
        (root / "induction-2l" / "artifacts").iterdir()
    )
    assert "artifacts" not in zoo.verify("induction-2l", root)


def test_parent_chain_is_verified(root):
    """A child records its parent's weight hash; loading the child verifies the parent's folder
    and that its weights are still the ones the child was fine-tuned from."""
    child = root / "child"
    shutil.copytree(root / "induction-2l", child)
    meta = json.loads((child / "manifest.json").read_text())
    meta.update(name="child", parent={"name": "induction-2l", "sha256": meta["files"]["model.safetensors"]})
    store._write_manifest(child, meta)
    assert zoo.load("child", root=root).cfg.n_layers == 2
    shutil.copy(root / "language-4l" / "model.safetensors", root / "induction-2l" / "model.safetensors")
    with pytest.raises(ValueError, match=r"induction-2l/model.safetensors is corrupted"):
        zoo.load("child", root=root)
    store._write_manifest(
        root / "induction-2l", zoo.manifest("induction-2l", root)
    )  # re-hash the swapped parent
    with pytest.raises(
        ValueError, match=r"\(the parent of 'child'\) has sha256 .* not the .* that 'child' was fine-tuned"
    ):
        zoo.load("child", root=root)
