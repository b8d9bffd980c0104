"""A local Azure Functions host for the Python v2 programming model.

Azure Functions Core Tools cannot be installed offline, so this package drives an app the
way the Functions host does, from the bindings the app registers — never from a second
wiring: Event Grid webhook with handshakes, HTTP functions with function keys, queue
triggers polled from Azurite per host.json (dequeue counts, ``-poison`` queues, back-off),
timers on NCRONTAB schedules, queue output bindings.

Use :meth:`LocalHost.start` from Python (tests, the demo) or ``python -m local.host`` from
a shell. By default the host runs in a subprocess, so a chaos test can SIGKILL it; with
``in_process=True`` it runs on threads in this process (faster; ``env`` is then applied to
``os.environ`` for the host's lifetime, because the app reads its settings from there).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from shared.errors import KeyguardError

REPO_ROOT = Path(__file__).resolve().parents[2]

__all__ = ["LocalHost", "LocalHostError"]


class LocalHostError(KeyguardError):
    """The local host did not start (its log is part of the message)."""


class LocalHost:
    """Handle on a running local host. Build with :meth:`start`, end with :meth:`stop`.

    Attributes
    ----------
    info:
        What the host announced: ``base_url``, ``port``, ``function_key``, ``pid`` and
        ``functions`` (name, trigger, webhook URL / URL / queue / schedule).
    """

    def __init__(
        self,
        info: dict[str, Any],
        *,
        process: subprocess.Popen[str] | None = None,
        runtime: Any = None,
        log: IO[str] | None = None,
        saved_env: dict[str, str | None] | None = None,
    ) -> None:
        self.info = info
        self._process = process
        self._runtime = runtime
        self._log = log
        self._saved_env = saved_env or {}

    # -- what the host tells -----------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return str(self.info["base_url"])

    @property
    def port(self) -> int:
        """The front door's port."""
        return int(self.info["port"])

    @property
    def function_key(self) -> str:
        """The key ``function``-level HTTP functions require (``?code=``)."""
        return str(self.info["function_key"])

    @property
    def pid(self) -> int:
        """The host's process id (this process when in-process)."""
        return int(self.info["pid"])

    def webhook_url(self, function_name: str) -> str:
        """The Event Grid webhook URL of one function."""
        return f"{self.base_url}/runtime/webhooks/EventGrid?functionName={function_name}"

    def logs(self) -> str:
        """The subprocess host's stderr so far (empty in-process: logs go to this process)."""
        if self._log is None or self._log.closed:
            return ""
        self._log.flush()
        with open(self._log.name, encoding="utf-8", errors="replace") as file:
            return file.read()

    # -- lifecycle -----------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        app_module: str = "function_app",
        *,
        env: Mapping[str, str] | None = None,
        port: int = 0,
        host_json: Path | str | None = None,
        in_process: bool = False,
        function_key: str | None = None,
        cloudevents: str = "native",
        prepare_storage: bool = True,
        timeout: float = 30.0,
    ) -> LocalHost:
        """Start a host for ``app_module`` (``module`` or ``module:attr``).

        Parameters
        ----------
        env:
            App settings added to this process's environment for the host.
        port:
            Port on 127.0.0.1; 0 picks a free one.
        host_json:
            host.json to honour (default: the repository's).
        in_process:
            Run on threads here instead of in a subprocess.
        function_key, cloudevents:
            See ``python -m local.host --help``.
        prepare_storage:
            Create Keyguard's queues, tables and containers in ``AzureWebJobsStorage`` at
            start (``infra/`` does this in Azure).
        timeout:
            Seconds to wait for a subprocess host to announce itself.

        Raises
        ------
        LocalHostError
            The subprocess exited or stayed silent; its log is in the message.
        """
        if in_process:
            return cls._start_in_process(
                app_module, env or {}, port, host_json, function_key, cloudevents, prepare_storage
            )
        args = [
            sys.executable,
            "-m",
            "local.host",
            "--app",
            app_module,
            "--port",
            str(port),
            "--print-json",
            "--cloudevents",
            cloudevents,
        ]
        if host_json is not None:
            args += ["--host-json", str(host_json)]
        if function_key is not None:
            args += ["--function-key", function_key]
        if not prepare_storage:
            args.append("--no-prepare-storage")
        log = tempfile.NamedTemporaryFile("w+", prefix="keyguard-host-", suffix=".log")  # noqa: SIM115
        process = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        line = _first_line(process, timeout)
        host = cls({}, process=process, log=log)
        try:
            host.info = json.loads(line)
        except ValueError:
            logs = host.logs()
            host.stop()
            raise LocalHostError(
                f"local host did not start (exit {process.returncode}):\n{logs[-4000:]}"
            ) from None
        return host

    @classmethod
    def _start_in_process(
        cls,
        app_module: str,
        env: Mapping[str, str],
        port: int,
        host_json: Path | str | None,
        function_key: str | None,
        cloudevents: str,
        prepare_storage: bool,
    ) -> LocalHost:
        from local.host.runtime import HostRuntime

        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            runtime = HostRuntime.start(
                app_module,
                port=port,
                host_json=host_json,
                function_key=function_key,
                cloudevents=cloudevents,
                prepare_storage=prepare_storage,
            )
        except BaseException:
            _restore(saved)
            raise
        return cls(runtime.describe(), runtime=runtime, saved_env=saved)

    def kill(self) -> None:
        """SIGKILL a subprocess host (chaos): no cleanup, in-flight messages stay leased."""
        if self._process is None:
            raise LocalHostError("kill() needs a subprocess host")
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(10)
        self._close()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the host cleanly (SIGTERM; SIGKILL after ``timeout``); safe to call twice."""
        if self._runtime is not None:
            self._runtime.stop()
            self._runtime = None
            _restore(self._saved_env)
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout)
        self._close()

    def _close(self) -> None:
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()

    def close_log(self) -> None:
        """Delete the subprocess log file (after :meth:`stop`; :meth:`logs` is then empty)."""
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> LocalHost:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self.close_log()


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line, or '' if the process exits or stays silent for ``timeout``."""
    result: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return result[0] if result else ""


def _restore(saved: Mapping[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
