"""An organism's folder on disk: its manifest, every file hashed, the parent chain, artifacts.

``lib/organisms/<name>/`` holds ``model.safetensors``, ``tokenizer/`` (saved to disk, since
TransformerLens reloads tokenizers by path), ``artifacts/`` (what belongs to the organism: SAEs
trained on it, recorded RL runs, masks) and ``manifest.json``: config, data recipe, seed, steps,
training log, final metrics, the parent's weight hash for a fine-tuned organism, a description
of each artifact, and the sha256 of every other file of the folder. ``manifest.sha256`` holds
the manifest's own sha256. Loading verifies all of it, the parent's folder included, and names
the file that is missing, unexpected or changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformers import AutoTokenizer

from lib.zoo.registry import ORGANISMS, unknown

ORGANISMS_DIR = Path(__file__).resolve().parent.parent / "organisms"
MANIFEST, MANIFEST_HASH, WEIGHTS = "manifest.json", "manifest.sha256", "model.safetensors"
ARTIFACTS = "artifacts"


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _hint(name: str, folder: Path) -> str:
    return f"restore it from git (git checkout -- {folder}) or retrain with: python -m lib.zoo train {name}"


def _check_file(name: str, folder: Path, relative: str, want: str) -> None:
    path = folder / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; {_hint(name, folder)}")
    digest = sha256(path)
    if digest != want:
        raise ValueError(
            f"{path} is corrupted: sha256 {digest[:12]}... does not match the manifest's {want[:12]}...; "
            + _hint(name, folder)
        )


def _files(folder: Path) -> list[str]:
    """Every file of an organism's folder but the manifest and its hash, as relative paths."""
    found = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return sorted(f for f in found if f not in (MANIFEST, MANIFEST_HASH))


def manifest(name: str, root: Path = ORGANISMS_DIR) -> dict:
    """The manifest of a trained organism, checked against ``manifest.sha256`` (its files are
    checked by :func:`verify`)."""
    folder = root / name
    if not (folder / MANIFEST).exists() and name not in ORGANISMS:
        raise unknown(name)
    hash_file = folder / MANIFEST_HASH
    if not hash_file.is_file():
        raise FileNotFoundError(f"{hash_file} is missing; {_hint(name, folder)}")
    path, want = folder / MANIFEST, hash_file.read_text().strip()
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; {_hint(name, folder)}")
    digest = sha256(path)
    if digest != want:
        raise ValueError(
            f"{path} is corrupted: sha256 {digest[:12]}... is not the {want[:12]}... recorded in "
            f"{hash_file}; {_hint(name, folder)}"
        )
    return json.loads(path.read_text())


def verify(name: str, root: Path = ORGANISMS_DIR) -> dict:
    """Check every file of the organism against its manifest, refuse files the manifest does not
    list, and verify the parent chain; returns the manifest."""
    meta = manifest(name, root)
    folder = root / name
    for relative, digest in meta["files"].items():
        _check_file(name, folder, relative, digest)
    extra = sorted(set(_files(folder)) - set(meta["files"]))
    if extra:
        raise ValueError(
            f"{folder / extra[0]} is not in the manifest of {name!r}; remove it ({_hint(name, folder)})"
        )
    parent = meta.get("parent")
    if parent is not None:
        recorded, current = parent["sha256"], verify(parent["name"], root)["files"][WEIGHTS]
        if current != recorded:
            raise ValueError(
                f"{root / parent['name'] / WEIGHTS} (the parent of {name!r}) has sha256 {current[:12]}..., "
                f"not the {recorded[:12]}... that {name!r} was fine-tuned from; "
                f"retrain it with: python -m lib.zoo train {name}"
            )
    return meta


def state_dict(name: str, root: Path = ORGANISMS_DIR) -> dict[str, torch.Tensor]:
    """The organism's verified weights as trained (nothing folded): what a child fine-tunes."""
    verify(name, root)
    return load_file(root / name / WEIGHTS)


