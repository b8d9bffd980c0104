"""HTTP transport options every Azure SDK client here shares.

azure-core's ``RequestsTransport`` leaves ``requests``' ``trust_env`` on by default, and
``requests`` then re-reads the environment on **every request**: it scans all of
``os.environ`` twice for proxy variables (``get_environ_proxies``), looks for ``~/.netrc``
and for a CA bundle variable. Measured in the pipeline benchmark (cProfile, in-process), that
was 14% of the worker's time; in a threaded host each scan also hands the GIL around. On
Functions the environment holds every app setting, so the scan is longer there, not shorter.

Settings are read once at startup, and so is the environment here:

* no proxy variable set (the normal case on Functions, where outbound traffic is routed by
  VNet integration, not by a proxy): clients are built with ``use_env_settings=False`` and
  skip the per-request scans. A CA bundle named by ``REQUESTS_CA_BUNDLE`` or
  ``CURL_CA_BUNDLE`` (which ``requests`` would have used) is passed explicitly instead, with
  the same precedence, unless Keyguard's own ``KEYGUARD_CA_BUNDLE`` names one;
* a proxy variable set: clients keep azure-core's default and ``requests`` honours the
  environment per request, as before.

Side effect of the fast path: ``~/.netrc`` credentials are never attached to Azure calls,
which is what a service calling Azure with tokens and shared keys wants anyway.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

#: Proxy variables ``requests`` reads per request (upper or lower case) with ``trust_env``.
PROXY_VARIABLES: Final = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
#: CA bundle variables ``requests`` reads per request, in its order of precedence.
CA_VARIABLES: Final = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def environment_sets_proxy(environ: Mapping[str, str] | None = None) -> bool:
    """True when the environment sets a proxy variable (either case)."""
    env = os.environ if environ is None else environ
    return any(env.get(name) or env.get(name.lower()) for name in PROXY_VARIABLES)


def transport_options(
    ca_bundle: str | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Keyword arguments for SDK client constructors (see the module docstring):
    ``use_env_settings`` and, when a CA bundle applies, ``connection_verify``."""
    env = os.environ if environ is None else environ
    proxied = environment_sets_proxy(env)
    options: dict[str, Any] = {"use_env_settings": proxied}
    if ca_bundle:
        options["connection_verify"] = ca_bundle
    elif not proxied:
        from_env = next((env[name] for name in CA_VARIABLES if env.get(name)), None)
        if from_env:
            options["connection_verify"] = from_env
    return options
