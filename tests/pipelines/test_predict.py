"""`dgss predict`: new image files -> probability, mask and overlay at their native size, with the run's backbone."""

import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import tifffile
import pytest
from PIL import Image

from dgss.aggregate.evaluation import predict_native
from dgss.aggregate.metrics import vessel_metrics
from dgss.aggregate.run import load_run
from dgss.aggregate.training import HeadTrainingConfig, fit_head
from dgss.datasets import derive_fov, get_dataset
from dgss.errors import DgssError, ModelError
from dgss.pipelines import predict as predict_module
from dgss.pipelines.cli import main
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.pipelines.predict import predict_images
from dgss.store import FeatureStore

DATASET = "SYNTH-A-4x64"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, extract_model_dir):
    root = tmp_path_factory.mktemp("predict")
    run_extraction(ExtractionRequest(dataset=DATASET, store=root / "f.zarr", model=str(extract_model_dir), timesteps=(10,)))
    config = HeadTrainingConfig(head="tsfreqagg", head_params={"width": 8}, epochs=1)
    return fit_head(root / "f.zarr", [DATASET], root / "run", config)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A synthetic fundus photo written as a non-square JPEG, as a user's camera would give it."""
    image = get_dataset("SYNTH-B-4x64").read("synthB_000").image
    path = tmp_path_factory.mktemp("photos") / "patient.7.jpg"
    Image.fromarray(np.pad(image, ((0, 0), (10, 6), (0, 0)))).save(path)
    return path


def test_predict_writes_native_size_probability_mask_and_overlay(trained_run, photo, tmp_path):
    (written,) = predict_images(trained_run, [photo], tmp_path / "out")
    assert written.mask.name == "patient.7_mask.png"
    native = Image.open(photo).size
    for path in (written.probability, written.mask, written.overlay):
        assert Image.open(path).size == native
    assert set(np.unique(np.asarray(Image.open(written.mask)))) <= {0, 255}


def test_predict_is_deterministic(trained_run, photo, tmp_path):
    first = predict_images(trained_run, [photo], tmp_path / "a")[0]
    second = predict_images(trained_run, [photo], tmp_path / "b")[0]
    assert Image.open(first.probability).tobytes() == Image.open(second.probability).tobytes()


def test_another_backbone_is_refused(trained_run, photo, tmp_path, extract_model_dir):
    other = tmp_path / "other"
    shutil.copytree(extract_model_dir, other)
    (other / "scheduler_config.json").write_text((other / "scheduler_config.json").read_text().replace("1000", "999"))
    with pytest.raises(ModelError, match="is not the one run"):
        predict_images(trained_run, [photo], tmp_path / "out", model=str(other))


def _old_run(trained_run: Path, folder: Path) -> Path:
    """A copy of the run whose run.json predates the recorded backbone (and names its store absolutely)."""
    shutil.copytree(trained_run, folder)
    record = json.loads((folder / "run.json").read_text())
    del record["backbone"]
    record["store"] = str((trained_run / record["store"]).resolve())
    (folder / "run.json").write_text(json.dumps(record))
    return folder


def test_an_unreachable_store_falls_back_to_the_shipped_backbone_with_a_warning(trained_run, photo, tmp_path,
                                                                                monkeypatch, caplog):
    def denied(*args, **kwargs):
        raise PermissionError("Access Denied")  # what s3fs raises for a bucket without credentials

    monkeypatch.setattr(predict_module, "FeatureStore", denied)
    old = _old_run(trained_run, tmp_path / "old")
    with caplog.at_level(logging.WARNING, logger="dgss"), pytest.raises(ModelError, match="is not the one run"):
        predict_images(old, [photo], tmp_path / "out")  # the shipped backbone: another digest
    assert "cannot read the run's store" in caplog.text and "PermissionError: Access Denied" in caplog.text


