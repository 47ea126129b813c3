"""Backbone training: exact resume after any stop (time budget, kill, another machine, an older run folder), a
loadable output folder, image-folder sources, one-line errors."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file
from typer.main import get_group

from dgss.backbone.appearance import load_appearance
from dgss.errors import DatasetError, DgssError, ModelError, RunError
from dgss.pretrain import training
from dgss.pretrain.presets import PRESETS, BackboneTrainingConfig, build_unet, learning_rate
from dgss.pretrain.training import ImagePool, train_backbone, training_batch

SYNTH = "SYNTH-A-4x64"  # its training split: the first 2 images


def _tiny(**overrides) -> BackboneTrainingConfig:
    """About 40k parameters at 32 px: a training step takes milliseconds."""
    fields = dict(resolution=32, image_size=36, block_out_channels=(8, 16), steps=6, checkpoint_every=3, batch_size=2,
                  sample_count=2, sample_steps=2)
    return BackboneTrainingConfig.from_preset("tiny", **{**fields, **overrides})


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """Four JPEG 'fundus photos': a noisy disc on black, wider than tall, like a camera frame."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:60, :80]
    disc = (yy - 30) ** 2 + (xx - 40) ** 2 < 28**2
    for i in range(4):
        image = rng.integers(60, 255, (60, 80, 3)) * disc[..., None]
        Image.fromarray(image.astype(np.uint8)).save(folder / f"photo_{i}.jpg")
    return folder


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, photo_folder) -> Path:
    """One uninterrupted 6-step run on a synthetic dataset plus the photo folder."""
    return train_backbone(_tiny(), [SYNTH, str(photo_folder)], tmp_path_factory.mktemp("full") / "model")


def _same_weights(run: Path, reference: Path) -> bool:
    """Same EMA model, same training weights and same loss history, bit for bit."""
    ema, reference_ema = (load_file(folder / "diffusion_pytorch_model.safetensors") for folder in (run, reference))
    trained, expected = (torch.load(folder / "checkpoints" / "latest.pt", weights_only=True)
                         for folder in (run, reference))
    return (ema.keys() == reference_ema.keys() and all(torch.equal(ema[k], reference_ema[k]) for k in ema)
            and all(torch.equal(trained["model"][k], expected["model"][k]) for k in expected["model"])
            and trained["losses"] == expected["losses"] and trained["step"] == expected["step"])


def test_interrupted_and_resumed_run_gives_the_same_weights(full_run, photo_folder, tmp_path):
    out = tmp_path / "model"
    sources = [SYNTH, str(photo_folder)]
    train_backbone(_tiny(steps=3), sources, out)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest.pt"]
    train_backbone(_tiny(), sources, out, resume=True)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest.pt"]  # replaced, not added to
    assert _same_weights(out, full_run)


def test_a_run_stopped_by_its_time_budget_saves_that_step_and_resumes_exactly(full_run, photo_folder, tmp_path,
                                                                              capsys):
    """A budget of 0 is spent by the first step of each call: three pieces (1, 1 and 4 steps) must give the weights
    of the uninterrupted run, and each stop leaves a loadable model and a card at its step."""
    out = tmp_path / "model"
    sources = [SYNTH, str(photo_folder)]
    train_backbone(_tiny(), sources, out, time_budget_s=0)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "time budget" in lines[0] and "step 1 of 6" in lines[0] and "--resume" in lines[0]
    assert torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["step"] == 1
    assert (out / "samples" / "step-00000001.png").is_file() and UNet2DModel.from_pretrained(out) is not None
    assert "steps: 1 of 6 (unfinished" in (out / "MODEL_CARD.md").read_text()
    train_backbone(_tiny(), sources, out, resume=True, time_budget_s=0)
    assert "step 2 of 6" in capsys.readouterr().out
    train_backbone(_tiny(), sources, out, resume=True, time_budget_s=3600)
    assert capsys.readouterr().out == ""  # finished within its budget: nothing to say
    assert _same_weights(out, full_run)
    pieces = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["pieces"]
    assert [(piece["start"], piece["end"]) for piece in pieces] == [(0, 1), (1, 2), (2, 6)]
    assert "in 3 piece(s)" in (out / "MODEL_CARD.md").read_text()


