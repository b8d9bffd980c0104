"""Load a Functions app and invoke its functions the way the Python worker does.

The host's only source of wiring is what the app registers: ``app.get_functions()`` (called
once — a second call on the same ``FunctionApp`` raises) and each function's binding JSON
(``get_function_json()``). :class:`FunctionSpec` keeps the trigger binding and the output
bindings; :class:`Invoker` calls the user function with the trigger input under the
trigger's ``name``, a :class:`OutBinding` per ``queue`` output, and sends what the function
set to its queue only after the invocation succeeded (as the host does).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import azure.functions as func

from local.host.storage import QueueSender
from shared.errors import KeyguardError

log = logging.getLogger("keyguard.localhost")

TRIGGER_TYPES: Final = frozenset(
    {"eventGridTrigger", "queueTrigger", "timerTrigger", "httpTrigger"}
)


class HostError(KeyguardError):
    """The app cannot be loaded or one of its bindings is not supported by the local host."""


@dataclass(frozen=True)
class FunctionSpec:
    """One function as registered by the app.

    Attributes
    ----------
    name:
        The function name (``@app.function_name`` or the Python name).
    user_function:
        The decorated Python callable.
    trigger:
        The trigger's binding JSON (``type``, ``name`` and the trigger's settings).
    outputs:
        Output bindings (``queue``, ``http``) as binding JSON.
    unsupported:
        Binding types the local host cannot supply; invoking the function raises.
    """

    name: str
    user_function: Callable[..., Any]
    trigger: dict[str, Any]
    outputs: tuple[dict[str, Any], ...]
    unsupported: tuple[str, ...] = ()

    @property
    def trigger_type(self) -> str:
        """``eventGridTrigger``, ``queueTrigger``, ``timerTrigger`` or ``httpTrigger``."""
        return str(self.trigger["type"])


def load_app(target: str) -> Any:
    """Import ``module`` or ``module:attr`` and return its ``FunctionApp`` (attr default ``app``).

    Importing re-runs a module already imported in this process, so each host gets a fresh
    ``FunctionApp`` on which ``get_functions()`` has not been called yet.

    Raises
    ------
    HostError
        When the module cannot be imported or has no such app object.
    """
    module_name, _, attr = target.partition(":")
    attr = attr or "app"
    try:
        if module_name in sys.modules:
            module = importlib.reload(sys.modules[module_name])
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:  # the app's own import-time error, e.g. a ConfigError
        raise HostError(f"cannot import app module {module_name!r}: {exc}") from exc
    app = getattr(module, attr, None)
    if app is None or not hasattr(app, "get_functions"):
        raise HostError(f"{module_name!r} has no FunctionApp named {attr!r}")
    return app


def function_specs(app: Any) -> list[FunctionSpec]:
    """Build the function table from ``app.get_functions()`` (call once per app object).

    Raises
    ------
    HostError
        A function without a trigger the local host knows.
    """
    specs = []
    for function in app.get_functions():
        name = function.get_function_name()
        bindings = json.loads(function.get_function_json())["bindings"]
        triggers = [b for b in bindings if b["type"] in TRIGGER_TYPES]
        if len(triggers) != 1:
            kinds = sorted({b["type"] for b in bindings})
            raise HostError(f"function {name}: no supported trigger among {kinds}")
        outputs = [b for b in bindings if b is not triggers[0] and b["type"] in {"queue", "http"}]
        unsupported = [
            b["type"]
            for b in bindings
            if b is not triggers[0] and b["type"] not in {"queue", "http"}
        ]
        if unsupported:
            log.warning("function %s: bindings %s are not supported locally", name, unsupported)
        specs.append(
            FunctionSpec(
                name, function.get_user_function(), triggers[0], tuple(outputs), tuple(unsupported)
            )
        )
    return specs


class OutBinding(func.Out):  # type: ignore[type-arg]
    """The ``func.Out[...]`` the worker passes for an output binding."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        """Set the value to send when the invocation succeeds."""
        self._value = val

    def get(self) -> Any:
        """The value set so far (None if unset)."""
        return self._value


@dataclass(frozen=True)
class _Context:
    """The ``context`` argument (``func.Context`` fields the local host can fill)."""

    invocation_id: str
    function_name: str
    function_directory: str
    trace_context: Any = None
    retry_context: Any = None
    thread_local_storage: Any = None


class Invoker:
    """Calls user functions with their bindings and logs each invocation.

    Parameters
    ----------
    env:
        App settings used to resolve binding ``connection`` names.
    encoding:
        ``messageEncoding`` for queue output bindings (``base64`` or ``none``).
    """

    def __init__(self, env: Mapping[str, str], *, encoding: str = "base64") -> None:
        self._sender = QueueSender(env, encoding=encoding)

    def invoke(self, spec: FunctionSpec, trigger_input: Any) -> Any:
        """Run one invocation; on success send the queue outputs; return the ``$return`` value.

        Raises
        ------
        Exception
            Whatever the function raised (the caller maps it to a retry or a 500).
        """
        invocation_id = str(uuid.uuid4())
        started = time.monotonic()
        outcome = "Failed"
        try:
            if spec.unsupported:
                raise HostError(f"function {spec.name}: unsupported bindings {spec.unsupported}")
            kwargs: dict[str, Any] = {spec.trigger["name"]: trigger_input}
            outs = {b["name"]: OutBinding() for b in spec.outputs if b["type"] == "queue"}
            kwargs.update(outs)
            params = inspect.signature(spec.user_function).parameters
            if "context" in params and "context" not in kwargs:
                kwargs["context"] = _Context(invocation_id, spec.name, ".")
            result = spec.user_function(**kwargs)
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
            for binding in spec.outputs:
                if binding["type"] == "queue" and outs[binding["name"]].get() is not None:
                    self._sender.send(binding, outs[binding["name"]].get())
            outcome = "Succeeded"
            return result
        finally:
            log.info(
                "Executed '%s' (%s, Id=%s, Duration=%dms)",
                spec.name,
                outcome,
                invocation_id,
                (time.monotonic() - started) * 1000,
            )


async def _await(awaitable: Any) -> Any:
    return await awaitable
