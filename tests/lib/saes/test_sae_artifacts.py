"""lib.saes.artifacts: the stored SAEs load and match their records, and SAEs for real models
load from a folder SAELens saved, refused unless they read the residual stream."""

import json

import pytest
import torch
from offline_hf import D_MODEL, save_random_sae

from lib.saes import artifacts


def test_every_stored_sae_loads_with_its_recorded_spec():
    records = {row["name"]: row for row in artifacts.sweep()}
    assert set(records) == {spec.name for spec in artifacts.STORED}
    for spec in artifacts.STORED:
        sae = artifacts.load(spec.name)
        assert sae.cfg.d_sae == spec.d_sae == records[spec.name]["d_sae"]
        assert records[spec.name]["hook"] == f"blocks.{artifacts.LAYER}.hook_resid_pre"
    assert artifacts.record("topk-1024-k20-noaux-resample")["resample_at"] == [250, 500, 750]
    with pytest.raises(ValueError, match="no stored SAE 'topk-3-k1'"):
        artifacts.load("topk-3-k1")


def test_load_pretrained_reads_a_saved_folder_and_its_layer(tmp_path):
    folder = save_random_sae(tmp_path / "sae", layer=1)
    sae, layer = artifacts.load_pretrained("", str(folder))
    assert layer == 1 and sae.cfg.d_in == D_MODEL
    x = torch.randn(3, D_MODEL)
    assert ((sae.encode(x) > 0).sum(-1) <= sae.cfg.k).all()
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["metadata"]["hook_name"] = "blocks.1.hook_mlp_out"
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="reads 'blocks.1.hook_mlp_out'"):
        artifacts.load_pretrained("", str(folder))
