"""The ``keyguard`` command's plumbing: settings files, exit codes, --help on every
subcommand."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from shared.cli import AZURE, OK, USAGE
from shared.cli.env import read_settings_file
from shared.cli.main import main, parser
from shared.errors import ConfigError, StorageError

COMMANDS = ("report", "restore-plan", "ade-report", "dead-letters", "replay", "quarantine", "sweep")


def test_settings_files_of_every_shape(tmp_path: Path) -> None:
    values = {"Values": {"KEYGUARD_TENANT_ID": "t", "FUNCTIONS_WORKER_RUNTIME": "python"}}
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, **values}))
    assert read_settings_file(tmp_path / "local.settings.json") == values["Values"]
    (tmp_path / "flat.json").write_text('{"A": "1", "B": 2}')
    assert read_settings_file(tmp_path / "flat.json") == {"A": "1", "B": "2"}
    (tmp_path / "stack.env").write_text("# from ./dev stack\nexport A=1\n  B='x=y'\n\n")
    assert read_settings_file(tmp_path / "stack.env") == {"A": "1", "B": "x=y"}
    (tmp_path / "bad.env").write_text("A=1\nnot a setting\n")
    with pytest.raises(ConfigError, match="line 2"):
        read_settings_file(tmp_path / "bad.env")
    with pytest.raises(ConfigError, match="cannot read"):
        read_settings_file(tmp_path / "absent.env")


def test_every_subcommand_has_help(capsys: Any) -> None:
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exited:
            parser().parse_args([command, "--help"])
        assert exited.value.code == 0
        assert "exit codes" in capsys.readouterr().out


def test_usage_and_config_errors_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["sweep"])  # --dry-run is required: the timer runs the real sweep
    assert exited.value.code == USAGE
    with pytest.raises(SystemExit) as exited:
        main(["replay"])
    assert exited.value.code == USAGE
    for name in ("KEYGUARD_TENANT_ID", "KEYGUARD_SUBSCRIPTIONS", "KEYGUARD_VAULTS"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty.env"
    empty.write_text("")
    assert main(["report", "--settings", str(empty), "--quiet"]) == USAGE
    assert "KEYGUARD_" in capsys.readouterr().err


def test_storage_failure_exits_3(capsys: Any) -> None:
    def fail(**_: Any) -> Any:
        raise StorageError("dead letters: connection refused")

    rt: Any = SimpleNamespace(dead_letters=SimpleNamespace(list=fail))
    assert main(["dead-letters", "--quiet"], runtime=rt) == AZURE
    assert "StorageError" in capsys.readouterr().err
    ok: Any = SimpleNamespace(dead_letters=SimpleNamespace(list=lambda **_: []))
    assert main(["dead-letters", "--quiet"], runtime=ok) == OK
    assert json.loads(capsys.readouterr().out) == {"dead_letters": []}
