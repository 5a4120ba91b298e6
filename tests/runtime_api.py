"""A stand-in for the Lambda Runtime API on 127.0.0.1, for the runtime interface client.

It speaks the documented Runtime API (docs/logging.md "The Lambda Runtime API"): the
client GETs /2018-06-01/runtime/invocation/next and is handed one queued event with the
Lambda-Runtime-* headers, then POSTs the handler's result to …/invocation/{id}/response or
its failure to …/invocation/{id}/error; a failed init POSTs /2018-06-01/runtime/init/error.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:ruleauth-test"


@dataclass
class Invocation:
    request_id: str
    event: Any
    trace_id: str | None = None
    arn: str = FUNCTION_ARN


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a stopped runtime drops its /next
            super().handle_error(request, client_address)


@dataclass
class RuntimeApi:
    """The invocations to hand out, and what the client posted back."""

    invocations: list[Invocation]
    responses: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, Any] = field(default_factory=dict)
    init_errors: list[tuple[str | None, Any]] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.pending: queue.Queue[Invocation | None] = queue.Queue()
        for invocation in self.invocations:
            self.pending.put(invocation)
        self.server = QuietServer(("127.0.0.1", 0), self._handler_class())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def close(self) -> None:
        self.pending.put(None)  # releases a /next still waiting
        self.server.shutdown()
        self.server.server_close()

    def _answered(self) -> None:
        if len(self.responses) + len(self.errors) == len(self.invocations):
            self.finished.set()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    self._reply(404)
                    return
                invocation = api.pending.get()  # blocks, as the real API does, until there is one
                if invocation is None:
                    api.pending.put(None)
                    self.close_connection = True
                    return
                headers = {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 5000),
                    "Lambda-Runtime-Invoked-Function-Arn": invocation.arn,
                }
                if invocation.trace_id:
                    headers["Lambda-Runtime-Trace-Id"] = invocation.trace_id
                self._reply(200, json.dumps(invocation.event).encode(), headers)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                parts = self.path[len(PREFIX) :].strip("/").split("/")
                if parts == ["init", "error"]:
                    api.init_errors.append((self.headers.get("Lambda-Runtime-Function-Error-Type"), body))
                    api.finished.set()
                elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    (api.responses if parts[2] == "response" else api.errors)[parts[1]] = body
                    api._answered()
                else:
                    self._reply(404)
                    return
                self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})

        return Handler


def lambda_environment(api: RuntimeApi, task_root: Path, **extra: str) -> dict[str, str]:
    """The variables Lambda sets for a Python function (docs/logging.md), plus `extra`."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("RULEAUTH_", "AWS_", "_X_AMZN", "POWERTOOLS_"))}
    return {
        **kept,
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": "ruleauth-test",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/ruleauth-test",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/01/[$LATEST]0123456789abcdef",
        "AWS_REGION": "eu-west-1",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
        **extra,
    }


@dataclass
class Run:
    api: RuntimeApi
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        # Split on newlines only: the runtime's text error lines join their lines with "\r".
        return [line for line in self.stdout.split("\n") if line]


def run_runtime(task_root: Path, invocations: list[Invocation], timeout: float = 60, **env: str) -> Run:
    """`python -m awslambdaric ruleauth.handler.handler` against a stand-in Runtime API,
    until every invocation is answered or the init failed; then the process is stopped."""
    api = RuntimeApi(invocations)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", "ruleauth.handler.handler"],
            cwd=task_root,
            env=lambda_environment(api, task_root, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,  # bytes: text mode would turn the runtime's "\r" into line breaks
        )
        done = api.finished.wait(timeout)
        if api.init_errors:
            process.wait(timeout)  # the client exits after reporting the init error
        else:
            # A runtime loops forever on /next: once everything is answered it is stopped.
            process.kill()
        out, err = process.communicate(timeout=timeout)
        stdout, stderr = out.decode(), err.decode()
        assert done, f"the runtime did not answer every invocation:\n{stdout}\n{stderr}"
    finally:
        api.close()
    return Run(api, stdout, stderr)
