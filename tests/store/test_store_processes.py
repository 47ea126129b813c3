"""Writes from other processes: a writer SIGKILLed mid-image, and two writers of different images at once."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from dgss.store import FeatureStore
from store_samples import IMAGE_IDS, entry_kwargs, image_arrays

_PREAMBLE = """
import os, signal, sys
import zarr
from dgss.store import FeatureStore
from store_samples import entry_kwargs, image_arrays
entry = FeatureStore(sys.argv[1]).require_entry(**entry_kwargs())
"""


def _python(script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    code = _PREAMBLE + textwrap.dedent(script)
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env)


def test_killed_writer_leaves_no_partial_image_done(tmp_path: Path) -> None:
    # Image 0 is written fully; the process kills itself right after the first array of image 1 is stored.
    script = """
    entry.write_image(0, image_arrays(0))
    store_array = zarr.Array.__setitem__
    def store_then_die(array, selection, value):
        store_array(array, selection, value)
        os.kill(os.getpid(), signal.SIGKILL)
    zarr.Array.__setitem__ = store_then_die
    entry.write_image(1, image_arrays(1))
    """
    writer = _python(script, str(tmp_path))
    assert writer.wait(timeout=120) == -9
    entry = FeatureStore(tmp_path, create=False).entry("SYNTH-A")
    entry_dir = tmp_path / "SYNTH-A" / entry.key
    assert (entry_dir / "features/up.0/c/1").is_dir() and not (entry_dir / "features/up.1/c/1").exists()
    assert entry.done().tolist() == [True, False, False, False]
    assert entry.read("image", 0).tobytes() == image_arrays(0)["image"].tobytes()
    entry.write_image(1, image_arrays(1))
    for name, expected in image_arrays(1).items():
        assert entry.read(name, 1).tobytes() == expected.tobytes()


def test_concurrent_writers_match_serial(tmp_path: Path) -> None:
    script = """
    for index in map(int, sys.argv[2:]):
        entry.write_image(index, image_arrays(index))
    """
    FeatureStore(tmp_path / "parallel").require_entry(**entry_kwargs())  # made once, as the extract command does
    writers = [_python(script, str(tmp_path / "parallel"), *indices) for indices in (["0", "2"], ["1", "3"])]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    serial = FeatureStore(tmp_path / "serial").require_entry(**entry_kwargs())
    for index in range(len(IMAGE_IDS)):
        serial.write_image(index, image_arrays(index))
    parallel = FeatureStore(tmp_path / "parallel", create=False).entry("SYNTH-A")
    assert parallel.done().all()
    for name in serial.array_specs:
        assert parallel.array(name)[:].tobytes() == serial.array(name)[:].tobytes()
    chunks = {path.relative_to(tmp_path / "serial") for path in (tmp_path / "serial").rglob("c/**/*") if path.is_file()}
    assert len(chunks) == 4 * (len(serial.array_specs) + 2)  # every array, the checksum row and the done marker
    for chunk in chunks:
        assert (tmp_path / "parallel" / chunk).read_bytes() == (tmp_path / "serial" / chunk).read_bytes()
