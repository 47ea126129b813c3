"""Appearance matching: FOV statistics moved to the target, saved with a trained backbone, keyed in extraction."""

import shutil

import numpy as np
import pytest
from PIL import Image

from dgss.backbone.appearance import AppearanceMeter, AppearanceTarget, load_appearance, match_appearance, save_appearance
from dgss.backbone.loading import load_backbone
from dgss.datasets import get_dataset
from dgss.extract.extractor import FeatureExtractor, make_config

TARGET = AppearanceTarget(mean=(130.0, 90.0, 50.0), std=(30.0, 20.0, 15.0))


@pytest.fixture(scope="module")
def sample():
    return get_dataset("SYNTH-C-4x64").read("synthC_000")


def test_matched_image_has_the_target_statistics_inside_the_fov(sample):
    matched = match_appearance(sample.image, sample.fov, TARGET)
    pixels = matched[sample.fov].astype(float)
    assert np.allclose(pixels.mean(axis=0), TARGET.mean, atol=1.5)
    assert np.allclose(pixels.std(axis=0), TARGET.std, atol=1.5)
    assert np.array_equal(matched[~sample.fov], sample.image[~sample.fov])


def test_two_domains_end_up_closer_after_matching():
    a, c = (get_dataset(name).read(get_dataset(name).ids()[0]) for name in ("SYNTH-A-4x64", "SYNTH-C-4x64"))

    def gap(first, second):
        return np.abs(first.image[first.fov].mean(0) - second.image[second.fov].mean(0)).sum()

    before = gap(a, c)
    a_matched = type(a)(a.id, match_appearance(a.image, a.fov, TARGET), a.vessel, a.fov, a.split)
    c_matched = type(c)(c.id, match_appearance(c.image, c.fov, TARGET), c.vessel, c.fov, c.split)
    assert gap(a_matched, c_matched) < before / 10


def test_meter_averages_per_image_statistics(sample):
    meter = AppearanceMeter()
    assert meter.target() is None
    meter.add(sample.image, sample.fov)
    meter.add(sample.image, sample.fov)
    target = meter.target()
    assert np.allclose(target.mean, sample.image[sample.fov].mean(axis=0))
    assert AppearanceTarget.from_dict(target.to_dict()).mean == pytest.approx(target.mean, abs=1e-3)


def test_a_saved_target_is_loaded_with_the_backbone_and_changes_the_key(extract_model_dir, tmp_path, sample):
    plain = load_backbone(extract_model_dir)
    assert plain.appearance is None and make_config(plain).appearance is None
    folder = tmp_path / "model"
    shutil.copytree(extract_model_dir, folder)
    save_appearance(folder, TARGET)
    assert load_appearance(folder) == TARGET
    matched = load_backbone(folder)
    config = make_config(matched)
    assert config.appearance == TARGET.to_dict() and config.key() != make_config(plain).key()
    assert make_config(matched, appearance="none").key() == make_config(plain).key()
    image = np.asarray(Image.fromarray(sample.image).resize((32, 32)))
    fov = np.ones((32, 32), bool)
    with_target = FeatureExtractor(matched, config).feature_maps(image, fov)
    without = FeatureExtractor(matched, make_config(matched, appearance="none")).feature_maps(image, fov)
    assert any(not np.array_equal(with_target[name], without[name]) for name in with_target)


def test_a_model_without_a_target_warns_and_takes_one_from_a_file(extract_model_dir, tmp_path, caplog):
    """A model not trained by dgss used to skip appearance matching without a word."""
    import logging

    from dgss.errors import ModelError

    plain = load_backbone(extract_model_dir)
    with caplog.at_level(logging.WARNING, logger="dgss"):
        default = make_config(plain)
    assert default.appearance is None and "has no appearance target" in caplog.text
    assert "--appearance FILE" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dgss"):
        assert make_config(plain, appearance="none").key() == default.key()  # the key of the same numbers
    assert not caplog.records
    folder = tmp_path / "shipped-like"
    folder.mkdir()
    save_appearance(folder, TARGET)
    for given in (folder, folder / "dgss_appearance.json"):
        config = make_config(plain, appearance=str(given))
        assert config.appearance == TARGET.to_dict() and config.key() != default.key()
    with pytest.raises(ModelError, match="--appearance .*no file"):
        make_config(plain, appearance=str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="is not an appearance target"):
        make_config(plain, appearance=str(tmp_path / "bad.json"))
