"""Bundles a test module needs, exported side by side: one `attnserve export` is one core's work (torch's
tracing runs on one thread) and exports are most of the slow tier's time, so a module that needs several runs
them at once, as many as the machine has cores."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor


def export_command(command: Sequence[str]) -> subprocess.CompletedProcess:
    """`attnserve export <command>` as a user runs it; the outcome is the caller's to check (a refusal too)."""
    return subprocess.run([sys.executable, "-m", "attnserve", "export", *command], capture_output=True, text=True,
                          timeout=600)


def export_bundles(*commands: Sequence[str]) -> None:
    """`attnserve export <command>` for each command (each names its own --output), concurrently; fails naming
    every export that failed, with its stderr."""
    cores = len(os.sched_getaffinity(0))  # the cores this process may use, not the machine's
    with ThreadPoolExecutor(max_workers=max(1, min(len(commands), cores))) as pool:
        done = list(pool.map(export_command, commands))
    failed = [f"attnserve export {' '.join(c)}:\n{d.stderr}"
              for c, d in zip(commands, done, strict=True) if d.returncode]
    assert not failed, "\n".join(failed)
