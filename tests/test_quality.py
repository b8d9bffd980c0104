"""Quality gates in the test suite, so CI enforces them: ruff (lint + format) over the tree,
mypy --strict over the deployed code (shared/, handlers/, function_app.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_lint_is_clean() -> None:
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_deployed_code() -> None:
    result = _run("mypy")  # files and strictness: [tool.mypy] in pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_the_app_loads_no_sdk_and_no_handler() -> None:
    """Cold start: ``import function_app`` pays for azure.functions and the settings only;
    Azure SDKs and each handler are imported when first used (bench/cold_start.py times it)."""
    import os

    env = {
        **os.environ,
        "KEYGUARD_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "KEYGUARD_SUBSCRIPTIONS": "00000000-0000-0000-0000-000000000001",
        "KEYGUARD_VAULTS": "*",
        "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID": "00000000-0000-0000-0000-0000000000b5",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    }
    probe = (
        "import sys, function_app; "
        "print(sorted(m for m in sys.modules if m.startswith(('handlers', 'azure.')) "
        "and not m.startswith('azure.functions')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def test_nothing_reads_outside_the_repository() -> None:
    """A bare clone must test itself: test data lives in ``tests/fixtures/azure`` (vendored,
    with its provenance), never in the reading material beside the checkout."""
    import re

    outside = re.compile(r"\.\./shared|parents\[[0-9]\]\s*/\s*[\"']shared[\"']|azure-samples")
    hits = []
    for folder in ("tests", "local", "bench", "shared", "handlers"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == Path(__file__).resolve():
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if outside.search(line):
                    hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)