def load(
    name: str,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    root: Path = ORGANISMS_DIR,
    processed: bool = True,
) -> HookedTransformer:
    """Load a trained organism after :func:`verify`.

    LayerNorm weights are folded and writing weights centred, as ``from_pretrained`` does for
    real models, so analyses see the same kind of model either way. Value biases are folded into
    the output bias too, except under an attention with an extra logit (``use_attention_sinks``),
    whose pattern rows sum to less than 1, so that a head's value bias moves only as much as the
    head attends. ``processed=False`` loads the weights as trained, nothing folded (what RL
    fine-tunes, as ``from_pretrained_no_processing`` gives a real model).
    """
    meta = verify(name, root)
    folder = root / name
    tok = AutoTokenizer.from_pretrained(folder / "tokenizer")
    cfg = HookedTransformerConfig(**meta["config"], device=str(device), dtype=dtype)
    model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
    model.load_and_process_state_dict(
        load_file(folder / WEIGHTS),
        fold_ln=processed,
        center_writing_weights=processed,
        center_unembed=processed,
        # the value biases fold into the output bias only where pattern rows sum to 1
        fold_value_biases=processed and not cfg.use_attention_sinks,
    )
    return model.to(device, print_details=False).eval()


def _write_manifest(folder: Path, meta: dict) -> None:
    meta["files"] = {relative: sha256(folder / relative) for relative in _files(folder)}
    (folder / MANIFEST).write_text(json.dumps(meta, indent=1) + "\n")
    (folder / MANIFEST_HASH).write_text(sha256(folder / MANIFEST) + "\n")


def write(name: str, fill: Callable[[Path], dict], root: Path = ORGANISMS_DIR) -> Path:
    """Write an organism's folder atomically: ``fill(folder)`` writes the weights and tokenizer
    into a temporary folder and returns the manifest; the hashes are added and the folder is
    renamed into place (an older folder of that name is replaced only then)."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}-"))
    try:
        tmp.chmod(0o755)
        _write_manifest(tmp, fill(tmp))
        dest = root / name
        if dest.exists():
            old = root / f".{name}-old"
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


def extend_log(name: str, log: list[dict[str, float]], note: str, root: Path = ORGANISMS_DIR) -> None:
    """Replace the training log and final metrics of a verified organism with ``log``, recorded by
    retraining its recipe with more metrics, and say so in the manifest's ``training_log_note``.
    Refused unless the retrain followed the recorded trajectory: the same steps, and every metric
    the recorded log holds equal at every step. The weights and every other file stay as they are."""
    meta = verify(name, root)
    recorded = meta["training_log"]
    differ = [
        (old["step"], key)
        for old, new in zip(recorded, log)
        for key, value in old.items()
        if new.get(key) != value
    ]
    if len(log) != len(recorded) or differ:
        raise ValueError(
            f"the new log of {name!r} does not extend the recorded one: {len(log)} entries for "
            f"{len(recorded)}, first (step, metric) that differs: {differ[:1]}"
        )
    meta.update(training_log=log, final_metrics=log[-1], training_log_note=note)
    _write_manifest(root / name, meta)


def add_artifact(
    name: str, relative: str, fill: Callable[[Path], None], description: str, root: Path = ORGANISMS_DIR
) -> Path:
    """Store an artifact of a verified organism at ``artifacts/<relative>``: ``fill(path)``
    writes it (a file or a folder) to a temporary path, which replaces any older artifact of
    that name only then; the manifest records its description and the hash of every file."""
    meta = verify(name, root)
    path = root / name / ARTIFACTS / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fill(tmp)
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp)
        tmp.unlink(missing_ok=True)
    meta.setdefault("artifacts", {})[f"{ARTIFACTS}/{relative}"] = description
    _write_manifest(root / name, meta)
    return path


def artifact(name: str, relative: str, root: Path = ORGANISMS_DIR) -> Path:
    """The path of a verified artifact of the organism (``artifacts/<relative>``)."""
    meta = verify(name, root)
    key = f"{ARTIFACTS}/{relative}"
    if key not in meta.get("artifacts", {}):
        raise FileNotFoundError(
            f"{name!r} has no artifact {relative!r}; it has: {', '.join(meta.get('artifacts', {}))}"
        )
    return root / name / key
