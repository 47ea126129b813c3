import json

import pytest
import torch

from dgss.backbone.loading import load_backbone
from dgss.errors import ModelError


def test_load_model_folder(extract_backbone, extract_model_dir):
    assert extract_backbone.num_train_timesteps == 1000
    assert extract_backbone.prediction_type == "epsilon"
    assert extract_backbone.sample_size == 32
    assert extract_backbone.name == str(extract_model_dir)
    assert len(extract_backbone.digest) == 64
    assert not extract_backbone.network.training
    assert not any(p.requires_grad for p in extract_backbone.network.parameters())


def test_load_pipeline_folder(extract_x0_backbone, extract_backbone):
    assert extract_x0_backbone.prediction_type == "sample"
    # same weights, another schedule: the digest differs (the schedule changes ddim/noised features)
    assert extract_x0_backbone.digest != extract_backbone.digest


def test_digest_is_stable_and_follows_weights(extract_model_dir, extract_backbone):
    again = load_backbone(extract_model_dir)
    assert again.digest == extract_backbone.digest
    with torch.no_grad():
        again.network.conv_out.bias.add_(1.0)
    from dgss.backbone.loading import _digest

    assert _digest(again.network, again.scheduler_config) != extract_backbone.digest


def test_missing_path(tmp_path):
    with pytest.raises(ModelError, match="does not exist; expected a diffusers folder with config.json") as info:
        load_backbone(tmp_path / "nowhere")
    assert "\n" not in str(info.value)


def test_not_a_diffusers_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelError, match="is not a diffusers model") as info:
        load_backbone(tmp_path)
    assert "\n" not in str(info.value)


def test_other_model_class(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    with pytest.raises(ModelError, match="'AutoencoderKL', not a UNet2DModel"):
        load_backbone(tmp_path)


def test_missing_weights(tmp_path, extract_model_dir):
    (tmp_path / "config.json").write_text((extract_model_dir / "config.json").read_text())
    with pytest.raises(ModelError, match="cannot load the UNet weights") as info:
        load_backbone(tmp_path)
    assert "\n" not in str(info.value)


def test_broken_config_json(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="config.json is not valid JSON"):
        load_backbone(tmp_path)