def test_a_moved_run_folder_finds_its_backbone_and_writes_its_provenance(trained_run, photo, tmp_path, caplog):
    """run.json names the backbone, so a run copied away from its store needs no --model and no store."""
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(trained_run, moved)
    with caplog.at_level(logging.WARNING, logger="dgss"):
        predict_images(moved, [photo], tmp_path / "out")
    assert not caplog.records
    provenance = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert provenance["run"] == str(moved.resolve()) and provenance["images"] == [str(photo)]
    assert provenance["backbone"] == json.loads((moved / "run.json").read_text())["backbone"] != ""
    assert provenance["dgss_version"] and len(provenance["thresholds"]) == 1
    assert provenance["test_time_flips"] is False  # the run was trained without flips
    assert "predict: 1/1 images" in (tmp_path / "out" / "log.txt").read_text()
    predict_images(moved, [photo], tmp_path / "flipped", flips=True)
    assert json.loads((tmp_path / "flipped" / "provenance.json").read_text())["test_time_flips"] is True


def test_an_old_moved_run_says_its_store_is_gone_in_plain_words(trained_run, photo, tmp_path, caplog):
    old = _old_run(trained_run, tmp_path / "old")
    record = json.loads((old / "run.json").read_text())
    record["store"] = str(tmp_path / "gone.zarr")  # the store stayed on the other machine
    (old / "run.json").write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="dgss"), pytest.raises(ModelError, match="is not the one run"):
        predict_images(old, [photo], tmp_path / "out")
    assert "no dgss store at" in caplog.text and "_NoStore" not in caplog.text


def test_an_unreadable_image_is_one_line(trained_run, tmp_path, capsys, monkeypatch):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    monkeypatch.setattr(sys, "argv", ["dgss", "predict", "--run", str(trained_run), "--out", str(tmp_path / "o"), str(broken)])
    with pytest.raises(SystemExit) as exited:
        main()
    error = capsys.readouterr().err.strip()
    assert exited.value.code == 1 and "broken.png" in error and len(error.splitlines()) == 1


def test_two_inputs_with_one_stem_are_refused_before_any_work(trained_run, photo, tmp_path):
    copy = tmp_path / "other" / photo.name
    copy.parent.mkdir()
    shutil.copy(photo, copy)
    with pytest.raises(DgssError, match=f"{photo} and {copy} would both write patient.7_"):
        predict_images(trained_run, [photo, copy], tmp_path / "out")
    assert not (tmp_path / "out").exists()


# Alignment at native resolution. A head that has learned where vessels are must put its probability on the
# vessels of the native image, not on a flipped, transposed or shifted copy of them. The vessels are two thick dark
# bars on a bright disc whose FOV `predict` derives itself; on the held-out images they are placed so that no
# flip, transpose or 8 px shift maps more than a fifth of them onto themselves.
HELD_OUT = {"bars10": ((10, 20, 14, 32), (0, 0)), "bars11": ((10, 20, 18, 36), (9, 23))}  # layout, column pad


