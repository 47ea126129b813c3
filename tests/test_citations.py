"""Code cites only what a reader of the repository can open: no design notes kept elsewhere, no issue numbers."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("dgss", "datasets", "backbone", "pretrain", "extract", "store", "aggregate", "pipelines", "bench")
OUTSIDE = re.compile(r"\b(METHOD|STACK|CONTRACTS|STYLE)\.md\b|\bMETHOD §|\bissue \d+", re.IGNORECASE)


def test_no_code_cites_a_document_outside_the_repository():
    cited = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for folder in FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert not cited, "state the fact, or cite a file in docs/:\n" + "\n".join(cited)