def test_a_run_without_a_terminal_logs_one_line_per_checkpoint(photo_folder, tmp_path, capsys, caplog):
    """A batch job's log has no progress bar, so each checkpoint says its step and loss in a log line (stdout stays
    for the outcome); the model folder's log.txt keeps them."""
    with caplog.at_level(logging.INFO, logger="dgss"):
        out = train_backbone(_tiny(), [SYNTH, str(photo_folder)], tmp_path / "model")
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("train-diffusion")]
    assert capsys.readouterr().out == ""
    assert [line.split(",")[0] for line in lines] == ["train-diffusion: 3/6 steps", "train-diffusion: 6/6 steps"]
    assert all("mean loss" in line and "over the last 3 steps" in line and str(out) in line for line in lines)
    assert (out / "log.txt").read_text().count("INFO train-diffusion: ") == 2


def test_the_appearance_statistics_are_of_the_whole_pool_and_travel_in_the_checkpoint(full_run, photo_folder,
                                                                                      tmp_path, monkeypatch):
    """Stopped after step 0, which reads 2 of the 6 images, the checkpoint already holds the statistics of all 6;
    the resumed process must take them from there (never recount them: the extraction cache key of the backbone
    depends on them) and end with those of the uninterrupted run."""
    out = tmp_path / "model"
    sources = [SYNTH, str(photo_folder)]
    train_backbone(_tiny(), sources, out, time_budget_s=0)
    saved = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["appearance"]
    assert saved == json.loads((full_run / "dgss_appearance.json").read_text())

    def _recount(pool):
        raise AssertionError("the appearance statistics were recounted on resume")

    monkeypatch.setattr(ImagePool, "appearance_target", _recount)
    train_backbone(_tiny(), sources, out, resume=True)
    assert (out / "dgss_appearance.json").read_text() == (full_run / "dgss_appearance.json").read_text()


def test_a_run_folder_copied_to_another_machine_resumes_with_the_pool_found_there(full_run, photo_folder, tmp_path):
    """The run folder and the photos both move (another machine, another path): the same files continue exactly;
    a folder that holds other files is refused."""
    first = tmp_path / "first" / "model"
    train_backbone(_tiny(steps=3), [SYNTH, str(photo_folder)], first)
    moved_run = shutil.copytree(first, tmp_path / "elsewhere" / "model")
    moved_photos = shutil.copytree(photo_folder, tmp_path / "elsewhere" / "photos")
    train_backbone(_tiny(), [SYNTH, str(moved_photos)], moved_run, resume=True)
    assert _same_weights(moved_run, full_run)
    next(moved_photos.iterdir()).unlink()
    with pytest.raises(RunError, match="same files") as error:
        train_backbone(_tiny(steps=8), [SYNTH, str(moved_photos)], moved_run, resume=True)
    _one_line(error)


