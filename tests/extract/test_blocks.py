import pytest
import torch
import typer
from typer.testing import CliRunner

from dgss.errors import ModelError
from dgss.extract.blocks import (
    block_names,
    check_blocks,
    default_blocks,
    group_levels,
    list_blocks,
    tap_blocks,
)
from dgss.extract.config import check_timesteps, default_timesteps
from dgss.pipelines.app import app
from dgss.pipelines.blocks_command import blocks
from dgss.store.schema import BlockLayout


def test_list_blocks_measures_maps(extract_backbone):
    infos = list_blocks(extract_backbone, 32)
    assert [info.name for info in infos] == ["mid_block", "up_blocks.0", "up_blocks.1", "up_blocks.2"]
    assert infos[0] == BlockLayout(name="mid_block", channels=32, height=8, width=8)
    assert [(info.height, info.channels) for info in infos[1:]] == [(16, 32), (32, 32), (32, 16)]
    assert [info.height for info in list_blocks(extract_backbone, 64)] == [16, 32, 64, 64]


def test_default_blocks_and_levels(extract_backbone):
    infos = list_blocks(extract_backbone, 32)
    chosen = default_blocks(infos, 32)
    # strides 4, 2, 1 exist: nearest to 8, 4, 2 are 4, 2, 1; the last block per stride represents it
    assert chosen == ["mid_block", "up_blocks.0", "up_blocks.2"]
    picked = [info for info in infos if info.name in chosen]
    assert group_levels(picked) == {"coarse": ["mid_block"], "middle": ["up_blocks.0"], "fine": ["up_blocks.2"]}


def test_group_levels_fewer_and_too_many_sizes():
    def block(name, size):
        return BlockLayout(name=name, channels=4, height=size, width=size)

    assert group_levels([block("a", 8), block("b", 16), block("c", 16)]) == {
        "coarse": ["a"], "middle": [], "fine": ["b", "c"]
    }
    with pytest.raises(ModelError, match="4 map sizes"):
        group_levels([block(str(s), s) for s in (4, 8, 16, 32)])


def test_unknown_block_lists_valid_ones(extract_backbone):
    with pytest.raises(ModelError, match="unknown block up_blocks.9 .*valid blocks: mid_block, up_blocks.0") as info:
        check_blocks(extract_backbone, ["up_blocks.1", "up_blocks.9"])
    assert "\n" not in str(info.value)


def test_hooks_record_and_are_removed(extract_backbone):
    network = extract_backbone.network
    names = ["down_blocks.0", "up_blocks.1"]
    with torch.no_grad(), tap_blocks(network, names) as outputs:
        network(torch.zeros(1, 3, 32, 32), torch.tensor([5]))
    assert outputs["down_blocks.0"][0].shape == (1, 16, 16, 16)  # tuple output -> hidden state
    assert outputs["up_blocks.1"][0].shape == (1, 32, 32, 32)
    assert all(not network.get_submodule(name)._forward_hooks for name in names)
    assert block_names(extract_backbone)[-1] == "up_blocks.2"


def test_default_timesteps():
    assert default_timesteps(4000) == (1, 10, 50, 100, 500, 1000, 2000, 3500)
    assert default_timesteps(1000) == (0, 3, 13, 25, 125, 250, 500, 875)
    assert default_timesteps(4) == (0, 1, 2, 3)


def test_timesteps_checked():
    assert check_timesteps([50, 10, 10], 1000) == (10, 50)
    with pytest.raises(ModelError, match="timestep 1000: the model was trained with 1000 steps, use integers 0..999"):
        check_timesteps([10, 1000], 1000)
    with pytest.raises(ModelError, match="timestep -1"):
        check_timesteps([-1], 1000)


def _invoke(*args: str):
    """Run `dgss blocks ...` on a group holding just this command (a one-command typer app drops the name)."""
    cli = typer.Typer()
    cli.callback()(lambda: None)
    cli.command()(blocks)
    return CliRunner().invoke(cli, ["blocks", *args])


def test_blocks_command(extract_model_dir):
    assert any(command.callback is blocks for command in app.registered_commands)
    result = _invoke("--model", str(extract_model_dir), "--input-size", "64")
    assert result.exit_code == 0, result.output
    assert "mid_block" in result.output and "coarse" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("up_blocks.2"))
    assert row.split() == ["up_blocks.2", "16", "64", "64", "1", "fine"]


def test_blocks_command_bad_model(tmp_path):
    result = _invoke("--model", str(tmp_path / "missing"))
    assert isinstance(result.exception, ModelError)


def test_input_size_the_model_cannot_take(extract_backbone):
    with pytest.raises(ModelError, match="cannot run at input size 30") as info:
        list_blocks(extract_backbone, 30)
    assert "\n" not in str(info.value)


def test_tapping_records_only_the_passes_of_its_own_thread(extract_backbone):
    """Two threads tapping one shared network at once each get exactly their own maps."""
    import threading

    sample = extract_backbone.encode(torch.zeros(1, 3, 32, 32))
    barrier = threading.Barrier(2)
    counts = {}

    def tap(passes: int) -> None:
        with torch.no_grad(), tap_blocks(extract_backbone.network, ["mid_block"]) as outputs:
            barrier.wait()
            for _ in range(passes):
                extract_backbone.predict(sample, torch.zeros(1, dtype=torch.long))
        counts[passes] = len(outputs["mid_block"])

    threads = [threading.Thread(target=tap, args=(passes,)) for passes in (2, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == {2: 2, 5: 5}
