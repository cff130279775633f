"""A git revision's ``src`` as a folder beside this tree, for benchmarks that run a baseline
revision and this tree side by side (evaluate_parity.py, service_cpu.py)."""

from __future__ import annotations

import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def unpack(rev: str, into: Path) -> Path:
    """``src`` of ``rev`` (``git archive``) unpacked in ``into``; its path."""
    data = subprocess.run(
        ["git", "archive", "--format=tar", rev, "src"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"
