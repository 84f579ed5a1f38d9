"""llama-cpp-python's OpenAI-compatible server on 127.0.0.1, started and stopped by handful:
how the precision study runs GGUF quantizations, through the openai engine like any server.

llama-cpp-python is not a dependency of handful (its wheels are built for one CPU); without it
a GGUF point is refused with the way to install it.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from handful.errors import ConfigError, EngineError

INSTALL = "pip install llama-cpp-python (or scripts/install-test-server.sh, which builds it for this CPU)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


class LlamaServer:
    """One server process for one GGUF file; `url` is its OpenAI base URL."""

    def __init__(
        self,
        gguf: str | Path,
        log: str | Path,
        *,
        alias: str = "model",
        port: int | None = None,
        n_ctx: int = 4096,
        exact: bool = False,
        start_timeout: float = 120.0,
    ):
        if not available():
            raise ConfigError(f"serving a GGUF file needs llama-cpp-python: {INSTALL}")
        self.port = port or free_port()
        self.log_path = Path(log)
        self.log = open(log, "ab")  # noqa: SIM115 (held for the server's life, closed by close/crash)
        # exact: a batch of one token. llama.cpp reuses a cached prompt prefix and evaluates only
        # the rest, and a batched evaluation rounds differently, so a retried request (its prompt
        # already cached) could decode greedily to other text; one token at a time rounds the same
        # way always, at the price of a slower prompt.
        batch = ["--n_batch", "1", "--n_ubatch", "1"] if exact else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1"]
            + ["--port", str(self.port), "--n_ctx", str(n_ctx), "--model_alias", alias, *batch],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}/v1"
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                raise EngineError(
                    f"llama.cpp server could not load {gguf} (exit code {self.proc.returncode}); see {log}"
                )
            try:
                urllib.request.urlopen(f"{self.url}/models", timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        self.crash()
        raise EngineError(f"llama.cpp server did not start serving {gguf} in {start_timeout:.0f} s; see {log}")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.alive:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()

    def crash(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
