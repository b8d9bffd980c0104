"""The host itself, in this process: load the app, start the front door and the listeners.

:class:`HostRuntime` is what ``python -m local.host`` runs and what
``LocalHost.start(..., in_process=True)`` uses. It reads the app's registrations once
(``app.get_functions()``), builds one listener per queue and timer function, and the HTTP
front door for Event Grid and HTTP functions.

Not done locally: ``functionTimeout`` is not enforced (a Python thread cannot be stopped;
it only sets the queue lease), the ``eventgrid_extension`` system key is not required on the
webhook (``func start`` does not either), identity-based binding connections, and bindings
other than the four triggers and ``queue``/``http`` outputs (a function using one is listed
but fails when invoked, naming the binding).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.host.app_loader import FunctionSpec, Invoker, function_specs, load_app
from local.host.config import HostConfig, load_host_config
from local.host.eventgrid import CLOUDEVENT_MODES
from local.host.queues import QueueListener
from local.host.routes import build_route
from local.host.storage import prepare_keyguard_storage
from local.host.timers import TimerListener
from local.host.webhook import FrontDoor

log = logging.getLogger("keyguard.localhost")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class HostRuntime:
    """A running host. Build with :meth:`start`; stop with :meth:`stop`."""

    app_target: str
    config: HostConfig
    specs: list[FunctionSpec]
    front_door: FrontDoor
    function_key: str
    listeners: list[Any] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.front_door.port}"

    @classmethod
    def start(
        cls,
        app_target: str = "function_app",
        *,
        port: int = 0,
        host_json: Path | str | None = None,
        env: Mapping[str, str] | None = None,
        function_key: str | None = None,
        cloudevents: str = "native",
        prepare_storage: bool = True,
    ) -> HostRuntime:
        """Load the app and start serving and polling.

        Parameters
        ----------
        app_target:
            ``module`` or ``module:attr`` (attr defaults to ``app``).
        port:
            Front-door port on 127.0.0.1; 0 picks a free one.
        host_json:
            host.json to honour; default the repository's.
        env:
            App settings; default ``os.environ`` (the app itself reads ``os.environ``).
        function_key:
            Key for ``function``-level HTTP functions; default a random one.
        cloudevents:
            ``native`` or ``eventgrid`` (see :mod:`local.host.eventgrid`).
        prepare_storage:
            Create Keyguard's queues, tables and containers in ``AzureWebJobsStorage`` first
            (what ``infra/`` does in Azure).

        Raises
        ------
        HostError, HostConfigError, CronError, BindingConnectionError
            The app or its configuration cannot be served.
        """
        if cloudevents not in CLOUDEVENT_MODES:
            raise ValueError(f"cloudevents must be one of {CLOUDEVENT_MODES}")
        settings = os.environ if env is None else env
        config = load_host_config(host_json or REPO_ROOT / "host.json")
        specs = function_specs(load_app(app_target))
        if prepare_storage:
            prepare_keyguard_storage(settings)
        invoker = Invoker(settings, encoding=config.queues.message_encoding)
        key = function_key or secrets.token_urlsafe(24)
        door = FrontDoor(
            port,
            invoker=invoker,
            eventgrid_functions={s.name: s for s in specs if s.trigger_type == "eventGridTrigger"},
            routes=[build_route(s) for s in specs if s.trigger_type == "httpTrigger"],
            function_key=key,
            cloudevents=cloudevents,
            timer_functions={s.name: s for s in specs if s.trigger_type == "timerTrigger"},
        )
        runtime = cls(app_target, config, specs, door, key)
        try:
            for spec in specs:
                if spec.trigger_type == "queueTrigger":
                    runtime.listeners.append(QueueListener(spec, invoker, config, settings))
                elif spec.trigger_type == "timerTrigger":
                    runtime.listeners.append(TimerListener(spec, invoker, settings))
            door.start()
            for listener in runtime.listeners:
                listener.start()
        except BaseException:
            runtime.stop()
            raise
        log.info("local host for %s listening on %s", app_target, runtime.base_url)
        return runtime

    def stop(self) -> None:
        """Stop the listeners (waiting for running invocations) and the front door."""
        for listener in self.listeners:
            listener.stop()
        self.front_door.stop()

    def describe(self) -> dict[str, Any]:
        """Where the host listens and what it serves (``--print-json``)."""
        functions = []
        for spec in self.specs:
            entry: dict[str, Any] = {"name": spec.name, "trigger": spec.trigger_type}
            if spec.trigger_type == "eventGridTrigger":
                entry["webhook_url"] = (
                    f"{self.base_url}/runtime/webhooks/EventGrid?functionName={spec.name}"
                )
            elif spec.trigger_type == "httpTrigger":
                entry["url"] = f"{self.base_url}/api/{build_route(spec).template.strip('/')}"
            elif spec.trigger_type == "queueTrigger":
                entry["queue"] = spec.trigger.get("queueName")
            elif spec.trigger_type == "timerTrigger":
                entry["schedule"] = next(
                    (
                        t.expression
                        for t in self.listeners
                        if getattr(t, "spec", None) is spec and isinstance(t, TimerListener)
                    ),
                    spec.trigger.get("schedule"),
                )
            functions.append(entry)
        return {
            "base_url": self.base_url,
            "port": self.front_door.port,
            "function_key": self.function_key,
            "pid": os.getpid(),
            "functions": functions,
        }
