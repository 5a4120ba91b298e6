"""Helpers for the CLI and local-gateway tests: the real `ruleauth` command in subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "rules" / "demo.yaml"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RULEAUTH_")}
    env["NO_COLOR"] = "1"
    env["RULEAUTH_LOG_LEVEL"] = "ERROR"
    env.update(extra)
    return env


def run_cli(
    *args: str,
    stdin: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruleauth.tools.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env or cli_env(),
        timeout=timeout,
    )


def run_json(*args: str, **kwargs: Any) -> tuple[int, Any]:
    done = run_cli(*args, "--json", **kwargs)
    return done.returncode, json.loads(done.stdout)


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


class Server:
    """A `ruleauth serve` subprocess on a free loopback port."""

    def __init__(self, process: subprocess.Popen[str], url: str, log_path: Path):
        self.process = process
        self.url = url
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def request(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as reply:
                return reply.status, dict(reply.headers.items()), reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers.items()), exc.read()

    def json(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, _, body = self.request(path, **kwargs)
        return status, json.loads(body)

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            out, _ = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        return self.process.returncode, out


@contextlib.contextmanager
def serve(tmp_path: Path, *args: str) -> Iterator[Server]:
    log_path = tmp_path / f"serve-{time.monotonic_ns()}.log"
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ruleauth.tools.cli", "serve", *args, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=ROOT,
            env=cli_env(),
        )
    server = None
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 20
        url = None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            found = re.search(r"(http://\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url, f"serve printed no URL; log: {log_path.read_text()}"
        server = Server(process, url, log_path)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
