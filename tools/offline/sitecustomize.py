"""Offline guard: refuse every network connection but the loopback, in every Python process started with
this folder on PYTHONPATH.

``make test-notebooks`` puts this folder on PYTHONPATH, so Python imports this module at start-up in
pytest, in its workers and in every notebook kernel they launch (kernels inherit the environment). A
notebook that reaches for the network then fails with a RuntimeError that says so, instead of passing
only where a network happens to be. The loopback stays open: a kernel talks to nbval over it. In the
test process itself, tests/conftest.py does the same for the package's tests.
"""

import ipaddress
import socket

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _is_loopback(address) -> bool:
    if not isinstance(address, tuple):          # an AF_UNIX path never leaves the machine
        return True
    host = str(address[0]).split("%")[0]       # an IPv6 scope, as in fe80::1%eth0
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:                          # any other host name would be looked up and reached out to
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _refuse(address) -> None:
    if not _is_loopback(address):
        raise RuntimeError(f"offline: a network connection to {address!r} was refused "
                           "(tools/offline/sitecustomize.py; the book's notebooks must run without a network)")


def _guarded_connect(self, address):
    _refuse(address)
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    _refuse(address)
    return _connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
