"""Azurite lifecycle: install it from the lockfile, start it on free loopback ports, stop it.

Keyguard's queues, tables and blobs run on Azurite offline (npm package ``azurite``, pinned in
``package.json``/``package-lock.json``). :func:`ensure_installed` runs ``npm ci`` only when
``node_modules`` is missing or older than the lockfile (the same stamp file ``./dev`` writes),
and :class:`Azurite` starts one isolated instance: free ports, a temporary ``--location``
removed on stop, and a connection string with explicit endpoints (the well-known
``devstoreaccount1`` account), so several instances can run side by side.

Run ``python -m local.azurite`` to start one and print its connection string.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Final

from local.lifecycle import StopsOnExit
from shared.errors import KeyguardError

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
STAMP_NAME: Final = ".keyguard-stamp"  # node_modules/.keyguard-stamp, shared with ./dev
ACCOUNT_NAME: Final = "devstoreaccount1"
# Azurite's documented, public development key (not a secret: every Azurite uses it).
ACCOUNT_KEY: Final = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_SERVICES: Final = ("blob", "queue", "table")


class AzuriteError(KeyguardError):
    """Azurite could not be installed, started or stopped."""


def _lock_hash(repo_root: Path) -> str:
    return hashlib.sha256((repo_root / "package-lock.json").read_bytes()).hexdigest()


def ensure_installed(repo_root: Path | str = REPO_ROOT) -> Path:
    """Install Azurite from ``package-lock.json`` unless an identical install is present.

    Safe to rerun: the lockfile's SHA-256 is compared with ``node_modules/.keyguard-stamp``
    (written after a successful ``npm ci``), so a changed lockfile reinstalls.

    Parameters
    ----------
    repo_root:
        Directory holding ``package.json`` and ``package-lock.json``.

    Returns
    -------
    Path
        The ``azurite`` executable (``node_modules/.bin/azurite``).

    Raises
    ------
    AzuriteError
        ``node``/``npm`` missing, no lockfile, or ``npm ci`` failed (its output included).
    """
    root = Path(repo_root)
    binary = root / "node_modules" / ".bin" / "azurite"
    stamp = root / "node_modules" / STAMP_NAME
    if not (root / "package-lock.json").is_file():
        raise AzuriteError(f"no package-lock.json in {root}; cannot install Azurite")
    want = _lock_hash(root)
    if binary.exists() and stamp.is_file() and stamp.read_text().strip() == want:
        return binary
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise AzuriteError(
                f"{tool} is required to install Azurite but is not on PATH (install Node.js 20)"
            )
    proc = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not binary.exists():
        output = (proc.stdout + proc.stderr).strip()[-4000:]
        raise AzuriteError(f"npm ci failed (exit {proc.returncode}):\n{output}")
    stamp.write_text(want + "\n")
    return binary


def _free_ports(count: int) -> list[int]:
    """Ports the kernel hands out for port 0 (held together so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def connection_string(ports: dict[str, int]) -> str:
    """The connection string for an Azurite listening on ``ports`` (service → port)."""
    parts = [
        "DefaultEndpointsProtocol=http",
        f"AccountName={ACCOUNT_NAME}",
        f"AccountKey={ACCOUNT_KEY}",
    ]
    for service in _SERVICES:
        endpoint = f"http://127.0.0.1:{ports[service]}/{ACCOUNT_NAME}"
        parts.append(f"{service.capitalize()}Endpoint={endpoint}")
    return ";".join(parts) + ";"


class Azurite(StopsOnExit):
    """One running Azurite process. Build it with :meth:`start`; stop it with :meth:`stop`.

    Attributes
    ----------
    ports:
        ``{"blob": .., "queue": .., "table": ..}`` on 127.0.0.1.
    location:
        Azurite's data directory.
    """

    START_TIMEOUT: Final = 30.0
    ATTEMPTS: Final = 3

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        ports: dict[str, int],
        location: Path,
        *,
        owns_location: bool,
        log: IO[bytes],
    ) -> None:
        self._process = process
        self.ports = ports
        self.location = location
        self._owns_location = owns_location
        self._log = log

    @property
    def connection_string(self) -> str:
        """Connection string with explicit blob, queue and table endpoints."""
        return connection_string(self.ports)

    @property
    def running(self) -> bool:
        """True while the Azurite process is alive."""
        return self._process.poll() is None

    @property
    def pid(self) -> int:
        """Process id of the Azurite process."""
        return self._process.pid

    @classmethod
    def start(
        cls, *, location: Path | str | None = None, repo_root: Path | str = REPO_ROOT
    ) -> Azurite:
        """Install if needed and start Azurite on free loopback ports.

        Parameters
        ----------
        location:
            Data directory to use and keep; by default a temporary one removed on stop.
        repo_root:
            Where ``package-lock.json`` and ``node_modules`` live.

        Raises
        ------
        AzuriteError
            Not installable, or not listening within the timeout (its output included).
        """
        binary = ensure_installed(repo_root)
        last: AzuriteError | None = None
        for _ in range(cls.ATTEMPTS):
            owns = location is None
            where = Path(location or tempfile.mkdtemp(prefix="keyguard-azurite-"))
            where.mkdir(parents=True, exist_ok=True)
            try:
                return cls._launch(binary, where, owns)
            except _PortRace as exc:  # a port was taken between probe and bind: new ports
                last = AzuriteError(str(exc))
                if owns:
                    shutil.rmtree(where, ignore_errors=True)
        raise last or AzuriteError("Azurite did not start")

    @classmethod
    def _launch(cls, binary: Path, where: Path, owns: bool) -> Azurite:
        ports = dict(zip(_SERVICES, _free_ports(3), strict=True))
        args = [
            str(binary),
            "--silent",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--location",
            str(where),
        ]
        for service in _SERVICES:
            args += [f"--{service}Host", "127.0.0.1", f"--{service}Port", str(ports[service])]
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        azurite = cls(process, ports, where, owns_location=owns, log=log)
        try:
            return cls._await_ports(azurite)
        except BaseException:  # incl. KeyboardInterrupt: never leave an orphan Azurite
            azurite.stop()
            raise

    @classmethod
    def _await_ports(cls, azurite: Azurite) -> Azurite:
        process, ports = azurite._process, azurite.ports
        deadline = time.monotonic() + cls.START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = azurite._output()
                if "EADDRINUSE" in output:
                    raise _PortRace(f"Azurite port taken: {output[-2000:]}")
                raise AzuriteError(f"Azurite exited with {process.returncode}:\n{output[-4000:]}")
            # a squatter on one of our ports also accepts: make sure Azurite is still alive
            if all(_accepts(p) for p in ports.values()):
                time.sleep(0.1)
                if process.poll() is None:
                    return azurite
                continue
            time.sleep(0.05)
        output = azurite._output()
        raise AzuriteError(f"Azurite not listening after {cls.START_TIMEOUT:g}s:\n{output[-4000:]}")

    def _output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def _cleanup(self) -> None:
        self._log.close()
        if self._owns_location:
            shutil.rmtree(self.location, ignore_errors=True)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate Azurite (kill after ``timeout``), wait for it and remove a temp location."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout)
        if not self._log.closed:
            self._cleanup()


class _PortRace(Exception):
    """Internal: Azurite failed with EADDRINUSE; retry with new ports."""


def _interrupt(signum: int, frame: object) -> None:
    # one interruption only: a second SIGTERM must not cut the cleanup short
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def main() -> None:
    """Start Azurite, print its connection string, and run until SIGINT/SIGTERM."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    with contextlib.suppress(KeyboardInterrupt), Azurite.start() as azurite:
        print(azurite.connection_string, flush=True)
        while azurite.running:
            time.sleep(0.5)


if __name__ == "__main__":
    main()
