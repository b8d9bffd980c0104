"""Keyguard's grants as infra/ deploys them, read from the Bicep (never a second list).

:func:`keyguard_grants` parses ``infra/main.bicep`` and the grant modules with pycep (a dev
dependency, imported on first use; the parse is cached per process) and evaluates the few
expressions they use (parameters, variables, ``concat``, ``a ? b : c``, ``==``, ``&&``,
``||``, ``!``) for given switches (``remediation``, ``escrow``, ``enablePurgeProtection``),
returning, per kind of scope, the custom roles Keyguard is assigned there with their actions,
data actions, the assignment's ``if (...)`` (evaluated later per vault: ``rbac``) and ABAC
condition; and the access-policy entry added on access-policy vaults.

Used by the local Azure (:func:`infra_allows`: Keyguard's principal holds exactly these
grants over every scenario's resources, so a grant missing from infra/ fails a test as it
would fail in Azure) and by ``tests/infra/test_arm_grants.py`` (the grants must equal what
the code's calls need).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.azure.core import Request, World

INFRA = Path(__file__).resolve().parents[2] / "infra"
MAIN = INFRA / "main.bicep"

#: main.bicep's parameter looped over by a grant module -> the kind of scope it grants at
LOOP_KINDS = {
    "watchedSubscriptions": "subscription",
    "keyVaults": "keyvault",
    "recoveryVaultIds": "recoveryvault",
}

#: every switch on: what a deployment with remediation, escrow and purge protection grants
ALL_ON = {"remediation": "true", "escrow": "true", "enablePurgeProtection": "true"}


@dataclass(frozen=True)
class Grant:
    """One role assignment infra/ gives Keyguard's identity at one kind of scope."""

    kind: str
    module: str  # the module's symbolic name in main.bicep
    resource: str  # the roleAssignments resource's symbolic name in the module
    role: str  # the roleDefinitions resource's symbolic name in main.bicep
    role_guid_name: str  # Bicep expression text naming the role GUID (for messages)
    actions: tuple[str, ...]
    data_actions: tuple[str, ...]
    #: the assignment's ``if (...)`` as a pycep tree (None: always), over the module's params
    when: Any = None
    #: the ABAC condition's text (``${param}`` interpolations left in), or None
    abac: str | None = None
    #: module params as evaluated in main.bicep (switches), for :meth:`applies`
    module_params: dict[str, Any] = field(default_factory=dict)

    def applies(self, **per_scope: Any) -> bool:
        """Whether the assignment is deployed for one scope (e.g. ``rbac=True``)."""
        if self.when is None:
            return True
        return bool(_Eval({}, {}, {**self.module_params, **per_scope})(self.when))


@dataclass(frozen=True)
class AccessPolicy:
    """The access-policy entry infra/ adds for Keyguard on access-policy vaults."""

    keys: tuple[str, ...]
    secrets: tuple[str, ...]
    when: Any = None
    module_params: dict[str, Any] = field(default_factory=dict)

    def applies(self, **per_scope: Any) -> bool:
        if self.when is None:
            return True
        return bool(_Eval({}, {}, {**self.module_params, **per_scope})(self.when))


@dataclass(frozen=True)
class InfraGrants:
    """Everything infra/ grants Keyguard that ARM and Key Vault check."""

    grants: tuple[Grant, ...]
    access_policy: AccessPolicy | None


@cache
def _parser() -> Any:
    from pycep import BicepParser

    return BicepParser()


@cache
def parse(path: Path) -> dict[str, Any]:
    """The pycep tree of one Bicep file (cached)."""
    tree: dict[str, Any] = _parser().parse(file_path=path)
    return tree


