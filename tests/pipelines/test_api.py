"""`import dgss`: the version, the README's functions at the top level, and no torch until one is used."""

import importlib.metadata
import subprocess
import sys

import pytest

import dgss


def test_version_is_the_installed_distribution_s():
    assert dgss.__version__ == importlib.metadata.version("dgss")


def test_importing_dgss_does_not_import_torch(tmp_path):
    """Run outside the repository, as a notebook would, so only the installed package can be found."""
    code = "import dgss, sys; dgss.__version__; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", dgss.__all__)
def test_every_exported_name_resolves(name):
    assert getattr(dgss, name) is not None
    assert name in dir(dgss)


def test_the_api_names_are_the_modules_own_objects():
    from dgss.pipelines.extract_job import run_extraction
    from dgss.store import FeatureStore
    from dgss.store.xarray_view import open as open_view

    assert (dgss.run_extraction, dgss.FeatureStore, dgss.open_store) == (run_extraction, FeatureStore, open_view)
    assert {"run_extraction", "ExtractionRequest", "fit_head", "HeadTrainingConfig", "evaluate_run", "load_run",
            "predict_images", "open_store", "FeatureStore"} <= set(dgss.__all__)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        dgss.no_such_name  # noqa: B018


def test_the_subpackages_are_reachable_after_a_plain_import(tmp_path):
    """`import dgss; dgss.store.open(...)` raised AttributeError until `import dgss.store`."""
    code = ("import dgss\nassert callable(dgss.store.open) and callable(dgss.datasets.get_dataset)\n"
            "assert 'store' in dir(dgss)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
