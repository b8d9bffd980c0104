"""What Keyguard's code calls in Azure, read from the code itself, for the grant tests.

1. **Scan**: every ``<client>.<operation group>.<operation>`` in ``shared/``, ``handlers/`` and
   ``function_app.py`` (a call or a reference, e.g. ``lister = client.vaults.list``) whose
   group is an operation group of one of the management clients ``shared/clients.py`` builds
   and whose operation is a method of that group; and every ``KeyClient``/``SecretClient``
   method named on anything (``self._client.begin_recover_deleted_key``). ``self.<group>``
   is a Keyguard attribute (``self.disks`` is a dict), not a client, and is skipped.
2. **Capture**: each management operation is called on the real SDK client with a transport
   that records the request and answers nothing, so its HTTP method and URL are the SDK's
   own. :func:`local.azure.arm_rbac.arm_action` turns them into ARM's action and scope (the
   same derivation the local Azure enforces).
3. **Raw requests**: every ``send_request`` the code names (a call the SDK has no operation
   for, e.g. the Recovery Services vault's own GET) must be in :data:`RAW_REQUESTS`, keyed by
   file and enclosing function, with the client it goes through and the path it sends
   (its URL is a runtime id); its HTTP method is read from the code's
   ``HttpRequest("GET", ...)`` literal. One not listed fails the test (fail closed), and so
   does a listed one the code no longer makes.
4. The scope of an operation whose URL takes a caller-given ``scope``/id (Authorization's
   ``list_for_scope``, ``create``, ``get_by_id``, ``list``) is what Keyguard's code passes:
   :data:`RUNTIME_SCOPES` says which kind; an operation with such a parameter and no entry
   fails the test, so a new call cannot slip through unmapped.

Nothing here is a list of actions: add an SDK call to the code and its action appears; give
it no grant in infra/ and ``test_arm_grants`` fails.
"""

from __future__ import annotations

import ast
import inspect
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from local.azure.arm_rbac import arm_action

REPO = Path(__file__).resolve().parents[2]
CODE = [REPO / "shared", REPO / "handlers", REPO / "function_app.py"]

SUB = "00000000-0000-0000-0000-00000000c0de"
RG = "rg-x"
VAULT_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/kv-x"
ROLE_ID = (
    f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
    "11111111-1111-1111-1111-111111111111"
)

#: scope kinds: where infra/ can grant (subscription, one Key Vault, one Recovery Services vault)
SUBSCRIPTION, KEY_VAULT, RECOVERY_VAULT = "subscription", "keyvault", "recoveryvault"

#: (group, operation) -> (parameter, value) for operations whose URL scope is a caller-given
#: id: the kind of scope Keyguard's code passes (shared/access/readers.py, remediate.py)
RUNTIME_SCOPES: dict[tuple[str, str], tuple[str, str]] = {
    # verify lists Backup's assignments and the deny assignments at the vault
    ("role_assignments", "list_for_scope"): ("scope", VAULT_ID),
    ("deny_assignments", "list_for_scope"): ("scope", VAULT_ID),
    # remediation assigns the Backup role at the vault
    ("role_assignments", "create"): ("scope", VAULT_ID),
    # an assignment's roleDefinitionId is subscription-level (as ARM answers it)
    ("role_definitions", "get_by_id"): ("role_id", ROLE_ID),
    # the Backup role is looked up by name at the vault's subscription
    ("role_definitions", "list"): ("scope", f"/subscriptions/{SUB}"),
}

RSV_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.RecoveryServices/vaults/rsv-x"
)

#: (path, enclosing function) of each raw ``send_request`` -> (client class, the URL path it
#: sends, as Keyguard's code builds it from a runtime id)
RAW_REQUESTS: dict[tuple[str, str], tuple[str, str]] = {
    # the vault CMK check reads the Recovery Services vault itself (the backup SDK has no
    # vault operation): GET {rsv_id}
    ("shared/inventory/azure_read.py", "recovery_vault"): ("RecoveryServicesBackupClient", RSV_ID),
}

#: the group of a :class:`Use` that is a raw ``send_request``
RAW = "send_request"

#: names of URL parameters that take a caller-given id (need a RUNTIME_SCOPES entry)
_ID_PARAMETERS = {"scope", "role_id", "role_definition_id", "resource_id"}


@dataclass(frozen=True)
class Use:
    """One place the code names an SDK operation."""

    client: str  # the management client class, or KeyClient/SecretClient
    group: str  # operation group ("" for the Key Vault data-plane clients, RAW for send_request)
    operation: str  # for RAW: the HTTP method
    where: str  # path:line
    path: str = ""  # for RAW: the URL path sent (RAW_REQUESTS)


@dataclass(frozen=True)
class Need:
    """An ARM action Keyguard needs, at a kind of scope, and the call sites that need it."""

    action: str
    kind: str
    uses: tuple[str, ...]


def _management_clients() -> dict[str, Any]:
    """The management clients shared/clients.py builds, constructed offline."""
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.keyvault import KeyVaultManagementClient
    from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

    return {
        cls.__name__: cls
        for cls in (
            KeyVaultManagementClient,
            ComputeManagementClient,
            AuthorizationManagementClient,
            RecoveryServicesBackupClient,
        )
    }