def test_a_run_folder_of_an_older_dgss_resumes_from_its_newest_step_file(full_run, photo_folder, tmp_path):
    """Older runs kept the last two `step-XXXXXXXX.pt` files, no pieces, no source fingerprints, no learning-rate
    schedule (constant) and a `keep_checkpoints` field: the newest file is read, and `latest.pt` then replaces
    both; asking such a run for a cosine schedule is refused."""
    out = tmp_path / "model"
    sources = [SYNTH, str(photo_folder)]
    train_backbone(_tiny(steps=3), sources, out)
    folder = out / "checkpoints"
    state = torch.load(folder / "latest.pt", weights_only=True)
    del state["pieces"]
    torch.save(state, folder / "step-00000003.pt")
    # An older file with the same weights: resuming from it would replay steps 1 and 2 and end elsewhere.
    torch.save({**state, "step": 1, "losses": state["losses"][:1]}, folder / "step-00000001.pt")
    (folder / "latest.pt").unlink()
    record = json.loads((out / "training.json").read_text())
    del record["fingerprints"]
    record["config"]["keep_checkpoints"] = 2
    del record["config"]["lr_schedule"], record["config"]["lr_warmup_steps"]
    (out / "training.json").write_text(json.dumps(record))
    with pytest.raises(RunError, match="lr_schedule 'constant' -> 'cosine'") as error:
        train_backbone(_tiny(lr_schedule="cosine"), sources, out, resume=True)
    _one_line(error)
    train_backbone(_tiny(), sources, out, resume=True)
    assert sorted(p.name for p in folder.iterdir()) == ["latest.pt"]
    assert _same_weights(out, full_run)
    assert "hardware not recorded" in (out / "MODEL_CARD.md").read_text()


def test_learning_rate_schedules_at_a_few_steps():
    constant = _tiny(lr=1e-3)
    assert [learning_rate(constant, step) for step in (0, 3, 5)] == [1e-3] * 3
    warm = _tiny(lr=1e-3, lr_warmup_steps=4)
    assert [learning_rate(warm, step) for step in (0, 1, 3, 5)] == pytest.approx([2.5e-4, 5e-4, 1e-3, 1e-3])
    # Cosine over steps 2..9 after 2 warm-up steps: half-way at step 6, nearly 0 at the last step.
    cosine = _tiny(lr=1e-3, steps=10, lr_schedule="cosine", lr_warmup_steps=2)
    assert [learning_rate(cosine, step) for step in (0, 1, 2, 6, 9)] == pytest.approx(
        [5e-4, 1e-3, 1e-3, 5e-4, 1e-3 * (1 - np.cos(np.pi / 8)) / 2])
    assert learning_rate(_tiny(lr=1e-3, steps=4, lr_schedule="cosine"), 0) == 1e-3
    # A cool-down over the last 4 of 10 steps: full rate up to step 5, then 4/5, 3/5, 2/5, 1/5 of it.
    cooled = _tiny(lr=1e-3, steps=10, lr_cooldown_steps=4)
    assert [learning_rate(cooled, step) for step in (0, 5, 6, 7, 8, 9)] == pytest.approx(
        [1e-3, 1e-3, 8e-4, 6e-4, 4e-4, 2e-4])
    with pytest.raises(ModelError, match="lr_cooldown_steps applies to the constant schedule"):
        _tiny(lr_schedule="cosine", lr_cooldown_steps=2)


def test_a_constant_run_resumes_with_a_cooldown_after_its_trained_steps(photo_folder, tmp_path):
    """A run that has stopped improving is cooled down from its checkpoint: resuming a 3-step constant run with a
    3-step cool-down to 6 steps gives the weights of the run planned that way from step 0; a cool-down that would
    have changed a trained step's rate is refused."""
    sources = [SYNTH, str(photo_folder)]
    planned = train_backbone(_tiny(steps=6, lr_cooldown_steps=3), sources, tmp_path / "planned")
    out = train_backbone(_tiny(steps=3), sources, tmp_path / "pieces")
    with pytest.raises(RunError, match="lr_cooldown_steps 0 -> 4, steps 3 -> 6 .* step 2") as error:
        train_backbone(_tiny(steps=6, lr_cooldown_steps=4), sources, out, resume=True)
    _one_line(error)
    train_backbone(_tiny(steps=6, lr_cooldown_steps=3), sources, out, resume=True)
    assert _same_weights(out, planned)
    assert json.loads((out / "training.json").read_text())["config"]["lr_cooldown_steps"] == 3


