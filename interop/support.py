"""What the interoperability scripts share: recording checks and the closing "N passed, N failed"
line that .ci/run counts, free loopback ports, waiting for a server's /healthz, and installing a
pinned npm client once into a cache directory.
"""

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

results: list[tuple[str, bool, str]] = []


def check(name: str, passed: bool, detail: str = "") -> None:
    results.append((name, passed, detail))
    print(f"{'ok  ' if passed else 'FAIL'} {name}" + ("" if passed else f": {detail[:2000]}"), flush=True)


def finish() -> int:
    """Prints the closing line; the exit code (1 if any check failed)."""
    failed = sum(1 for _, passed, _ in results if not passed)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, process: subprocess.Popen, what: str, timeout: float = 30) -> None:
    """Waits until `base`/healthz answers 200; raises if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.1)


def npm_install(package: str, version: str, cache: Path, launcher: str, timeout: float,
                ignore_scripts: bool = False) -> Path:
    """The launcher of `package@version`, installed once into `cache`."""
    binary = cache / "node_modules" / ".bin" / launcher
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"npm is not installed: {package} needs Node.js with npm")
    cache.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", "--loglevel=error"]
    if ignore_scripts:
        command.append("--ignore-scripts")
    subprocess.run([*command, f"{package}@{version}"], check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    if not binary.exists():
        raise RuntimeError(f"npm installed no {launcher} launcher at {binary}")
    return binary
