"""The docs' runnable examples, run the way their pages say."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / 'docs' / 'examples'

pytestmark = pytest.mark.live


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_quick_start_counting_runs_as_the_page_says(tmp_path):
    """docs/quickstart.rst: ``python counting.py``, then ``curl -N
    http://localhost:6543/count`` prints one number per second (on another
    port here). Run from a copy in another directory, as a user's file."""
    script = tmp_path / 'counting.py'
    script.write_text((EXAMPLES / 'counting.py').read_text())
    port = free_port()
    env = dict(os.environ, PORT=str(port), PYTHONPATH='')
    server = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(('localhost', port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, 'counting.py did not listen'
                time.sleep(0.05)
        lines = []
        with httpx.stream('GET', 'http://localhost:%d/count' % port, timeout=10) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                lines.append((time.monotonic(), line))
                if len(lines) == 3:
                    break
        assert [line for _, line in lines] == ['1', '2', '3']
        # one number per second: each arrives before the next pause ends
        assert 0.5 < lines[2][0] - lines[1][0] < 3
    finally:
        server.kill()
        server.wait(10)