class _Credential:
    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("token", 4102444800)


class _Captured(Exception):
    def __init__(self, method: str, url: str) -> None:
        super().__init__(f"{method} {url}")
        self.method = method
        self.url = url


class _CaptureTransport:
    """An azure-core transport that records the request and answers nothing."""

    def __enter__(self) -> _CaptureTransport:
        return self

    def __exit__(self, *args: Any) -> None:
        return None

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def send(self, request: Any, **kwargs: Any) -> Any:
        raise _Captured(request.method, request.url)


@cache
def _client(name: str) -> Any:
    from azure.core.pipeline.transport import HttpTransport

    transport = type("Capture", (_CaptureTransport, HttpTransport), {})()
    return _management_clients()[name](
        _Credential(), SUB, transport=transport, retry_total=0, base_url="https://arm.example"
    )


@cache
def operation_groups() -> dict[str, tuple[str, frozenset[str]]]:
    """group attribute -> (client class name, its public operations)."""
    groups: dict[str, tuple[str, frozenset[str]]] = {}
    for name in _management_clients():
        client = _client(name)
        for attr in dir(client):
            if attr.startswith("_"):
                continue
            try:
                group = getattr(client, attr)
            except Exception:
                continue
            if not type(group).__name__.endswith("Operations"):
                continue
            ops = frozenset(
                m for m, _ in inspect.getmembers(type(group), callable) if not m.startswith("_")
            )
            if attr in groups and groups[attr][0] != name:
                # e.g. "operations" (every client's): ambiguous, so a use of it fails below
                groups[attr] = (f"{groups[attr][0]}|{name}", groups[attr][1] | ops)
            else:
                groups[attr] = (name, ops)
    return groups


@cache
def _data_plane_methods() -> dict[str, str]:
    from azure.keyvault.keys import KeyClient
    from azure.keyvault.secrets import SecretClient

    out: dict[str, str] = {}
    for cls in (KeyClient, SecretClient):
        for m, _ in inspect.getmembers(cls, callable):
            if not m.startswith("_") and m not in ("close", "send_request"):
                out[m] = cls.__name__
    return out


def _files() -> Iterator[Path]:
    for root in CODE:
        if root.is_file():
            yield root
        else:
            yield from sorted(root.rglob("*.py"))


def _enclosing(tree: ast.AST) -> dict[ast.AST, str]:
    """node -> the name of the innermost function around it."""
    out: dict[ast.AST, str] = {}

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else None
            out[child] = name or function
            visit(child, name or function)

    visit(tree, "")
    return out


def _raw_method(call: ast.AST | None, where: str) -> str:
    """The HTTP method of ``x.send_request(HttpRequest("GET", ...))``; anything else fails."""
    if isinstance(call, ast.Call) and call.args:
        request = call.args[0]
        if (
            isinstance(request, ast.Call)
            and isinstance(request.func, ast.Name)
            and request.func.id == "HttpRequest"
            and request.args
            and isinstance(request.args[0], ast.Constant)
            and isinstance(request.args[0].value, str)
        ):
            return request.args[0].value.upper()
    raise AssertionError(
        f'{where}: send_request not called as send_request(HttpRequest("<METHOD>", url)): '
        "the grant test cannot tell what it sends"
    )


def uses() -> list[Use]:
    """Every SDK operation the code names (see the module docstring)."""
    groups = operation_groups()
    data_plane = _data_plane_methods()
    found: list[Use] = []
    raw_seen: set[tuple[str, str]] = set()
    for path in _files():
        tree = ast.parse(path.read_text(), filename=str(path))
        where = str(path.relative_to(REPO))
        enclosing = _enclosing(tree)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            if node.attr == RAW:
                key = (where, enclosing.get(node, ""))
                site = f"{where}:{node.lineno}"
                if key not in RAW_REQUESTS:
                    raise AssertionError(
                        f"{site}: a raw send_request in {key[1] or 'module scope'}() is not in "
                        "tests/infra/code_calls.py RAW_REQUESTS: say which client and path it "
                        "sends, so its ARM action is granted and enforced"
                    )
                parent = parents.get(node)
                call = parent if isinstance(parent, ast.Call) and parent.func is node else None
                client, sent = RAW_REQUESTS[key]
                found.append(Use(client, RAW, _raw_method(call, site), site, sent))
                raw_seen.add(key)
                continue
            inner = node.value
            if isinstance(inner, ast.Attribute) and inner.attr in groups:
                client, ops = groups[inner.attr]
                is_self = isinstance(inner.value, ast.Name) and inner.value.id == "self"
                if node.attr in ops and not is_self:
                    if "|" in client:
                        raise AssertionError(
                            f"{where}:{node.lineno}: {inner.attr}.{node.attr} is on {client}; "
                            "name the client's group unambiguously"
                        )
                    found.append(Use(client, inner.attr, node.attr, f"{where}:{node.lineno}"))
                    continue
            if node.attr in data_plane:
                found.append(Use(data_plane[node.attr], "", node.attr, f"{where}:{node.lineno}"))
    stale = set(RAW_REQUESTS) - raw_seen
    if stale:
        raise AssertionError(
            f"RAW_REQUESTS lists send_request calls the code no longer makes: {stale}"
        )
    return found