def test_a_finished_run_resumes_with_a_zoom_after_its_trained_steps(photo_folder, tmp_path):
    """Scale augmentation can be added to a long run from its checkpoint: a 3-step run resumed with a zoom from step
    3 gives the weights of the run planned that way; a zoom from step 2 (already trained unzoomed) is refused."""
    sources = [SYNTH, str(photo_folder)]
    zoomed = dict(zoom_range=(0.9, 1.1), augment_from_step=3)
    planned = train_backbone(_tiny(steps=6, **zoomed), sources, tmp_path / "planned")
    out = train_backbone(_tiny(steps=3), sources, tmp_path / "pieces")
    refused = r"augment_from_step 0 -> 2, steps 3 -> 6, zoom_range \(1.0, 1.0\) -> \(0.9, 1.1\).* changes step 2"
    with pytest.raises(RunError, match=refused) as error:
        train_backbone(_tiny(steps=6, zoom_range=(0.9, 1.1), augment_from_step=2), sources, out, resume=True)
    _one_line(error)
    train_backbone(_tiny(steps=6, **zoomed), sources, out, resume=True)
    assert _same_weights(out, planned)
    assert json.loads((out / "training.json").read_text())["config"]["zoom_range"] == [0.9, 1.1]
    card = (out / "MODEL_CARD.md").read_text()
    assert "zoom drawn log-uniformly from 0.9 to 1.1 and left-right flips (augmentations from step 3 on)" in card


def test_a_run_recorded_with_zoom_from_step_resumes_under_its_new_name(photo_folder, tmp_path):
    """`zoom_from_step` was renamed `augment_from_step`: a run folder of the older dgss still resumes, and its
    record still guards the steps it trained."""
    sources = [SYNTH, str(photo_folder)]
    zoomed = dict(zoom_range=(0.9, 1.1), augment_from_step=1)
    out = train_backbone(_tiny(steps=3, **zoomed), sources, tmp_path / "older")
    record = json.loads((out / "training.json").read_text())
    record["config"]["zoom_from_step"] = record["config"].pop("augment_from_step")
    (out / "training.json").write_text(json.dumps(record))
    with pytest.raises(RunError, match="augment_from_step 1 -> 2"):
        train_backbone(_tiny(steps=6, zoom_range=(0.9, 1.1), augment_from_step=2), sources, out, resume=True)
    train_backbone(_tiny(steps=6, **zoomed), sources, out, resume=True)
    assert torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["step"] == 6


def test_a_zoom_of_two_shows_the_pool_twice_as_large_from_its_first_step(tmp_path):
    """Crops of a striped photo (period 4 px) show stripes of period 8 at zoom 2, and only from augment_from_step on:
    the batches before it are those of a run without zoom."""
    columns = np.where(np.arange(36) % 4 < 2, 120, 240).astype(np.uint8)
    Image.fromarray(np.broadcast_to(columns[None, :, None], (36, 36, 3)).copy()).save(tmp_path / "stripes.png")
    plain, zoomed = _tiny(batch_size=2), _tiny(batch_size=2, zoom_range=(2.0, 2.0), augment_from_step=4)
    pool = ImagePool([str(tmp_path)], None, plain.image_size)

    def _stripe_edges(batch: torch.Tensor) -> float:
        rows = batch[:, 1, 16].numpy()  # (crop, x): the middle row of each crop's green channel
        return float(np.mean([np.count_nonzero(np.diff(np.sign(row - row.mean()))) for row in rows]))

    assert torch.equal(training_batch(pool, zoomed, 3), training_batch(pool, plain, 3))
    assert _stripe_edges(training_batch(pool, plain, 4)) == pytest.approx(16, abs=1)
    assert _stripe_edges(training_batch(pool, zoomed, 4)) == pytest.approx(8, abs=1)


