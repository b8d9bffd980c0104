"""Managed identity for the local Azure: the App Service token endpoint and token checks.

Keyguard authenticates with ``ManagedIdentityCredential``; in App Service / Functions that
credential reads ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` and sends
``GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource={resource}`` with the header
``X-IDENTITY-HEADER: {IDENTITY_HEADER}`` (msal 1.39 ``_obtain_token_on_app_service``).
This module answers that request on the plain-http identity listener, as App Service does:
``{"access_token", "expires_on", "resource", "token_type", "client_id"}``.

Tokens are unsigned JWT-shaped strings (``header.payload.``) carrying ``aud`` (the requested
resource), ``oid`` (the Keyguard principal of the scenario, ``principals.keyguard``),
``tid``, ``iat``/``nbf``/``exp``. They are never real credentials; the server checks their
audience and expiry on every ARM, Key Vault and Event Grid request with
:func:`authenticate`. Expiry uses real time, not the emulator clock: the SDK caches tokens
by real time, and advancing the emulator clock must not invalidate them.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from local.azure.core import ROUTER, AzureHttpError, Request, Response, World

#: audiences per surface (compared without a trailing slash)
ARM_AUDIENCE = "https://management.azure.com"
KEYVAULT_AUDIENCE = "https://vault.azure.net"
EVENTGRID_AUDIENCE = "https://eventgrid.azure.net"
AUDIENCES = {"arm": ARM_AUDIENCE, "keyvault": KEYVAULT_AUDIENCE, "eventgrid": EVENTGRID_AUDIENCE}

TOKEN_LIFETIME_SECONDS = 24 * 3600
IDENTITY_PATH = "/msi/token"


@dataclass
class IdentityState:
    """The identity endpoint's secret and the client id it reports."""

    header: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    issued: int = 0


def install(world: World) -> None:
    """Create ``world.identity`` once; it survives scenario reloads (the secret is in env)."""
    if getattr(world, "identity", None) is None:
        world.identity = IdentityState()  # type: ignore[attr-defined]


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_token(world: World, resource: str, *, lifetime: int = TOKEN_LIFETIME_SECONDS) -> str:
    """An unsigned JWT-shaped access token for ``resource`` as the Keyguard principal."""
    now = int(time.time())
    state: IdentityState = world.identity  # type: ignore[attr-defined]
    claims = {
        "aud": resource,
        "iss": f"https://sts.windows.net/{world.tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "appid": state.client_id,
        "idtyp": "app",
        "oid": world.principals.get("keyguard", "00000000-0000-0000-0000-000000000000"),
        "sub": world.principals.get("keyguard", "00000000-0000-0000-0000-000000000000"),
        "tid": world.tenant_id,
        "uti": uuid.uuid4().hex,
        "ver": "1.0",
    }
    header = {"alg": "none", "typ": "JWT"}
    return f"{_b64(header)}.{_b64(claims)}."


def decode_token(token: str) -> dict[str, Any] | None:
    """The claims of a token made by :func:`make_token`; None when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def _norm(audience: str) -> str:
    return audience.rstrip("/").lower()


def keyvault_challenge(world: World) -> dict[str, str]:
    """The ``WWW-Authenticate`` header Key Vault answers an unauthenticated request with."""
    return {
        "WWW-Authenticate": (
            f'Bearer authorization="https://login.microsoftonline.com/{world.tenant_id}", '
            f'resource="{KEYVAULT_AUDIENCE}"'
        )
    }


def _arm_unauthorized(code: str, message: str) -> AzureHttpError:
    return AzureHttpError(
        401,
        code,
        message,
        headers={
            "WWW-Authenticate": (
                'Bearer authorization_uri="https://login.microsoftonline.com/", '
                f'error="invalid_token", error_description="{message}"'
            )
        },
    )


def authenticate(world: World, request: Request, surface: str) -> dict[str, Any]:
    """Check the bearer token of a request to ``surface``; return its claims.

    Raises
    ------
    AzureHttpError
        401 as the service answers it: Key Vault with its auth challenge (``Unauthorized``),
        ARM/Event Grid with ``AuthenticationFailed`` (no token),
        ``InvalidAuthenticationToken`` (unreadable token or wrong audience) or
        ``ExpiredAuthenticationToken``.
    """
    expected = AUDIENCES[surface]
    auth = request.header("authorization") or ""
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        if surface == "keyvault":
            raise AzureHttpError(
                401,
                "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token.",
                headers=keyvault_challenge(world),
            )
        raise _arm_unauthorized(
            "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
        )
    claims = decode_token(token.strip())
    if claims is None:
        raise _arm_unauthorized("InvalidAuthenticationToken", "The access token is invalid.")
    audience = str(claims.get("aud", ""))
    if _norm(audience) != _norm(expected):
        message = f"The access token has an invalid audience '{audience}'; expected '{expected}'."
        if surface == "keyvault":
            raise AzureHttpError(
                401,
                "InvalidAuthenticationToken",
                f"AKV10022: Invalid audience. Expected {expected}, found: {audience}.",
                headers=keyvault_challenge(world),
            )
        raise _arm_unauthorized("InvalidAuthenticationToken", message)
    if int(claims.get("exp", 0)) < time.time():
        raise _arm_unauthorized(
            "ExpiredAuthenticationToken", "The access token expiry UTC time is in the past."
        )
    return claims


@ROUTER.route("GET", IDENTITY_PATH, name="identity.token", surface="identity")
def token(world: World, request: Request) -> Response:
    """The App Service managed identity endpoint (api-version 2019-08-01)."""
    state: IdentityState = world.identity  # type: ignore[attr-defined]
    secret = request.header("x-identity-header")
    if secret is None:
        return Response(400, {"statusCode": 400, "message": "X-IDENTITY-HEADER is required."})
    if not secrets.compare_digest(secret, state.header):
        return Response(401, {"statusCode": 401, "message": "X-IDENTITY-HEADER is invalid."})
    if request.query.get("api-version") != "2019-08-01":
        return Response(400, {"statusCode": 400, "message": "api-version 2019-08-01 is required."})
    resource = request.query.get("resource", "")
    if not resource:
        return Response(400, {"statusCode": 400, "message": "resource is required."})
    state.issued += 1
    expires_on = int(time.time()) + TOKEN_LIFETIME_SECONDS
    return Response(
        200,
        {
            "access_token": make_token(world, resource),
            "expires_on": str(expires_on),
            "resource": resource,
            "token_type": "Bearer",
            # a user-assigned identity is asked for by client_id; echo it as App Service does
            "client_id": request.query.get("client_id") or state.client_id,
        },
    )
