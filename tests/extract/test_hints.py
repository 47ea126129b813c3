"""The `dgss extract` command a hint gives: every option the key depends on, and nothing the defaults give."""

import shlex
import shutil

from dgss.backbone.appearance import AppearanceTarget, save_appearance
from dgss.backbone.loading import load_backbone
from dgss.extract.extractor import make_config
from dgss.extract.hints import extract_command


def test_a_config_extracted_without_the_backbones_own_target_says_so(extract_model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(extract_model_dir, folder)
    save_appearance(folder, AppearanceTarget(mean=(130.0, 90.0, 50.0), std=(30.0, 20.0, 15.0)))
    backbone = load_backbone(folder)
    pooled = extract_command("DRIVE", "f.zarr", make_config(backbone, timesteps=(10,)).to_dict(), str(folder))
    plain = extract_command("DRIVE", "f.zarr", make_config(backbone, timesteps=(10,), appearance="none").to_dict(),
                            str(folder))
    assert shlex.split(pooled)[:8] == ["dgss", "extract", "--dataset", "DRIVE", "--store", "f.zarr", "--model",
                                       str(folder.resolve())]
    assert "--timesteps 10" in pooled and not {"--appearance", "--mode"} & set(shlex.split(pooled))
    assert plain == pooled + " --appearance none"
