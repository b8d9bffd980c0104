"""HTTP trigger routing: ``/api/{route}`` templates, methods and function keys.

Route templates follow ASP.NET's basics: literal segments, ``{name}``, optional
``{name?}``, constrained ``{name:int}`` (the constraint is checked for ``int``/``alpha``/
``guid`` and otherwise ignored) and a catch-all ``{*rest}``. A function without a route is at
``/api/<function name>``. ``authLevel`` ``function`` or ``admin`` requires the host's key in
``?code=`` or the ``x-functions-key`` header (locally one key serves both levels);
``anonymous`` requires none.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Final

from local.host.app_loader import FunctionSpec

_CONSTRAINTS: Final = {
    "int": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "guid": r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}",
}
_PARAM: Final = re.compile(r"^\{(\*?)([A-Za-z_]\w*)(?::(\w+))?(\?)?\}$")


@dataclass(frozen=True)
class HttpRoute:
    """One HTTP function's route."""

    spec: FunctionSpec
    template: str
    pattern: re.Pattern[str]
    methods: frozenset[str] | None
    needs_key: bool

    def match(self, path: str) -> dict[str, str] | None:
        """Route parameters when ``path`` (after ``/api/``) matches, else None."""
        found = self.pattern.fullmatch(path.strip("/"))
        if found is None:
            return None
        return {k: v for k, v in found.groupdict().items() if v is not None}


def _compile(template: str) -> re.Pattern[str]:
    regex = ""
    for index, segment in enumerate(template.strip("/").split("/")):
        sep = "/" if index else ""
        param = _PARAM.match(segment)
        if param is None:
            regex += sep + re.escape(segment)
            continue
        catch_all, name, constraint, optional = param.groups()
        body = ".*" if catch_all else _CONSTRAINTS.get((constraint or "").lower(), "[^/]+")
        group = f"(?P<{name}>{body})"
        regex += f"(?:{sep}{group})?" if optional or catch_all else sep + group
    return re.compile(regex)


def build_route(spec: FunctionSpec) -> HttpRoute:
    """The route for an ``httpTrigger`` function from its binding JSON."""
    binding = spec.trigger
    template = str(binding.get("route") or spec.name)
    methods = binding.get("methods")
    level = str(binding.get("authLevel", "FUNCTION")).upper()
    return HttpRoute(
        spec=spec,
        template=template,
        pattern=_compile(template),
        methods=frozenset(m.upper() for m in methods) if methods else None,
        needs_key=level != "ANONYMOUS",
    )


def key_ok(route: HttpRoute, key: str, supplied: str | None) -> bool:
    """True when the route is anonymous or ``supplied`` is the host key (constant time)."""
    if not route.needs_key:
        return True
    return supplied is not None and hmac.compare_digest(supplied.encode(), key.encode())
