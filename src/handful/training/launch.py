"""Multi-process training: re-run the same `handful train` command under `accelerate
launch` with a shipped config (DDP, FSDP, DeepSpeed ZeRO-3) or the user's own file.

One exception: accelerate starts several CPU processes only through MPI (`mpirun` and a
hostfile); without one it would quietly run a single process. A MULTI_CPU config is
therefore launched with torchrun (`torch.distributed.run`), which starts the processes
itself; the Trainer then uses torch.distributed's gloo backend either way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from handful.training.config import shipped_file

CONFIGS = Path(__file__).resolve().parent.parent / "recipes" / "accelerate"


def launched() -> bool:
    """True inside a process that accelerate (or torchrun) started."""
    return "LOCAL_RANK" in os.environ or "ACCELERATE_LAUNCHED" in os.environ


def config_file(name: str) -> Path:
    return shipped_file("accelerate config", CONFIGS, name)


def command(name: str, argv: list[str]) -> list[str]:
    """`accelerate launch --config_file F -m handful ARGV`, without the --accelerate-config option."""
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--accelerate-config":
            skip = True
            continue
        if arg.startswith("--accelerate-config="):
            continue
        args.append(arg)
    path = config_file(name)
    settings = yaml.safe_load(path.read_text()) or {}
    if settings.get("distributed_type") == "MULTI_CPU" and not settings.get("mpirun_config"):
        count = int(settings.get("num_processes", 2))
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={count}",
            "-m",
            "handful",
            *args,
        ]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(path), "-m", "handful", *args]


def relaunch(name: str, argv: list[str]) -> int:
    env = {**os.environ, "ACCELERATE_LAUNCHED": "1"}
    return subprocess.call(command(name, argv), env=env)
