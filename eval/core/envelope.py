"""The envelope every result document carries: what produced it and on what machine."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    return {"cpu": cpu_name(), "arch": platform.machine(), "cores": os.cpu_count(), "system": platform.system(),
            "python": platform.python_version()}


def machine_tag() -> str:
    """A short name for result folders: architecture and core count (``x86_64-2cpu``)."""
    return f"{platform.machine()}-{os.cpu_count()}cpu"


def git_commit() -> str | None:
    """The checkout's commit, with ``-dirty`` when tracked files differ from it; None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def envelope(name: str, argv, *, threads: int, seed: int) -> dict:
    return {"format": "splitcodec-result", "version": 1, "entry": name, "argv": list(argv),
            "splitcodec": _version("splitcodec"), "git_commit": git_commit(),
            "versions": {d: _version(d) for d in ("numpy", "numba", "torch", "torchvision", "grpcio")},
            "machine": machine(), "threads": threads, "seed": seed,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