def request_for(use: Use) -> tuple[str, str]:
    """The (method, path) one management-plane use sends (raw or through an operation)."""
    if use.group == RAW:
        return use.operation, use.path
    return request_of(use.client, use.group, use.operation)


def _arguments(group: str, operation: str, fn: Callable[..., Any]) -> dict[str, Any]:
    """Plausible arguments for the required parameters of one SDK operation."""
    runtime = RUNTIME_SCOPES.get((group, operation))
    kwargs: dict[str, Any] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is not p.empty:
            continue
        if runtime is not None and p.name == runtime[0]:
            kwargs[p.name] = runtime[1]
        elif p.name in _ID_PARAMETERS:
            raise AssertionError(
                f"{group}.{operation} takes a caller-given {p.name}: say in "
                "tests/infra/code_calls.py RUNTIME_SCOPES which scope Keyguard passes"
            )
        elif p.name == "resource_group_name":
            kwargs[p.name] = RG
        elif p.name == "operation_kind":
            kwargs[p.name] = "add"
        elif p.name in ("parameters", "properties", "body", "filter"):
            kwargs[p.name] = io.BytesIO(b"{}") if p.name != "filter" else "x"
        else:
            kwargs[p.name] = f"{p.name.replace('_', '-')}-x"
    return kwargs


@cache
def request_of(client: str, group: str, operation: str) -> tuple[str, str]:
    """The (method, path) the real SDK sends for one management operation."""
    from urllib.parse import urlsplit

    fn = getattr(getattr(_client(client), group), operation)
    kwargs = _arguments(group, operation, fn)
    try:
        result = fn(**kwargs)
        next(iter(result))  # a pager sends on first iteration
    except _Captured as captured:
        return captured.method, urlsplit(captured.url).path
    except Exception as exc:  # the transport's exception, wrapped by azure-core
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, _Captured):
                return cause.method, urlsplit(cause.url).path
            cause = cause.__cause__ or cause.__context__
        raise
    raise AssertionError(f"{group}.{operation} sent no request")


def scope_kind(scope: str) -> str:
    """Where infra/ must grant an action needed at ``scope``.

    Below a Key Vault or a Recovery Services vault: that vault. Anything else (the
    subscription itself, compute resources, which Keyguard also lists subscription-wide):
    the subscription.
    """
    lowered = scope.lower()
    if "/providers/microsoft.keyvault/vaults/" in lowered:
        return KEY_VAULT
    if "/providers/microsoft.recoveryservices/vaults/" in lowered:
        return RECOVERY_VAULT
    return SUBSCRIPTION


def arm_needs() -> list[Need]:
    """The ARM actions the code's management-plane calls need, by scope kind."""
    by_key: dict[tuple[str, str], list[str]] = {}
    for use in uses():
        if not use.group:
            continue
        method, path = request_for(use)
        action, scope = arm_action(method, path)
        kind = scope_kind(scope)
        by_key.setdefault((action.lower(), kind), []).append(
            f"{use.group}.{use.operation} ({use.where}) -> {action}"
        )
    return [
        Need(action, kind, tuple(sorted(set(sites)))) for (action, kind), sites in by_key.items()
    ]


#: KeyClient/SecretClient method -> the data-plane operation (local/azure/keyvault_access.py
#: PERMISSIONS key) it performs; a method the code names that is missing here fails the test
DATA_PLANE_OPERATIONS: dict[str, str] = {
    "get_key": "get",
    "get_secret": "get",
    "list_properties_of_keys": "list",
    "list_properties_of_secrets": "list",
    "list_properties_of_key_versions": "list",
    "list_properties_of_secret_versions": "list",
    "update_key_properties": "update",
    "update_secret_properties": "update",
    "get_deleted_key": "getdeleted",
    "get_deleted_secret": "getdeleted",
    "list_deleted_keys": "listdeleted",
    "list_deleted_secrets": "listdeleted",
    "begin_recover_deleted_key": "recover",
    "begin_recover_deleted_secret": "recover",
    "backup_key": "backup",
    "backup_secret": "backup",
    "get_key_rotation_policy": "getrotationpolicy",
}


def data_plane_needs() -> dict[tuple[str, str], list[str]]:
    """(kind "key"|"secret", operation) -> call sites, for the data-plane calls the code names."""
    out: dict[tuple[str, str], list[str]] = {}
    for use in uses():
        if use.group:
            continue
        if use.operation not in DATA_PLANE_OPERATIONS:
            raise AssertionError(
                f"{use.where} names {use.client}.{use.operation}: add it to "
                "tests/infra/code_calls.py DATA_PLANE_OPERATIONS (its Key Vault permission)"
            )
        kind = "key" if use.client == "KeyClient" else "secret"
        out.setdefault((kind, DATA_PLANE_OPERATIONS[use.operation]), []).append(use.where)
    return out
