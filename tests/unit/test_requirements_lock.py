"""Dependencies: the runtime and the tooling install from hashed locks of every transitive
package (issue 13, item 12), compiled from the direct pins by ``./dev lock``.

* ``requirements.txt`` (deployed; the Functions remote build and ``./dev`` install it) and
  ``requirements-dev.txt`` (it plus the tooling) pin every package with ``==`` and hashes, so
  ``pip install --require-hashes`` accepts them;
* each direct pin of ``requirements.in`` / ``requirements-dev.in`` is in its lock at that version;
* the dev lock holds every runtime package at the runtime lock's version and hashes (tests
  run what is deployed);
* ``./dev`` installs with ``--require-hashes`` and its stamp covers both locks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """Package → (version, hashes) of a pip-compile lock; fails on an unpinned entry."""
    text = path.read_text()
    entries: dict[str, tuple[str, frozenset[str]]] = {}
    # One requirement per logical line (pip joins backslash continuations).
    for logical in re.sub(r"\\\n", " ", text).splitlines():
        line = logical.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        assert match, f"{path.name}: {line!r} is not pinned with =="
        entries[_norm(match[1])] = (match[2], frozenset(_HASH.findall(line)))
    return entries


def _direct(path: Path) -> dict[str, str]:
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = _PIN.match(line)
        assert match, f"{path.name}: {line!r} is not pinned with =="
        pins[_norm(match[1])] = match[2]
    return pins


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-dev.txt"])
def test_every_locked_package_has_hashes(lock: str) -> None:
    entries = _lock(ROOT / lock)
    assert entries
    unhashed = sorted(name for name, (_, hashes) in entries.items() if not hashes)
    assert unhashed == [], f"{lock}: no --hash for {unhashed}"


@pytest.mark.parametrize(
    ("source", "lock"),
    [("requirements.in", "requirements.txt"), ("requirements-dev.in", "requirements-dev.txt")],
)
def test_lock_holds_each_direct_pin(source: str, lock: str) -> None:
    locked = _lock(ROOT / lock)
    direct = _direct(ROOT / source)
    if source == "requirements-dev.in":
        direct |= _direct(ROOT / "requirements.in")  # -r requirements.in
    stale = {n: v for n, v in direct.items() if locked.get(n, ("", frozenset()))[0] != v}
    assert stale == {}, f"{lock} is stale against {source}: run ./dev lock"


def test_dev_lock_installs_what_is_deployed() -> None:
    runtime = _lock(ROOT / "requirements.txt")
    dev = _lock(ROOT / "requirements-dev.txt")
    differing = sorted(n for n, entry in runtime.items() if dev.get(n) != entry)
    assert differing == [], f"requirements-dev.txt differs from requirements.txt on {differing}"


def test_azure_functions_stays_1x_for_a_stated_reason() -> None:
    version = _lock(ROOT / "requirements.txt")["azure-functions"][0]
    assert version.startswith("1.")
    assert "Requires-Python >=3.13" in (ROOT / "requirements.in").read_text()


def test_dev_script_installs_from_the_locks_with_hashes() -> None:
    script = (ROOT / "dev").read_text()
    setup = script[script.index("setup_python() {") :]
    setup = setup[: setup.index("\n}\n")]
    assert "stamp_of requirements.txt requirements-dev.txt" in setup
    assert "--require-hashes" in setup
    assert "-r requirements-dev.txt" in setup
