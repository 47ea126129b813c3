"""The backbone shipped with dgss: present, loadable, small enough for the repository, the default model."""

from dgss.extract.backbone import load_backbone
from dgss.extract.shipped import resolve_model, shipped_backbone_path

MAX_FILE_BYTES = 16 * 2**20


def test_the_shipped_backbone_is_the_default_and_loads():
    folder = shipped_backbone_path()
    assert resolve_model(None) == str(folder) and resolve_model("other/model") == "other/model"
    backbone = load_backbone(folder)
    assert backbone.sample_size == 512 and backbone.num_train_timesteps == 1000
    assert backbone.appearance is not None, "the shipped backbone must carry its pool's appearance statistics"


def test_the_shipped_backbone_has_its_model_card_and_fits_in_the_repository():
    folder = shipped_backbone_path()
    card = (folder / "MODEL_CARD.md").read_text()
    assert "FUNDUS-POOL" in card and "steps" in card
    assert all(path.stat().st_size <= MAX_FILE_BYTES for path in folder.iterdir())
