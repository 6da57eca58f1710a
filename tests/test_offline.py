"""The notebooks' offline guard: tools/offline/sitecustomize.py, which `make test-notebooks` puts on the
PYTHONPATH of pytest and so of every notebook kernel. (tests/conftest.py guards this test process.)"""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
OFFLINE = ROOT / "tools" / "offline"


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(OFFLINE)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_a_process_with_the_guard_cannot_open_a_network_connection():
    # 203.0.113.1 is TEST-NET-3 (RFC 5737): never reachable, so the test cannot touch a network either way
    result = _python("import socket; socket.create_connection(('203.0.113.1', 80), timeout=1)")
    assert result.returncode != 0
    assert "offline: a network connection to ('203.0.113.1', 80) was refused" in result.stderr, result.stderr


def test_the_guard_leaves_the_loopback_open_for_the_kernels():
    code = ("import socket; server = socket.socket(); server.bind(('127.0.0.1', 0)); server.listen(1); "
            "socket.create_connection(server.getsockname(), timeout=5).close(); print('connected')")
    result = _python(code)
    assert result.returncode == 0 and "connected" in result.stdout, result.stderr


def test_make_test_notebooks_runs_with_the_guard():
    recipe = (ROOT / "Makefile").read_text().split("\ntest-notebooks:", 1)[1].split("\n\n", 1)[0]
    assert "PYTHONPATH=$(CURDIR)/tools/offline" in recipe, recipe
