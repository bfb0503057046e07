"""The loopback-only network guard, shared by the test process (conftest) and CLI subprocesses."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def check(sock: socket.socket, address) -> None:
    """Raise unless `address` is loopback (or a Unix socket)."""
    if sock.family == getattr(socket, "AF_UNIX", None):
        return
    host = address[0] if isinstance(address, tuple) else address
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        if host == "localhost":
            return
    raise RuntimeError(f"tests may not reach the network: connect to {address!r} blocked")


def _guarded_connect(self, address):
    check(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    check(self, address)
    return _real_connect_ex(self, address)


def install() -> None:
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex


def uninstall() -> None:
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex


# `python -c GUARDED_CLI ARGS...` runs `papers ARGS...` behind the guard. Ctrl-C raises
# KeyboardInterrupt as in a terminal even when the test runner was started with SIGINT ignored
# (a background job), which the child would otherwise inherit.
GUARDED_CLI = f"""
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
import netguard
netguard.install()
sys.argv[0] = "papers"
from assistant.cli import main
main()
"""