def _body(declaration: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = declaration["config"]
    while "config" in config and ("loop_type" in config or "condition" in config):
        config = config["config"]
    return config


def _condition(declaration: dict[str, Any]) -> Any:
    config = declaration["config"]
    while "config" in config and ("loop_type" in config or "condition" in config):
        if config.get("condition") is not None:
            return config["condition"]
        config = config["config"]
    return None


def _loop_array(declaration: dict[str, Any]) -> str | None:
    loop = declaration["config"].get("loop_type")
    return str(loop["detail"]["array_name"]) if loop else None


def _leaves(expr: Any) -> list[str]:
    if isinstance(expr, str):
        return [expr]
    if isinstance(expr, list):
        return [leaf for item in expr for leaf in _leaves(item)]
    if isinstance(expr, dict):
        is_call = "parameters" in expr or "operands" in expr
        return [
            leaf
            for key, value in expr.items()
            if not (is_call and key == "type")
            for leaf in _leaves(value)
        ]
    return []


class _Eval:
    """Evaluates the small subset of Bicep expressions the grants use; anything else raises."""

    def __init__(
        self, params: dict[str, Any], variables: dict[str, Any], values: dict[str, Any]
    ) -> None:
        self.params = params  # name -> declaration (for defaults)
        self.variables = variables  # name -> declaration
        self.values = values  # name -> given value

    def __call__(self, expr: Any) -> Any:
        if isinstance(expr, bool | int) or expr is None:
            return expr
        if isinstance(expr, str):
            if expr in self.values:
                return self.values[expr]
            if expr in self.variables:
                return self(self.variables[expr]["value"])
            if expr in self.params:
                return self.params[expr].get("default")
            return expr  # a string literal
        if isinstance(expr, list):
            return [self(item) for item in expr]
        if "bool_value" in expr:
            return self(expr["bool_value"])
        if "operator" in expr:
            return self._operator(expr["operator"]["type"], expr["operator"]["operands"], expr)
        if "function" in expr and expr["function"]["type"] == "concat":
            out: list[Any] = []
            for arg in expr["function"]["parameters"].values():
                out.extend(self(arg))
            return out
        raise ValueError(f"cannot evaluate {expr!r} (extend local/azure/authorization_infra.py)")

    def _operator(self, op: str, operands: dict[str, Any], expr: Any) -> Any:
        if op == "not":
            return not self(operands.get("bool_value", operands))
        if op == "and":
            return bool(self(operands["operand_1"])) and bool(self(operands["operand_2"]))
        if op == "or":
            return bool(self(operands["operand_1"])) or bool(self(operands["operand_2"]))
        if op == "equals":
            return self(operands["operand_1"]) == self(operands["operand_2"])
        if op == "conditional":
            chosen = "true_value" if self(operands["condition"]) else "false_value"
            return self(operands[chosen])
        raise ValueError(f"cannot evaluate {expr!r} (extend local/azure/authorization_infra.py)")


def _role_of(main: dict[str, Any], expr: Any) -> str:
    """The roleDefinitions resource a module parameter's value names (``role.name`` or a
    variable holding the same ``guid(...)`` as a role's name)."""
    roles = {
        name: decl
        for name, decl in main.get("resources", {}).items()
        if decl["type"] == "Microsoft.Authorization/roleDefinitions"
    }
    leaves = _leaves(expr)
    if len(leaves) == 2 and leaves[0] in roles and leaves[1] == "name":
        return leaves[0]
    if isinstance(expr, str):
        for name, decl in roles.items():
            if _body(decl).get("name") == expr:
                return name
    raise ValueError(
        f"role assignment names {expr!r}, not one of main.bicep's custom roles: Keyguard's "
        "grants are custom roles with exact actions (tests/infra/test_arm_grants.py)"
    )


def _module_role_param(body: dict[str, Any]) -> str:
    """The module parameter naming the assigned role in ``subscriptionResourceId(...)``."""
    leaves = [leaf for leaf in _leaves(body["properties"]["roleDefinitionId"])]
    params = [leaf for leaf in leaves if leaf != "Microsoft.Authorization/roleDefinitions"]
    if len(params) != 1:
        raise ValueError(
            f"role assignment names {' '.join(leaves)!r}: not a module parameter naming one of "
            "main.bicep's custom roles (a built-in role?); Keyguard's grants are custom roles "
            "with exact actions (tests/infra/test_arm_grants.py)"
        )
    return params[0]


def _switches(
    ev: _Eval, main: dict[str, Any], values: dict[str, Any], passed: dict[str, Any]
) -> dict[str, Any]:
    """The boolean switches a module call passes (e.g. ``remediation: remediationOn``)."""
    out: dict[str, Any] = {}
    for name, expr in passed.items():
        if isinstance(expr, str) and (expr in main["variables"] or expr in values):
            try:
                value = ev(expr)
            except ValueError:  # a GUID, a name: not a switch
                continue
            if isinstance(value, bool):
                out[name] = value
    return out


@cache
def _keyguard_grants(switches: tuple[tuple[str, str], ...]) -> InfraGrants:
    main = parse(MAIN)
    values: dict[str, Any] = dict(switches)
    ev = _Eval(main["parameters"], main["variables"], values)
    grants: list[Grant] = []
    access_policy: AccessPolicy | None = None
    for module_name, declaration in main.get("modules", {}).items():
        kind = LOOP_KINDS.get(_loop_array(declaration) or "")
        if kind is None:
            continue
        body = _body(declaration)
        path = (MAIN.parent / declaration["detail"]["path"]).resolve()
        tree = parse(path)
        passed = body.get("params", {})
        # the switches as the module sees them (e.g. remediation: remediationOn)
        module_params = _switches(ev, main, values, passed)
        for res_name, res in tree.get("resources", {}).items():
            if res.get("existing"):
                continue
            res_body = _body(res)
            if res["type"] == "Microsoft.KeyVault/vaults/accessPolicies":
                local = _Eval(tree["parameters"], tree["variables"], module_params)
                (entry,) = res_body["properties"]["accessPolicies"]
                access_policy = AccessPolicy(
                    keys=tuple(local(entry["permissions"]["keys"])),
                    secrets=tuple(local(entry["permissions"]["secrets"])),
                    when=_condition(res),
                    module_params=module_params,
                )
                continue
            if res["type"] != "Microsoft.Authorization/roleAssignments":
                continue
            if _leaves(res_body["properties"]["principalId"]) != ["keyguardPrincipalId"]:
                continue
            role_param = _module_role_param(res_body)
            role = _role_of(main, passed[role_param])
            permissions = _body(main["resources"][role])["properties"]["permissions"]
            actions: list[str] = []
            data_actions: list[str] = []
            for block in permissions:
                actions.extend(ev(block.get("actions", [])))
                data_actions.extend(ev(block.get("dataActions", [])))
                if block.get("notActions") or block.get("notDataActions"):
                    raise ValueError(f"{role}: notActions are not modelled")
            abac = res_body["properties"].get("condition")
            abac_text = (
                _module_strings(tree, str(tree["variables"][abac]["value"])) if abac else None
            )
            grants.append(
                Grant(
                    kind=kind,
                    module=module_name,
                    resource=res_name,
                    role=role,
                    role_guid_name=" ".join(_leaves(passed[role_param])),
                    actions=tuple(actions),
                    data_actions=tuple(data_actions),
                    when=_condition(res),
                    abac=abac_text,
                    module_params=module_params,
                )
            )
    return InfraGrants(tuple(grants), access_policy)


def _module_strings(tree: dict[str, Any], text: str) -> str:
    """``text`` with ``${name}`` of the module's plain string variables filled in (e.g. the
    built-in role GUID the condition names); parameters are left for :func:`_abac`."""
    variables = tree.get("variables", {})

    def fill(match: re.Match[str]) -> str:
        value = variables.get(match.group(1), {}).get("value")
        return value if isinstance(value, str) and "${" not in value else match.group(0)

    return re.sub(r"\$\{(\w+)\}", fill, text)


def keyguard_grants(**switches: str) -> InfraGrants:
    """What infra/ grants Keyguard for the given switches (default: every switch on)."""
    merged = {**ALL_ON, **switches}
    return _keyguard_grants(tuple(sorted(merged.items())))


def _abac(text: str | None, world: World) -> str | None:
    """The ABAC condition with the scenario's Backup principal and Backup role GUIDs filled in
    (the roles named like infra/'s ``Keyguard Backup Key Vault Reader``)."""
    if text is None:
        return None
    roles = [
        r.guid
        for r in world.authz.roles.values()
        if r.role_name.lower().startswith("keyguard backup key vault reader")
    ]
    fill = {
        "backupPrincipalId": world.principals.get("backup_management", ""),
        "backupRoleGuid": ", ".join(roles),
    }
    return re.sub(r"\$\{(\w+)\}", lambda m: str(fill.get(m.group(1), m.group(0))), text)


def infra_allows(
    world: World, scope: str, action: str, *, data: bool, request: Request | None = None
) -> Grant | None:
    """The infra/ grant (every switch on) that lets Keyguard do ``action`` at ``scope``.

    The grants are evaluated over the world's resources as deployed: the subscription reader
    at every scenario subscription, the vault grants at every Key Vault (``rbac`` from the
    vault), the backup grant at every Recovery Services vault. ``world.infra_grants_omit``
    (role names, e.g. ``keyguardBackupRole``, or single actions) leaves grants out, as a
    deployment without them would, and ``world.infra_grants_on = False`` all of them
    (Keyguard then holds only what the scenario assigns it); the admin API sets both.
    """
    from local.azure.arm_rbac import condition_allows, covers, matches

    if not getattr(world, "infra_grants_on", True):
        return None
    omit = {o.lower() for o in getattr(world, "infra_grants_omit", set())}
    if action.lower() in omit:
        return None
    for grant in keyguard_grants().grants:
        if grant.role.lower() in omit:
            continue
        patterns = grant.data_actions if data else grant.actions
        if not any(matches(p, action) for p in patterns):
            continue
        for granted_at, per_scope in _scopes(world, grant.kind):
            if not covers(granted_at, scope) or not grant.applies(**per_scope):
                continue
            if condition_allows(_abac(grant.abac, world), action, request):
                return grant
    return None


def _scopes(world: World, kind: str) -> list[tuple[str, dict[str, Any]]]:
    if kind == "subscription":
        return [(f"/subscriptions/{s}", {}) for s in world.subscriptions]
    if kind == "keyvault":
        vaults = list(world.kv.vaults.values()) if world.kv is not None else []
        return [(v.id, {"rbac": bool(v.rbac)}) for v in vaults]
    if kind == "recoveryvault":
        bodies = world.backup.vaults.values() if world.backup is not None else []
        return [(str(b.get("id", "")), {}) for b in bodies]
    raise ValueError(f"unknown grant kind {kind!r}")
