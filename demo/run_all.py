"""``make run``: the two demo portals in the background, the provider in the foreground.

Ctrl+C (or the provider ending) stops the portals too. Uses the same settings as the
provider (``SERVICEKONTO_CONFIG``); the portals read ``<instance>/demo-portals.json``.

    python -m demo.run_all [--instance instance]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from demo import PORTALS


def _servicekonto() -> list[str]:
    script = Path(sys.executable).with_name("servicekonto")
    return [str(script)] if script.exists() else [sys.executable, "-m", "servicekonto.cli"]


def _instance_path() -> str:
    """The provider's instance folder, from the same settings (SERVICEKONTO_CONFIG, env)."""
    try:
        from servicekonto.settings import load_settings

        return str(load_settings()["instance_path"])
    except Exception:  # noqa: BLE001 - fall back to the default layout
        return "instance"


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", default=None,
                        help="instance folder holding demo-portals.json (default: the "
                             "provider's instance_path setting)")
    args = parser.parse_args(argv)
    config = Path(args.instance or _instance_path()) / "demo-portals.json"
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}

    # Ctrl+C or SIGTERM (kill, systemd, a CI runner) both end up in the cleanup below, even
    # when started from a shell that set SIGINT to "ignored" for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)

    portals = [subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "demo.portals", "--name", name, "--port", str(spec.port),
         "--config", str(config)], env=env, cwd=root) for name, spec in PORTALS.items()]
    print("Demo-Portale: " + ", ".join(f"{s.title} http://127.0.0.1:{s.port}/"
                                       for s in PORTALS.values()), flush=True)
    print("Melden Sie sich in einem Portal an, öffnen Sie das andere: Sie sind schon "
          "angemeldet. Abmelden in einem Portal meldet Sie per Back-Channel-Logout auch im "
          "anderen ab.", flush=True)
    provider = subprocess.Popen(_servicekonto() + ["serve"], env=env, cwd=root)  # noqa: S603
    try:
        return provider.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        _stop([provider, *portals])


if __name__ == "__main__":
    sys.exit(main())