def test_photometric_crops_change_only_from_their_first_step_and_only_inside_the_fov(photo_folder):
    plain, photo = _tiny(batch_size=3), _tiny(batch_size=3, photometric=True, augment_from_step=2)
    pool = ImagePool([str(photo_folder)], None, plain.image_size)
    assert torch.equal(training_batch(pool, photo, 1), training_batch(pool, plain, 1))
    before, after = training_batch(pool, plain, 2), training_batch(pool, photo, 2)
    assert not torch.equal(before, after)
    surround = (before == -1).all(dim=1)  # black pixels of the photos' surround
    assert surround.any() and torch.equal(after.permute(0, 2, 3, 1)[surround], before.permute(0, 2, 3, 1)[surround])


def test_a_cosine_run_resumes_exactly_and_only_with_its_steps(full_run, photo_folder, tmp_path, capsys):
    """Three pieces of a CPU-time budget give the weights of the uninterrupted cosine run (the rate is a function of
    the step, not kept state), which differ from the constant run's; its end cannot move on resume."""
    sources = [SYNTH, str(photo_folder)]
    config = _tiny(lr_schedule="cosine", lr_warmup_steps=2)
    whole = train_backbone(config, sources, tmp_path / "whole")
    assert not _same_weights(whole, full_run)
    assert json.loads((whole / "training.json").read_text())["config"]["lr_schedule"] == "cosine"
    out = tmp_path / "pieces"
    train_backbone(config, sources, out, time_budget_s=0, budget_clock="cpu")
    assert "CPU-time budget of 0 min spent at step 1 of 6" in capsys.readouterr().out
    train_backbone(config, sources, out, resume=True, time_budget_s=0, budget_clock="cpu")
    train_backbone(config, sources, out, resume=True)
    assert _same_weights(out, whole)
    # Only the warm-up is the same for a cosine over 8 steps: step 3 was trained at another rate.
    with pytest.raises(RunError, match="steps 6 -> 8 .* changes step 3, already trained at learning rate") as error:
        train_backbone(_tiny(lr_schedule="cosine", lr_warmup_steps=2, steps=8), sources, out, resume=True)
    _one_line(error)
    pieces = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["pieces"]
    assert [piece["end"] for piece in pieces] == [1, 2, 6] and all(piece["cpu_s"] > 0 for piece in pieces)


def test_a_run_killed_between_checkpoints_resumes_exactly(full_run, photo_folder, tmp_path, monkeypatch):
    out = tmp_path / "model"
    sources = [SYNTH, str(photo_folder)]

    def _interrupt_at_step_5(pool, config, step):
        if step == 4:
            raise KeyboardInterrupt
        return training_batch(pool, config, step)

    monkeypatch.setattr(training, "training_batch", _interrupt_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train_backbone(_tiny(), sources, out)
    monkeypatch.undo()
    # Steps 4 and 5 are replayed from the step-3 checkpoint; recomputing activations (a resumable field) changes
    # memory, not the result.
    train_backbone(_tiny(gradient_checkpointing=True), sources, out, resume=True)
    resumed = load_file(out / "diffusion_pytorch_model.safetensors")
    uninterrupted = load_file(full_run / "diffusion_pytorch_model.safetensors")
    assert all(torch.allclose(resumed[name], uninterrupted[name], rtol=0, atol=1e-6) for name in resumed)


def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_0(full_run, photo_folder, tmp_path, monkeypatch):
    """Only `training.json` is left: `--resume` (what the bench script passes for any used folder) starts over."""
    out = tmp_path / "model"
    sources = [SYNTH, str(photo_folder)]

    def _interrupt_at_step_2(pool, config, step):
        if step == 1:
            raise KeyboardInterrupt
        return training_batch(pool, config, step)

    monkeypatch.setattr(training, "training_batch", _interrupt_at_step_2)
    with pytest.raises(KeyboardInterrupt):
        train_backbone(_tiny(), sources, out)
    monkeypatch.undo()
    assert not (out / "checkpoints").exists()
    train_backbone(_tiny(), sources, out, resume=True)
    assert _same_weights(out, full_run)


def test_output_folder_loads_as_a_diffusers_model(full_run):
    unet = UNet2DModel.from_pretrained(full_run)
    assert unet.config.block_out_channels == (8, 16) or list(unet.config.block_out_channels) == [8, 16]
    scheduler = DDIMScheduler.from_pretrained(full_run)
    assert scheduler.config.beta_schedule == "squaredcos_cap_v2"
    assert scheduler.config.prediction_type == "sample"
    assert not scheduler.config.clip_sample
    from dgss.backbone.loading import load_backbone

    backbone = load_backbone(full_run)
    assert backbone.prediction_type == "sample"
    assert backbone.num_train_timesteps == 1000


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_each_prediction_type_trains_on_its_own_target(prediction_type):
    """A network that outputs zeros has loss mean(target^2): epsilon's is the noise, x0's the image and v's
    sqrt(a) eps - sqrt(1 - a) x0, from the step's own noise and timesteps."""
    config = _tiny(prediction_type=prediction_type)
    model = build_unet(config)
    torch.nn.init.zeros_(model.conv_out.weight), torch.nn.init.zeros_(model.conv_out.bias)
    clean = torch.rand(2, 3, 32, 32) * 2 - 1
    generator = training._step_generator(config.seed, 5)
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = torch.randint(0, config.num_train_timesteps, (2,), generator=generator)
    scheduler = training.build_noise_scheduler(config)
    alpha = scheduler.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    target = {"epsilon": noise, "sample": clean,
              "v_prediction": alpha.sqrt() * noise - (1 - alpha).sqrt() * clean}[prediction_type]
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0)
    loss = training._train_step(model, optimizer, scheduler, config, clean, 5)
    assert loss == pytest.approx(target.pow(2).mean().item(), rel=1e-5)


