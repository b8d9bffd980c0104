"""``python -m local.azure``: starts from a scenario, prints its endpoints, stops on SIGTERM."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from local.azure.admin_client import AdminClient

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_cli_prints_endpoints_serves_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "local.azure", "--scenario", "local/scenarios/minimal.yaml"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "the CLI printed nothing within 30 s"
        assert process.stdout is not None
        line = json.loads(process.stdout.readline())
        assert line["arm_url"].startswith("https://127.0.0.1:")
        assert line["admin_url"] == line["arm_url"] + "/_admin"
        assert line["env"]["KEYGUARD_ARM_ENDPOINT"] == line["arm_url"]
        assert line["env"]["KEYGUARD_CLOUD"] == "Custom"
        assert line["env"]["IDENTITY_ENDPOINT"] == line["identity_endpoint"]
        assert Path(line["ca_path"]).is_file()

        state = AdminClient(line["arm_url"], line["ca_path"]).state()
        assert state["tenant_id"] == line["tenant_id"] == line["env"]["KEYGUARD_TENANT_ID"]
        assert state["principals"]["keyguard"] == "5a1c7e0e-0000-4000-8000-00000000a001"

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert not os.path.exists(line["ca_path"])  # the CA temp dir is removed on stop
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_cli_refuses_an_invalid_scenario(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenant_id: x\nprincipals: {keyguard: a}\nvirtual_machine: []\n")
    result = subprocess.run(
        [sys.executable, "-m", "local.azure", "--scenario", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "cannot start" in result.stderr and "virtual_machine" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
