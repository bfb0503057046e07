"""The loopback-only guard blocks TCP, UDP and DNS beyond loopback, in tests and subprocesses."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).parent / "chat_driver.py"


def test_tcp_udp_and_dns_are_blocked():
    with pytest.raises(RuntimeError, match="blocked"):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(RuntimeError, match="blocked"):
        socket.gethostbyname("example.com")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(RuntimeError, match="blocked"):
            udp.sendto(b"x", ("8.8.8.8", 53))
        with pytest.raises(RuntimeError, match="blocked"):
            udp.connect(("1.1.1.1", 53))
    with socket.socket() as tcp, pytest.raises(RuntimeError, match="blocked"):
        tcp.connect(("93.184.216.34", 80))


def test_loopback_stays_open():
    assert socket.getaddrinfo("localhost", 80)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"x", ("127.0.0.1", 9))  # nothing listens; sending is allowed


def test_chat_driver_runs_guarded():
    code = ("import runpy, socket, sys; sys.argv = [%r]; sys.path.insert(0, %r); "
            "runpy.run_path(%r, run_name='not_main'); socket.getaddrinfo('example.com', 80)"
            % (str(DRIVER), str(DRIVER.parent), str(DRIVER)))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0 and "lookup of 'example.com' blocked" in done.stderr, done.stderr
