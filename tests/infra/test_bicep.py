"""Offline checks of infra/ itself: every Bicep file parses (pycep-parser, the parser checkov
uses), module calls and parameters are consistent the way the Bicep compiler would check, no
parameter or variable is unused, and checkov's Azure rules pass with every suppression
explained. No Bicep compiler can be installed offline; see infra/README.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep import (
    INFRA,
    MAIN,
    bicep_files,
    body,
    checkov_executable,
    module_path,
    parse,
)

# --- parsing and structure ----------------------------------------------------------------


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.name)
def test_every_bicep_file_parses_into_declarations(path: Path) -> None:
    tree = parse(path)
    declared = {**tree.get("resources", {}), **tree.get("modules", {})}
    assert declared, f"{path.name} declares no resource or module"
    for name, declaration in declared.items():
        assert body(declaration).get("name"), f"{path.name}: {name} has no name"
    for name, param in tree.get("parameters", {}).items():
        assert param["type"] in {"string", "int", "bool", "array", "object"}, (path.name, name)


def test_infra_tree_is_complete() -> None:
    found = {p.relative_to(INFRA).as_posix() for p in bicep_files()}
    assert "main.bicep" in found
    assert parse(MAIN)["globals"]["scope"]["value"] == "subscription"
    referenced = {
        module_path(p, decl).relative_to(INFRA).as_posix()
        for p in bicep_files()
        for decl in parse(p).get("modules", {}).values()
    }
    assert found - referenced == {"main.bicep"}, "every module is used, nothing else lies around"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.name)
def test_module_calls_pass_exactly_the_declared_parameters(path: Path) -> None:
    for name, declaration in parse(path).get("modules", {}).items():
        target = module_path(path, declaration)
        assert target.is_file(), f"{path.name}: module {name} -> missing {target}"
        declared = parse(target).get("parameters", {})
        passed = set(body(declaration).get("params", {}))
        required = {p for p, spec in declared.items() if spec.get("default") is None}
        assert passed <= set(declared), f"{name}: unknown params {passed - set(declared)}"
        assert required <= passed, f"{name}: missing params {required - passed}"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.name)
def test_no_unused_parameters_or_variables(path: Path) -> None:
    # What the Bicep linter's no-unused-params / no-unused-vars rules would report.
    tree = parse(path)
    # Comments and object keys ("name: value" at a line start) are not uses.
    code = "\n".join(
        re.sub(r"^\s*'?[\w.-]+'?\s*:(?!\S)", "", line)
        for line in path.read_text().splitlines()
        if not line.lstrip().startswith("//")
    )
    for kind in ("parameters", "variables"):
        for name in tree.get(kind, {}):
            uses = len(re.findall(rf"(?<![\w.']){re.escape(name)}\b(?!')", code))
            assert uses >= 2, f"{path.name}: {kind[:-1]} {name} is never used"


def test_example_parameters_cover_main() -> None:
    example = json.loads((INFRA / "main.example.parameters.json").read_text())["parameters"]
    declared = parse(MAIN)["parameters"]
    required = {p for p, spec in declared.items() if spec.get("default") is None}
    assert set(example) <= set(declared), set(example) - set(declared)
    assert required <= set(example), required - set(example)
    for vault in example["keyVaults"]["value"]:
        assert set(vault) == {"id", "location", "rbac"}
        assert vault["id"].split("/")[6:8] == ["Microsoft.KeyVault", "vaults"]


# --- checkov ------------------------------------------------------------------------------


def _checkov(directory: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [
            checkov_executable(),
            "--directory",
            str(directory),
            "--framework",
            "bicep",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        # No PyPI version lookup: the check runs fully offline.
        env={**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"},
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert isinstance(report, dict), "expected one (bicep) report"
    assert report["check_type"] == "bicep"
    return report


#: A file checkov cannot parse, scanned with infra/ to prove parse failures are reported:
#: checkov exits 0 on them, so the tests must read its parsing_errors.
CANARY = "zz-unparsable-canary.bicep"


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One checkov run over a copy of infra/ plus the unparsable canary (one run: seconds)."""
    copy = tmp_path_factory.mktemp("checkov") / "infra"
    shutil.copytree(INFRA, copy)
    (copy / CANARY).write_text("resource x 'Microsoft.Foo/bars@2020-01-01' = {\n")
    started = time.monotonic()
    report = _checkov(copy)
    report["elapsed_seconds"] = time.monotonic() - started
    return report


def test_checkov_finds_no_unsuppressed_failure(checkov_report: dict[str, Any]) -> None:
    failed = [
        f"{c['check_id']} {c['file_path']} {c['resource']}: {c['check_name']}"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert failed == []
    assert checkov_report["summary"]["passed"] > 20


def test_checkov_suppressions_give_reasons(checkov_report: dict[str, Any]) -> None:
    skipped = checkov_report["results"]["skipped_checks"]
    assert skipped, "the suppressions in infra/ are expected to be reported as skipped"
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason.split()) >= 8, f"{check['check_id']} in {check['file_path']}: {reason!r}"


def test_checkov_parsed_every_infra_file(checkov_report: dict[str, Any]) -> None:
    # Only the canary failed to parse: checkov lists such files (and still exits 0).
    assert [Path(p).name for p in checkov_report["results"]["parsing_errors"]] == [CANARY]
    checked = {
        Path(c["file_path"]).name
        for kind in ("passed_checks", "failed_checks", "skipped_checks")
        for c in checkov_report["results"][kind]
    }
    assert {"storage.bicep", "functionapp.bicep", "alert-topic.bicep"} <= checked
    assert checkov_report["elapsed_seconds"] < 120