def _bar_pixels(layout: tuple[int, int, int, int], pad: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A (64, 64 + sum(pad), 3) photo and its vessel label: a horizontal bar (rows row..row+6, columns
    left..left+14) and a vertical one (columns col..col+6, rows top..top+14) in a disc; `pad` black columns on the
    left and right."""
    row, left, col, top = layout
    y, x = np.mgrid[:64, :64]
    disc = (y - 31.5) ** 2 + (x - 31.5) ** 2 < 30**2
    vessel = ((y >= row) & (y < row + 6) & (x >= left) & (x < left + 14)) | (
        (x >= col) & (x < col + 6) & (y >= top) & (y < top + 14))
    vessel &= disc
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[disc] = (200, 110, 60)
    image[vessel] = (60, 20, 10)
    return np.pad(image, ((0, 0), pad, (0, 0))), np.pad(vessel, ((0, 0), pad))


def _write_bars(folder, images):
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir(parents=True)
    for stem, (layout, pad) in images.items():
        image, vessel = _bar_pixels(layout, pad)
        Image.fromarray(image).save(folder / "images" / f"{stem}.png")
        Image.fromarray(vessel.astype(np.uint8) * 255).save(folder / "labels" / f"{stem}.png")
    return f"folder:{folder}"


@pytest.fixture(scope="module")
def aligned_run(tmp_path_factory, extract_model_dir):
    """(run, store, held-out dataset, its folder): an MLP head trained on 6 images with bars at random places; the
    2 held-out images are cached too, one square and one padded to 64 x 96 px with the disc off centre."""
    root = tmp_path_factory.mktemp("aligned")
    rng = np.random.default_rng(0)
    train = _write_bars(root / "train", {f"train{i}": (tuple(rng.integers(8, 44, size=4)), (0, 0)) for i in range(6)})
    held = _write_bars(root / "held", HELD_OUT)
    for dataset in (train, held):
        run_extraction(ExtractionRequest(dataset=dataset, store=root / "f.zarr", model=str(extract_model_dir),
                                         timesteps=(10,)))
    config = HeadTrainingConfig(head="mlp", head_params={"hidden": [16]}, epochs=20, lr=1e-2, window=None,
                                dice_weight=0.5)
    return fit_head(root / "f.zarr", [train], root / "run", config), root / "f.zarr", held, root / "held"


def _auc(probability, vessel, fov):
    return vessel_metrics(probability, vessel, fov)["auc_roc"]


@pytest.mark.parametrize("stem", sorted(HELD_OUT))
def test_predicted_probability_lies_on_the_vessels_of_the_native_image(aligned_run, stem, tmp_path):
    run, _, _, folder = aligned_run
    path = folder / "images" / f"{stem}.png"
    (written,) = predict_images(run, [path], tmp_path, flips=False)  # the map as the head drew it: no symmetrising
    probability = np.asarray(Image.open(written.probability)).astype(np.float64) / 255
    vessel = np.asarray(Image.open(folder / "labels" / f"{stem}.png")) > 0
    assert probability.shape == vessel.shape
    fov = derive_fov(np.asarray(Image.open(path)))
    assert _auc(probability, vessel, fov) > 0.9
    # the same map read against vessels moved as a wrong mapping back to native pixels would move them
    moved = [vessel[::-1], vessel[:, ::-1], np.roll(vessel, 8, axis=0), np.roll(vessel, -8, axis=1)]
    if vessel.shape[0] == vessel.shape[1]:
        moved.append(vessel.T)
    for wrong in moved:
        assert _auc(probability, wrong, fov) < 0.75


@pytest.mark.parametrize("index", [0, 1])
def test_predict_maps_back_to_native_pixels_as_evaluate_does(aligned_run, index, tmp_path):
    """The image file `predict` segments from scratch is the one cached (same derived FOV, same canvas): its
    probability map is `evaluate`'s native mapping of the cached prediction, to the PNG's 1/255 rounding."""
    run, store, held, folder = aligned_run
    entry = FeatureStore(store).entry(held)
    path = folder / "images" / f"{entry.image_ids[index]}.png"
    (written,) = predict_images(run, [path], tmp_path)
    predicted = np.asarray(Image.open(written.probability)).astype(np.float64) / 255
    _, expected, _ = predict_native(load_run(run), entry, index)  # test-time flips as predict's default sets them
    fov = entry.read("native_fov", index)[:expected.shape[0], :expected.shape[1]].astype(bool)
    assert predicted.shape == expected.shape
    assert np.abs(predicted - expected)[fov].max() <= 0.5 / 255 + 1e-4
    assert np.abs(predicted[::-1] - expected)[fov].max() > 0.1


# nnU-Net-style use: folders in, probabilities out, given FOV masks, a threshold, continuing a stopped run.


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, photo):
    """A folder with two photos, a text file and a subfolder holding a third photo (not an input)."""
    folder = tmp_path_factory.mktemp("folder")
    shutil.copy(photo, folder / "b.jpg")
    Image.fromarray(get_dataset("SYNTH-B-4x64").read("synthB_001").image).save(folder / "a.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub").mkdir()
    shutil.copy(photo, folder / "sub" / "c.jpg")
    return folder


def _mask_pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path)) > 0


def _run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `dgss predict ARGS`."""
    monkeypatch.setattr(sys, "argv", ["dgss", "predict", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exited:
        code = exited.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def test_a_folder_means_the_image_files_directly_in_it_sorted(trained_run, photo_folder, photo, tmp_path):
    written = predict_images(trained_run, [photo_folder, photo_folder / "a.png", photo], tmp_path)
    assert [item.image.name for item in written] == ["a.png", "b.jpg", "patient.7.jpg"]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [f"{stem}_{kind}.png" for stem in ("a", "b", "patient.7") for kind in ("prob", "mask", "overlay")]
        + ["log.txt", "provenance.json"])


def test_save_probabilities_writes_the_float32_probability_as_tif(trained_run, photo, tmp_path):
    (written,) = predict_images(trained_run, [photo], tmp_path, save_probabilities=True)
    assert written.probability_tif == tmp_path / "patient.7_prob.tif"
    probability = tifffile.imread(written.probability_tif)
    png = np.asarray(Image.open(written.probability)).astype(np.float64) / 255
    assert probability.dtype == np.float32 and probability.shape == png.shape
    assert np.abs(probability - png).max() <= 1 / 255 and len(np.unique(probability)) > 10


def test_a_given_fov_mask_replaces_the_derived_one(trained_run, photo, tmp_path):
    """A mask blanking the left half: no vessel and no probability there, where the derived FOV finds some."""
    derived = derive_fov(np.asarray(Image.open(photo)))
    half = derived.copy()
    half[:, : half.shape[1] // 2] = False
    (tmp_path / "fov").mkdir()
    Image.fromarray(half.astype(np.uint8) * 255).save(tmp_path / "fov" / "patient.7.gif")
    (plain,) = predict_images(trained_run, [photo], tmp_path / "plain", threshold=0.001)
    (given,) = predict_images(trained_run, [photo], tmp_path / "given", threshold=0.001, fov_dir=tmp_path / "fov")
    left = np.s_[:, : half.shape[1] // 2]
    assert _mask_pixels(plain.mask)[left].any() and _mask_pixels(given.mask)[~half].sum() == 0
    assert np.asarray(Image.open(given.probability))[~half].max() == 0 and _mask_pixels(given.mask)[half].any()


def test_threshold_replaces_the_run_s_thresholds(trained_run, photo, tmp_path):
    (low,) = predict_images(trained_run, [photo], tmp_path / "low", threshold=0.001)
    (high,) = predict_images(trained_run, [photo], tmp_path / "high", threshold=0.999)
    assert _mask_pixels(high.mask).sum() < _mask_pixels(low.mask).sum()
    (otsu,) = predict_images(trained_run, [photo], tmp_path / "otsu", threshold="otsu")
    assert _mask_pixels(high.mask).sum() <= _mask_pixels(otsu.mask).sum() <= _mask_pixels(low.mask).sum()


def test_a_threshold_that_is_neither_a_probability_nor_otsu_is_a_usage_error(trained_run, photo, tmp_path,
                                                                            monkeypatch, capsys):
    code, _, err = _run_cli(monkeypatch, capsys, "--run", trained_run, "--out", tmp_path / "out", "--threshold",
                            "high", photo)
    assert code == 2 and "'high' is neither" in err and "--threshold" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def _stamps(folder) -> dict[str, tuple[int, int]]:
    """Inode and mtime of every image's output file: an atomic rewrite changes both."""
    return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in folder.iterdir()
            if path.name not in ("log.txt", "provenance.json")}


def test_resume_skips_images_whose_outputs_exist_and_redoes_the_rest(trained_run, photo_folder, tmp_path,
                                                                         monkeypatch, capsys):
    out = tmp_path / "out"
    args = ["--run", trained_run, "--out", out, "--save-probabilities", photo_folder]
    assert _run_cli(monkeypatch, capsys, *args)[0] == 0
    first = _stamps(out)
    assert len(first) == 8
    code, printed, _ = _run_cli(monkeypatch, capsys, *args, "--resume")
    assert code == 0 and "skipped 2 of 2" in printed and _stamps(out) == first
    (out / "b_prob.tif").unlink()
    code, printed, _ = _run_cli(monkeypatch, capsys, *args, "--resume")
    assert code == 0 and "skipped 1 of 2" in printed and "b.jpg" in printed
    again = _stamps(out)
    assert set(again) == set(first) and again["a_mask.png"] == first["a_mask.png"]
    assert again["b_mask.png"] != first["b_mask.png"]
    code, printed, _ = _run_cli(monkeypatch, capsys, *args)
    assert code == 0 and "skipped" not in printed and _stamps(out)["a_mask.png"] != first["a_mask.png"]


def test_an_empty_folder_is_one_line_naming_it(trained_run, photo_folder, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no photos here")
    code, _, error = _run_cli(monkeypatch, capsys, "--run", trained_run, "--out", tmp_path / "o", photo_folder, empty)
    assert code == 1 and f"folder {empty} holds no image file" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def _one_mask_folder(tmp_path: Path, stem: str) -> Path:
    """A --fov folder holding one all-FOV 64x64 mask named `stem`.png."""
    masks = tmp_path / "fov"
    masks.mkdir()
    Image.new("L", (64, 64), 255).save(masks / f"{stem}.png")
    return masks


def test_a_missing_fov_mask_is_one_line_before_any_image(trained_run, photo_folder, tmp_path, monkeypatch, capsys):
    masks = _one_mask_folder(tmp_path, "a")
    code, _, error = _run_cli(monkeypatch, capsys, "--run", trained_run, "--out", tmp_path / "o", "--fov", masks,
                              photo_folder)
    assert code == 1 and len(error.splitlines()) == 1
    assert f"no FOV mask for {photo_folder / 'b.jpg'} in {masks}" in error
    assert not (tmp_path / "o").exists()


def test_a_fov_mask_of_another_size_is_one_line_naming_both(trained_run, photo, tmp_path, monkeypatch, capsys):
    masks = _one_mask_folder(tmp_path, "patient.7")
    code, _, error = _run_cli(monkeypatch, capsys, "--run", trained_run, "--out", tmp_path / "o", "--fov", masks,
                              photo)
    assert code == 1 and len(error.splitlines()) == 1
    assert f"FOV mask {masks / 'patient.7.png'} is 64x64 px but {photo} is 80x64 px" in error


def test_a_missing_input_or_fov_folder_is_refused_before_any_work(trained_run, photo, tmp_path):
    with pytest.raises(DgssError, match=f"{tmp_path / 'nope.png'} does not exist"):
        predict_images(trained_run, [photo, tmp_path / "nope.png"], tmp_path / "out")
    with pytest.raises(DgssError, match=f"FOV folder {tmp_path / 'masks'} does not exist"):
        predict_images(trained_run, [photo], tmp_path / "out", fov_dir=tmp_path / "masks")
    assert not (tmp_path / "out").exists()


def test_a_notebook_gets_the_probability_predict_writes(trained_run, photo, tmp_path):
    """`dgss.load_run(RUN).predict(photo)`: the same numbers as `dgss predict`'s float TIFF, as an array of the
    photo's size, from a path or from pixels."""
    import dgss

    (written,) = predict_images(trained_run, [photo], tmp_path / "out", save_probabilities=True)
    predictor = dgss.load_run(trained_run)
    from_path = predictor.predict(photo)
    pixels = np.asarray(Image.open(photo).convert("RGB"))
    assert from_path.dtype == np.float32 and from_path.shape == pixels.shape[:2]
    np.testing.assert_array_equal(from_path, tifffile.imread(written.probability_tif))
    np.testing.assert_array_equal(predictor.predict(pixels), from_path)
    with pytest.raises(DgssError, match="expected a \\(y, x, 3\\) uint8 RGB photo"):
        predictor.predict(pixels[..., 0])
