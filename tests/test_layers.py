"""Imports follow the data flow, one way.

The layers, each a top-level folder installed under `dgss` (see docs/layout.md), in the order the code uses them:

    foundation -> datasets -> backbone -> store -> extract -> aggregate -> pipelines -> API
                                  \\-> pretrain -------------------------------^

- foundation: the modules of dgss/ itself (errors, files, plotting, device, ...): they import only each other.
- store comes after backbone and before extract because the extractor writes into it; it imports only the
  foundation, so it stays importable without torch (a store is read where torch is not installed).
- pretrain (backbone training) stands beside the stages: it reads images (datasets) and trains a backbone, and only
  pipelines and the API import it, so extraction and prediction never pull in training.
- API: dgss/__init__.py, the lazy Python API over everything; nothing imports it.

A layer imports itself and the layers it is drawn after, never one drawn after it. The API's own imports are by name
(PEP 562) and are not checked here.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYER_FOLDERS = ("datasets", "backbone", "pretrain", "store", "extract", "aggregate", "pipelines")
ALLOWED = {
    "foundation": {"foundation"},
    "datasets": {"foundation"},
    "backbone": {"foundation", "datasets"},
    "pretrain": {"foundation", "datasets", "backbone"},
    "store": {"foundation"},
    "extract": {"foundation", "datasets", "backbone", "store"},
    "aggregate": {"foundation", "datasets", "backbone", "store", "extract"},
    "pipelines": {"foundation", "datasets", "backbone", "pretrain", "store", "extract", "aggregate"},
}
TORCH = ("torch", "diffusers", "safetensors", "torchvision")


def _layer_of_file(path: Path) -> str:
    folder = path.relative_to(ROOT).parts[0]
    if folder == "dgss":
        return "api" if path.name == "__init__.py" else "foundation"
    return folder


def _layer_of_import(module: str) -> str | None:
    """The layer a `dgss...` module belongs to; None for a module outside dgss."""
    parts = module.split(".")
    if parts[0] != "dgss":
        return None
    if len(parts) == 1:
        return "api"
    if parts[1] in LAYER_FOLDERS:
        return parts[1]
    return "foundation" if (ROOT / "dgss" / f"{parts[1]}.py").is_file() else "api"


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import, in functions too; `from dgss import name` as `dgss.name`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "dgss":
                found += [(node.lineno, f"dgss.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def _source_files() -> list[Path]:
    files = [path for folder in LAYER_FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))]
    return files + sorted((ROOT / "dgss").glob("*.py"))


@pytest.mark.parametrize("path", _source_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_a_module_imports_only_its_own_layer_and_the_layers_before_it(path: Path) -> None:
    layer = _layer_of_file(path)
    if layer == "api":
        return
    against = [f"line {line}: {module} ({_layer_of_import(module)})"
               for line, module in _imported_modules(ast.parse(path.read_text()))
               if _layer_of_import(module) not in (None, layer, *ALLOWED[layer])]
    assert not against, f"{path.relative_to(ROOT)} ({layer}) imports against the flow: {'; '.join(against)}"


@pytest.mark.parametrize("path", sorted((ROOT / "store").rglob("*.py")), ids=lambda path: path.name)
def test_the_store_imports_no_torch(path: Path) -> None:
    torch_imports = [module for _, module in _imported_modules(ast.parse(path.read_text()))
                     if module.split(".")[0] in TORCH]
    assert not torch_imports, f"store/{path.name} imports {', '.join(torch_imports)}"


def test_every_source_folder_is_a_layer() -> None:
    """A new top-level package must be placed in the flow before it can be imported from."""
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"dgss", "tests", "bench"}
    assert packages == set(LAYER_FOLDERS)