def test_a_v_prediction_run_loads_as_a_v_prediction_backbone(tmp_path):
    from dgss.backbone.loading import load_backbone

    out = train_backbone(_tiny(prediction_type="v_prediction", steps=2, checkpoint_every=2), [SYNTH], tmp_path / "v")
    assert DDIMScheduler.from_pretrained(out).config.prediction_type == "v_prediction"
    assert load_backbone(out).prediction_type == "v_prediction"
    assert (out / "samples_vs_real.png").is_file()


def test_output_folder_records_the_run(full_run, photo_folder):
    assert sorted(p.name for p in (full_run / "samples").glob("*.png")) == ["step-00000003.png", "step-00000006.png"]
    with Image.open(full_run / "samples" / "step-00000006.png") as grid:
        assert grid.size == (64, 32)  # two 32 px samples side by side
    record = json.loads((full_run / "training.json").read_text())
    assert BackboneTrainingConfig.from_dict(record["config"]) == _tiny()
    assert record["images"] == {SYNTH: 2, str(photo_folder): 4}
    assert len((full_run / "loss.csv").read_text().splitlines()) == 1 + 6
    assert record["fingerprints"].keys() == record["images"].keys()
    # The pool's colour statistics travel with the weights, for appearance matching at extraction.
    assert load_appearance(full_run).mean[0] > 0


def test_batches_are_a_function_of_seed_and_step(photo_folder):
    config = _tiny(batch_size=3)
    pool = ImagePool([str(photo_folder)], None, config.image_size)
    first = training_batch(pool, config, 5)
    assert first.shape == (3, 3, 32, 32) and first.min() >= -1 and first.max() <= 1
    assert torch.equal(first, training_batch(ImagePool([str(photo_folder)], None, config.image_size), config, 5))
    assert not torch.equal(first, training_batch(pool, config, 6))


def test_config_round_trips_through_json():
    config = BackboneTrainingConfig.from_preset("adm", steps=10)
    assert BackboneTrainingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.attention_resolutions() == (32, 16, 8)
    assert config.num_train_timesteps == 4000


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_build(preset):
    with torch.device("meta"):
        unet = build_unet(BackboneTrainingConfig.from_preset(preset))
    # The saved sample size is the image scale (extraction defaults to it), not the training crop.
    assert unet.config.sample_size == PRESETS[preset]["image_size"]


