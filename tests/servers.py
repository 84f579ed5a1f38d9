"""Servers for the tests: llama-cpp-python's OpenAI-compatible server on 127.0.0.1, a
fault-injecting proxy that stands in front of it, and a scripted `/v1/completions` whose
answers the test chooses."""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import threading
import time
from pathlib import Path

from handful.engines import llama_server
from handful.engines.llama_server import free_port

__all__ = ["FaultProxy", "LlamaServer", "free_port"]


class LlamaServer(llama_server.LlamaServer):
    """The real SmolLM2, served under the name the tests ask for."""

    def __init__(self, gguf: Path, log: Path, **options):
        super().__init__(gguf, log, alias="smollm2-135m", **options)


class FaultProxy:
    """Forwards to `upstream`, but answers the first requests with the faults in `plan`:
    "500", "429" (with Retry-After: 1), "stall" (no answer for `stall` seconds), "truncate"
    (the real answer cut in half), "drop" (the connection closed without an answer)."""

    def __init__(self, upstream: str, plan: list[str], stall: float = 5.0):
        # `delivered`: answers the upstream computed and the client received whole, i.e. paid for.
        self.plan, self.stall, self.seen, self.delivered = list(plan), stall, [], 0
        self.lock = threading.Lock()
        host, port = upstream.split("//")[1].split("/")[0].split(":")
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: bytes, headers: dict | None = None):
                self.send_response(status)
                for k, v in {
                    "Content-Type": "application/json",
                    "Content-Length": str(len(body)),
                    **(headers or {}),
                }.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    fault = proxy.plan.pop(0) if proxy.plan else "ok"
                    proxy.seen.append(fault)
                if fault == "500":
                    return self._reply(500, b'{"error": {"message": "injected"}}')
                if fault == "429":
                    return self._reply(429, b'{"error": {"message": "slow down"}}', {"Retry-After": "1"})
                if fault == "stall":
                    time.sleep(proxy.stall)
                    self.close_connection = True
                    return
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                try:
                    upstream_conn = http.client.HTTPConnection(host, int(port), timeout=600)
                    upstream_conn.request("POST", self.path, body, {"Content-Type": "application/json"})
                    answer = upstream_conn.getresponse()
                    data = answer.read()
                    upstream_conn.close()
                except OSError:  # the upstream is down: what a gateway in front of a crashed server says
                    proxy.seen.append("upstream down")
                    return self._reply(502, b'{"error": {"message": "upstream down"}}')
                if fault == "truncate":
                    data = data[: len(data) // 2]
                self._reply(answer.status, data)
                if answer.status == 200 and fault != "truncate":
                    with proxy.lock:
                        proxy.delivered += 1

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ScriptedServer:
    """`/v1/completions` on 127.0.0.1 that answers the k-th request with `script[k]`: a
    (text, finish_reason) pair, a (text, finish_reason, completion_tokens) triple (then the
    answer carries usage), or an int, an HTTP error status. Every request body is kept in
    `requests`, so a test sees exactly what a client sent back each round; a real model could
    not be steered into each branch of the continuation logic, and this can, in milliseconds.
    A request past the end of the script gets a 400, which the client does not retry."""

    def __init__(self, script: list):
        self.script, self.requests = list(script), []
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status: int, payload: dict):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with server.lock:
                    index = len(server.requests)
                    server.requests.append(request)
                    step = server.script[index] if index < len(server.script) else None
                if step is None:
                    return self._reply(
                        400, {"error": {"message": f"request {index + 1} is past the end of the script"}}
                    )
                if isinstance(step, int):
                    return self._reply(step, {"error": {"message": f"scripted {step}"}})
                text, finish, *counted = step
                answer = {
                    "id": f"cmpl-{index}",
                    "object": "text_completion",
                    "created": 0,
                    "model": request.get("model", ""),
                    "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
                }
                if counted:
                    answer["usage"] = {
                        "prompt_tokens": 1,
                        "completion_tokens": counted[0],
                        "total_tokens": 1 + counted[0],
                    }
                self._reply(200, answer)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def default_sigint() -> None:
    """A `preexec_fn` for a child the test will Ctrl-C: a shell that starts a job in the
    background (`cmd &`) makes it ignore SIGINT, and its children inherit that, so Python would
    never raise KeyboardInterrupt. Restore what a terminal gives a program."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
