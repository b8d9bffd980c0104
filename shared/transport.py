"""HTTP transport options every Azure SDK client here shares.

azure-core's ``RequestsTransport`` leaves ``requests``' ``trust_env`` on by default, and
``requests`` then re-reads the environment on **every request**: it scans all of
``os.environ`` twice for proxy variables (``get_environ_proxies``) and looks for
``~/.netrc``. Measured in the pipeline benchmark (cProfile, in-process), that was 14% of the
worker's time; in a threaded host each scan also hands the GIL around. On Functions the
environment holds every app setting, so the scan is longer there, not shorter.

The environment cannot change under a running worker in a way we honour anyway (settings are
read once at startup), so it is read once here: when no proxy or CA-bundle variable is set —
the normal case on Functions, where outbound traffic is routed by VNet integration, not by a
proxy — clients are built with ``use_env_settings=False`` and skip the per-request scans.
When one *is* set, clients keep azure-core's default and ``requests`` honours it as before.
Side effect of the fast path: ``~/.netrc`` credentials are never attached to Azure calls,
which is what a service calling Azure with tokens and shared keys wants anyway.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

#: Variables ``requests`` reads from the environment per request when ``trust_env`` is on.
ENV_VARIABLES: Final = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)


def environment_configures_http(environ: Mapping[str, str] | None = None) -> bool:
    """True when the environment sets a proxy or CA-bundle variable (either case)."""
    env = os.environ if environ is None else environ
    return any(env.get(name) or env.get(name.lower()) for name in ENV_VARIABLES)


def transport_options(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for SDK client constructors: ``use_env_settings`` (see above)."""
    return {"use_env_settings": environment_configures_http(environ)}
