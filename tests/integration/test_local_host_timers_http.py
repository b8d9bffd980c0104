"""Timer and HTTP functions through the local host, and the host's command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from local.azurite import Azurite
from local.host import REPO_ROOT, LocalHost
from local.host.config import HostConfigError
from tests.apps.harness import http, records, wait_for

pytestmark = pytest.mark.integration
APP = "tests.apps.sample_app"


def _env(azurite: Azurite, folder: Path, schedule: str) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "SAMPLE_RECORD_DIR": str(folder),
        "SAMPLE_TIMER_SCHEDULE": schedule,
    }


@pytest.fixture
def ticking(azurite: Azurite, tmp_path: Path) -> Iterator[LocalHost]:
    """A host whose sample timer fires every second (schedule from an app setting)."""
    with LocalHost.start(APP, env=_env(azurite, tmp_path, "* * * * * *"), in_process=True) as host:
        yield host


def test_timer_fires_every_second_from_a_setting_schedule(
    ticking: LocalHost, tmp_path: Path
) -> None:
    described = {f["name"]: f for f in ticking.info["functions"]}
    assert described["timer_tick"]["schedule"] == "* * * * * *"  # %SAMPLE_TIMER_SCHEDULE%
    ticks = wait_for(
        lambda: len(records(tmp_path, "timer_tick")) >= 4 and records(tmp_path, "timer_tick"),
        timeout=10,
    )
    # tick i+1 names tick i's scheduled occurrence as "Last"
    scheduled = [datetime.fromisoformat(t["status"]["Last"]) for t in ticks[1:4]]
    started = [datetime.fromisoformat(t["status"]["LastUpdated"]) for t in ticks[:3]]
    nexts = [datetime.fromisoformat(t["status"]["Next"]) for t in ticks[:3]]
    assert all(s.microsecond == 0 for s in scheduled)  # whole-second occurrences
    assert scheduled == sorted(set(scheduled))
    assert all(n - s == timedelta(seconds=1) for s, n in zip(scheduled, nexts, strict=True))
    assert all(begun >= s for s, begun in zip(scheduled, started, strict=True))  # never early
    assert all(
        t["past_due"] is False for t in ticks if t["status"]["LastUpdated"] < t["status"]["Next"]
    )


def test_run_on_startup_fires_once_at_start(ticking: LocalHost, tmp_path: Path) -> None:
    [startup] = wait_for(lambda: records(tmp_path, "startup_tick"))
    assert startup["past_due"] is False
    assert startup["status"]["Next"].startswith(f"{datetime.now().year + 1}-01-01T00:00:00")


def test_admin_api_runs_a_timer_function_now(azurite: Azurite, tmp_path: Path) -> None:
    """``POST /admin/functions/{name}`` runs a timer at once (the Functions host's admin API),
    with the host key; unknown names are a 404, a missing key a 401."""
    import urllib.error
    import urllib.request

    env = _env(azurite, tmp_path, "0 0 0 1 1 *")  # would not fire on its own this year
    with LocalHost.start(APP, env=env, in_process=True) as host:

        def post(name: str, key: str | None) -> int:
            headers = {"x-functions-key": key} if key else {}
            request = urllib.request.Request(
                f"{host.base_url}/admin/functions/{name}", data=b"{}", headers=headers
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return int(response.status)
            except urllib.error.HTTPError as err:
                return err.code

        assert post("timer_tick", None) == 401
        assert records(tmp_path, "timer_tick") == []
        assert post("timer_tick", host.function_key) == 202
        [tick] = records(tmp_path, "timer_tick")
        assert tick["past_due"] is False
        assert post("no_such_timer", host.function_key) == 404


def test_missing_schedule_setting_stops_the_host_naming_it(
    azurite: Azurite, tmp_path: Path
) -> None:
    env = _env(azurite, tmp_path, "x")
    del env["SAMPLE_TIMER_SCHEDULE"]
    saved = os.environ.pop("SAMPLE_TIMER_SCHEDULE", None)
    try:
        with pytest.raises(HostConfigError, match="SAMPLE_TIMER_SCHEDULE"):
            LocalHost.start(APP, env=env, in_process=True)
    finally:
        if saved is not None:
            os.environ["SAMPLE_TIMER_SCHEDULE"] = saved
    assert os.environ.get("SAMPLE_RECORD_DIR") != str(tmp_path)  # env restored


@pytest.fixture(scope="module")
def web(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHost]:
    folder = tmp_path_factory.mktemp("web")
    with LocalHost.start(APP, env=_env(azurite, folder, "0 0 0 1 1 *"), in_process=True) as host:
        yield host


def test_function_level_http_needs_the_host_key(web: LocalHost) -> None:
    url = f"{web.base_url}/api/hello/ada?q=1"
    assert http("GET", url)[0] == 401
    assert http("GET", url + "&code=wrong")[0] == 401
    assert http("GET", url, headers={"x-functions-key": "wrong"})[0] == 401
    status, headers, body = http("GET", f"{url}&code={web.function_key}")
    assert status == 201
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"hello": "ada", "q": "1", "body": ""}
    status, _, body = http("POST", url, b"payload", headers={"x-functions-key": web.function_key})
    assert status == 201 and json.loads(body)["body"] == "payload"


def test_anonymous_http_needs_no_key(web: LocalHost) -> None:
    status, _, body = http("GET", f"{web.base_url}/api/open")
    assert (status, body) == (200, b"open")


def test_http_methods_and_unknown_routes(web: LocalHost) -> None:
    assert http("DELETE", f"{web.base_url}/api/open")[0] == 405
    assert http("GET", f"{web.base_url}/api/nothing-here")[0] == 404
    assert http("GET", f"{web.base_url}/api/hello")[0] == 404  # {name} is required
    assert json.loads(http("GET", f"{web.base_url}/admin/host/status")[2]) == {"state": "Running"}


def test_command_line_prints_json_and_stops_on_sigterm(azurite: Azurite, tmp_path: Path) -> None:
    env = {**os.environ, **_env(azurite, tmp_path, "unused")}
    del env["SAMPLE_TIMER_SCHEDULE"]  # comes from --settings instead
    settings = tmp_path / "local.settings.json"
    values = {"SAMPLE_TIMER_SCHEDULE": "0 0 0 1 1 *", "SAMPLE_RECORD_DIR": "/nonexistent"}
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.host",
            "--app",
            APP,
            "--port",
            "0",
            "--print-json",
            "--function-key",
            "fixed-key",
            "--settings",
            str(settings),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert info["function_key"] == "fixed-key"
        assert {f["name"] for f in info["functions"]} == {
            "eg_record",
            "queue_work",
            "timer_tick",
            "startup_tick",
            "http_hello",
            "http_open",
        }
        timer = next(f for f in info["functions"] if f["name"] == "timer_tick")
        assert timer["schedule"] == "0 0 0 1 1 *"  # from --settings
        status, _, _ = http("GET", f"{info['base_url']}/api/hello/x?code=fixed-key")
        assert status == 201
        # the environment wins over --settings: startup_tick recorded into tmp_path
        wait_for(lambda: records(tmp_path, "startup_tick"))
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0
    assert "Executed 'http_hello' (Succeeded" in stderr


def test_subprocess_host_can_be_killed(azurite: Azurite, tmp_path: Path) -> None:
    host = LocalHost.start(APP, env=_env(azurite, tmp_path, "0 0 0 1 1 *"))
    try:
        host.kill()
        assert host._process is not None and host._process.returncode == -signal.SIGKILL
        with pytest.raises(OSError):
            http("GET", f"{host.base_url}/api/open")
    finally:
        host.stop()
        host.close_log()


def test_a_bad_app_fails_start_with_its_log(azurite: Azurite, tmp_path: Path) -> None:
    from local.host import LocalHostError

    with pytest.raises(LocalHostError, match="no_such_module"):
        LocalHost.start("no_such_module", env=_env(azurite, tmp_path, "0 0 0 1 1 *"))


def test_a_raising_http_function_is_a_500(web: LocalHost) -> None:
    status, _, body = http("GET", f"{web.base_url}/api/hello/boom?code={web.function_key}")
    assert status == 500
    assert b"http_hello" in body and b"RuntimeError" in body
