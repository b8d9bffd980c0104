"""Reading infra/ through pycep-parser's parse tree, for the infra tests.

pycep turns a Bicep file into nested dicts: ``parameters``, ``variables``, ``resources``,
``modules``, ``outputs``. A reference to a parameter or variable is a bare string (its name),
a string literal is a string too, and an expression is a dict (``{"function": ...}`` or
``{"operator": ...}``). Loops and conditions wrap a declaration's body in
``{"loop_type"|"condition": ..., "config": <body>}``; :func:`body` unwraps them.

No Bicep compiler can run offline, so these helpers also let the tests check what the
compiler would: module paths exist and every module call passes exactly known parameters.
"""

from __future__ import annotations

import shutil
import sys
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"


def module_file(name: str) -> Path:
    """The path of ``infra/modules/<name>``."""
    return INFRA / "modules" / name


def bicep_files() -> list[Path]:
    """Every ``.bicep`` file under infra/, sorted."""
    return sorted(INFRA.rglob("*.bicep"))


@lru_cache(maxsize=1)
def _parser() -> Any:
    from pycep import BicepParser

    return BicepParser()  # builds the Lark grammar: about a second, so once


@cache
def parse(path: Path) -> dict[str, Any]:
    """The pycep parse tree of one Bicep file (cached; raises on a syntax error)."""
    tree: dict[str, Any] = _parser().parse(file_path=path)
    return tree


def body(declaration: dict[str, Any]) -> dict[str, Any]:
    """The body of a resource or module declaration, unwrapping loops and conditions."""
    config: dict[str, Any] = declaration["config"]
    while "config" in config and ("loop_type" in config or "condition" in config):
        config = config["config"]
    return config


def module_path(owner: Path, declaration: dict[str, Any]) -> Path:
    """The file a module declaration in ``owner`` points to."""
    return (owner.parent / declaration["detail"]["path"]).resolve()


def module_call(owner: Path, name: str) -> tuple[Path, dict[str, Any]]:
    """The target file and the ``params`` passed by module ``name`` declared in ``owner``."""
    declaration = parse(owner)["modules"][name]
    return module_path(owner, declaration), body(declaration).get("params", {})


def variable(path: Path, name: str) -> Any:
    """The value expression of variable ``name`` in ``path``."""
    return parse(path)["variables"][name]["value"]


def resources_of_type(path: Path, arm_type: str) -> dict[str, dict[str, Any]]:
    """Bodies of the (non-existing) resources of one ARM type in ``path``, by symbolic name."""
    return {
        name: body(decl)
        for name, decl in parse(path).get("resources", {}).items()
        if decl["type"] == arm_type and not decl.get("existing")
    }


def string_leaves(expr: Any) -> list[str]:
    """Every string in an expression tree, depth-first (list items, function arguments)."""
    if isinstance(expr, str):
        return [expr]
    if isinstance(expr, list):
        return [leaf for item in expr for leaf in string_leaves(item)]
    if isinstance(expr, dict):
        # {"function"|"operator": {"type": <name>, "parameters"|"operands": ...}}: the
        # function's or operator's own name is not a leaf.
        is_call = "parameters" in expr or "operands" in expr
        return [
            leaf
            for key, value in expr.items()
            if not (is_call and key == "type")
            for leaf in string_leaves(value)
        ]
    return []


def checkov_executable() -> str:
    """The checkov command: ``.venv-infra`` (what ``./dev test`` installs), else next to
    this Python, else on PATH.

    checkov 3.3.x pins ``packaging<24`` while pytest 9 needs ``packaging>=24``, so it lives
    in its own virtualenv (requirements-infra.txt).
    """
    repo = Path(__file__).resolve().parents[2]
    found = (
        shutil.which("checkov", path=str(repo / ".venv-infra" / "bin"))
        or shutil.which("checkov", path=str(Path(sys.executable).parent))
        or shutil.which("checkov")
    )
    if found is None:
        raise AssertionError(
            "checkov not found next to the test Python or on PATH: "
            "pip install -r requirements-infra.txt (see infra/README.md)"
        )
    return found


class Evaluator:
    """Evaluates the small subset of Bicep expressions the app settings use.

    Parameters come from ``parameters`` (else their defaults), variables are evaluated in
    turn, and ``symbols`` stands in for deployment-time values (``tenant()``, resource and
    module properties): ``{"tenant().tenantId": ..., "alertTopic.outputs.endpoint": ...}``.
    Anything else raises, so a new kind of expression is noticed rather than guessed.
    """

    def __init__(self, path: Path, parameters: dict[str, Any], symbols: dict[str, Any]) -> None:
        self.tree = parse(path)
        self.parameters = parameters
        self.symbols = symbols
        self.locals: dict[str, Any] = {}

    def name(self, name: str) -> Any:
        if name in self.locals:
            return self.locals[name]
        if name in self.tree["parameters"]:
            if name in self.parameters:
                return self.parameters[name]
            return self.tree["parameters"][name]["default"]
        if name in self.tree["variables"]:
            return self(self.tree["variables"][name]["value"])
        return name  # a string literal

    def __call__(self, expr: Any) -> Any:
        if isinstance(expr, str):
            return self.name(expr)
        if isinstance(expr, list):
            return [self(item) for item in expr]
        if "loop_type" in expr:
            detail = expr["loop_type"]["detail"]
            out = []
            for item in self.name(detail["array_name"]):
                self.locals[detail["item_name"]] = item
                out.append(self(expr["config"]))
            self.locals.pop(detail["item_name"], None)
            return out
        if "operator" in expr and expr["operator"]["type"] == "property_accessor":
            operands = expr["operator"]["operands"]
            symbol = ".".join(string_leaves(expr))
            if symbol in self.symbols:
                return self.symbols[symbol]
            base = self(operands["operand_1"])
            if not isinstance(base, dict) or not isinstance(operands["operand_2"], str):
                raise ValueError(f"cannot evaluate {symbol}")
            return base[operands["operand_2"]]
        if "function" in expr:
            function = expr["function"]
            if function["type"] == "join":
                args = function["parameters"]
                return self(args["delimiter"]).join(self(args["input_array"]))
            if function["type"] == "tenant":
                return self.symbols["tenant().tenantId"]
        raise ValueError(f"unsupported expression {expr!r}")
