"""The loopback-only network guard, shared by the test process (conftest) and CLI subprocesses."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_sendto = socket.socket.sendto
_real_getaddrinfo = socket.getaddrinfo
_real_gethostbyname = socket.gethostbyname
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _loopback_host(host) -> bool:
    if host is None or (isinstance(host, str) and host.lower() in _LOOPBACK_NAMES):
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def check(sock: socket.socket, address) -> None:
    """Raise unless `address` is loopback (or a Unix socket)."""
    if sock.family == getattr(socket, "AF_UNIX", None):
        return
    host = address[0] if isinstance(address, tuple) else address
    if _loopback_host(host):
        return
    raise RuntimeError(f"tests may not reach the network: connect to {address!r} blocked")


def _guarded_connect(self, address):
    check(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    check(self, address)
    return _real_connect_ex(self, address)


def _guarded_sendto(self, data, *args):
    check(self, args[-1])  # sendto(data, address) or sendto(data, flags, address): UDP
    return _real_sendto(self, data, *args)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if not _loopback_host(host):  # a DNS lookup already leaks the name to the network
        raise RuntimeError(f"tests may not reach the network: lookup of {host!r} blocked")
    return _real_getaddrinfo(host, *args, **kwargs)


def _guarded_gethostbyname(host):
    if not _loopback_host(host):
        raise RuntimeError(f"tests may not reach the network: lookup of {host!r} blocked")
    return _real_gethostbyname(host)


def install() -> None:
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    socket.socket.sendto = _guarded_sendto
    socket.getaddrinfo = _guarded_getaddrinfo
    socket.gethostbyname = _guarded_gethostbyname


def uninstall() -> None:
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex
    socket.socket.sendto = _real_sendto
    socket.getaddrinfo = _real_getaddrinfo
    socket.gethostbyname = _real_gethostbyname


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