def _one_line(error: pytest.ExceptionInfo) -> None:
    assert "\n" not in str(error.value)


def test_unknown_source_and_empty_folder_are_dataset_errors(tmp_path):
    with pytest.raises(DatasetError) as error:
        train_backbone(_tiny(), ["NOT-A-DATASET"], tmp_path / "a")
    _one_line(error)
    with pytest.raises(DatasetError, match="does not exist") as error:
        train_backbone(_tiny(), [str(tmp_path / "missing")], tmp_path / "a")
    _one_line(error)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images") as error:
        train_backbone(_tiny(), [str(tmp_path / "empty")], tmp_path / "b")
    _one_line(error)


def test_out_folder_rules(full_run, photo_folder, tmp_path):
    sources = [SYNTH, str(photo_folder)]
    with pytest.raises(RunError, match="--resume") as error:
        train_backbone(_tiny(), sources, full_run)
    _one_line(error)
    with pytest.raises(RunError, match="no checkpoint") as error:
        train_backbone(_tiny(), sources, tmp_path / "new", resume=True)
    _one_line(error)
    with pytest.raises(RunError, match="lr") as error:
        train_backbone(_tiny(lr=1e-3), sources, full_run, resume=True)
    _one_line(error)
    with pytest.raises(RunError, match="past --steps") as error:
        train_backbone(_tiny(steps=5), sources, full_run, resume=True)
    _one_line(error)


@pytest.mark.parametrize(
    "overrides",
    [dict(resolution=33), dict(prediction_type="v"), dict(attention_levels=(5,)), dict(steps=0),
     dict(zoom_range=(1.5, 1.2)), dict(zoom_range=(0.5, 1.0)), dict(augment_from_step=-1)],
)
def test_bad_config_values_are_model_errors(overrides):
    with pytest.raises(ModelError) as error:
        _tiny(**overrides)
    _one_line(error)
    with pytest.raises(ModelError, match="preset"):
        BackboneTrainingConfig.from_preset("huge")


def test_cli_trains_in_pieces_of_a_time_budget_and_refuses_a_used_folder(photo_folder, tmp_path):
    from dgss.pipelines.app import app
    from dgss.pipelines import train_diffusion_command  # noqa: F401  (registers the command)

    out = tmp_path / "cli"
    args = ["train-diffusion", "--source", str(photo_folder), "--out", str(out), "--resolution", "32",
            "--steps", "2", "--batch-size", "1", "--prediction-type", "epsilon", "--sample-count", "1",
            "--sample-steps", "2", "--lr-schedule", "cosine", "--lr-warmup-steps", "1", "--zoom", "1", "1.2"]
    cli = get_group(app)  # a group even while this is the only command registered
    stopped = CliRunner().invoke(cli, [*args, "--time-budget", "0"])
    assert stopped.exit_code == 0, stopped.output
    assert "time budget of 0 min spent at step 1 of 2" in stopped.output
    assert DDIMScheduler.from_pretrained(out).config.prediction_type == "epsilon"
    recorded = json.loads((out / "training.json").read_text())["config"]
    assert (recorded["lr_schedule"], recorded["lr_warmup_steps"], recorded["zoom_range"]) == ("cosine", 1, [1.0, 1.2])
    again = CliRunner().invoke(cli, args)
    assert isinstance(again.exception, DgssError) and "--resume" in str(again.exception)
    finished = CliRunner().invoke(cli, [*args, "--resume", "--time-budget", "60"])
    assert finished.exit_code == 0 and "time budget" not in finished.output, finished.output
    assert torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["step"] == 2


def test_train_diffusion_help_shows_the_budget_without_importing_torch():
    code = ("import sys\nfrom dgss.pipelines.cli import main\nsys.argv = ['dgss', 'train-diffusion', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "--time-budget" in result.stdout and "MINUTES" in result.stdout
