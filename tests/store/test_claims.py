"""Claim files: a live holder keeps its claim, a dead or too old one is taken over, a release frees it."""

import json
import os
import socket
import subprocess
import time

from store_samples import CONFIG, entry_kwargs, image_arrays

from dgss.store import FeatureStore
from dgss.store.claims import try_claim
from dgss.store.feature_store import CREATE_CLAIM


def _holder(path, pid: int, started: float) -> None:
    path.write_text(f"{socket.gethostname()} {pid} {started:.3f}\n")


def test_a_live_claim_is_kept_and_a_released_one_is_free(tmp_path):
    path = tmp_path / "0.claim"
    claim = try_claim(path)
    assert claim is not None and try_claim(path) is None
    claim.release()
    assert try_claim(path) is not None


def test_a_claim_of_a_dead_process_is_taken_over(tmp_path):
    finished = subprocess.Popen(["true"])
    finished.wait()
    path = tmp_path / "0.claim"
    _holder(path, finished.pid, time.time())
    claim = try_claim(path)
    assert claim is not None and str(os.getpid()) in path.read_text()
    assert [entry.name for entry in tmp_path.iterdir()] == ["0.claim"]  # no grave left behind


def test_a_claim_older_than_the_timeout_is_taken_over(tmp_path):
    path = tmp_path / "0.claim"
    _holder(path, os.getpid(), time.time() - 120)
    assert try_claim(path, stale_after_s=60) is not None
    assert try_claim(path, stale_after_s=60) is None


def test_an_entry_whose_creation_was_killed_is_made_again_beside_a_sibling(tmp_path):
    """A killed creation leaves a group without its description and a creation claim of a dead process: the next
    run takes the claim over and rebuilds that entry's arrays, leaving the finished sibling entry as it was."""
    store = FeatureStore(tmp_path / "s.zarr")
    sibling = store.require_entry(**entry_kwargs())
    sibling.write_image(0, image_arrays(0))
    other = {**CONFIG, "timesteps": [1, 10, 50]}
    key = store.require_entry(**entry_kwargs(config=other)).key
    group = tmp_path / "s.zarr" / "SYNTH-A" / key
    metadata = json.loads((group / "zarr.json").read_text())
    del metadata["attributes"]["dgss_entry"]
    (group / "zarr.json").write_text(json.dumps(metadata))
    finished = subprocess.Popen(["true"])
    finished.wait()
    _holder(group / ".claims" / CREATE_CLAIM, finished.pid, time.time())

    again = FeatureStore(tmp_path / "s.zarr").require_entry(**entry_kwargs(config=other))
    assert again.key == key and not again.done().any()
    assert FeatureStore(tmp_path / "s.zarr").entry("SYNTH-A", sibling.key).read("image", 0).tobytes() == (
        image_arrays(0)["image"].tobytes()
    )
    assert not (group / ".claims" / CREATE_CLAIM).exists()
