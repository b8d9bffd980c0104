"""``./dev stack --scenario FILE`` (issue 16, item 8): the offline stack with a scenario of
one's own, left running, printing what is needed to drive it; Ctrl-C stops it cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request

import pytest

from local.stack import REPO_ROOT
from shared import names

pytestmark = pytest.mark.e2e


def test_dev_stack_starts_a_scenario_prints_endpoints_and_keys_and_keeps_running() -> None:
    process = subprocess.Popen(
        ["./dev", "stack", "--scenario", "local/scenarios/minimal.yaml", "--json"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, "the stack printed nothing"
        info = json.loads(line)
        host = info["host"]
        assert host["function_key"] and set(host["webhooks"]) == {
            names.FN_KEYVAULT_EVENTS,
            names.FN_ARM_EVENTS,
        }
        assert info["app_settings"]["KEYGUARD_VAULTS"] == "*"
        assert info["local_azure"]["arm_url"].startswith("https://")
        # still running: the host answers, and so does the report behind the printed key
        with urllib.request.urlopen(f"{host['base_url']}/admin/host/status", timeout=10) as r:
            assert json.loads(r.read())["state"] == "Running"
        with urllib.request.urlopen(host["report"], timeout=60) as r:
            assert r.status == 200
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    assert code == 0
