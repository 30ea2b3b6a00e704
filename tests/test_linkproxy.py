"""The link proxy: forwarding, black-hole, drop, reset, refuse, bounds, loopback only."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from agent.testbed.linkproxy import LinkProxy


class EchoServer:
    """A loopback echo server, with a switch that stops it from reading."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.reading = threading.Event()
        self.reading.set()
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        try:
            while True:
                self.reading.wait()
                data = conn.recv(65536)
                if not data:
                    conn.shutdown(socket.SHUT_WR)
                    return
                conn.sendall(data)
        except OSError:
            return

    def close(self) -> None:
        self.reading.set()
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            break
        buf += data
    return bytes(buf)


def test_forwards_bytes_both_ways_with_latency_and_cap(echo: EchoServer) -> None:
    payload = os.urandom(300_000)
    with LinkProxy(echo.port, latency=0.01, rate_bps=5_000_000) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as c:
        sender = threading.Thread(target=c.sendall, args=(payload,))
        sender.start()
        got = recv_exactly(c, len(payload))
        sender.join()
        assert got == payload
        assert proxy.bytes_up == len(payload) and proxy.bytes_down == len(payload)


def test_eof_is_passed_on(echo: EchoServer) -> None:
    with LinkProxy(echo.port) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as c:
        c.sendall(b"bye")
        c.shutdown(socket.SHUT_WR)
        assert recv_exactly(c, 3) == b"bye"
        assert c.recv(10) == b""  # the server's FIN came back through the proxy


def test_blackhole_delivers_nothing_and_keeps_the_connection_open(echo: EchoServer) -> None:
    with LinkProxy(echo.port) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as c:
        c.sendall(b"ping")
        assert recv_exactly(c, 4) == b"ping"
        proxy.blackhole(True)
        c.sendall(b"lost")
        c.settimeout(0.5)
        with pytest.raises(TimeoutError):  # neither data, nor FIN, nor RST
            c.recv(10)
        proxy.blackhole(False)
        c.settimeout(10)
        c.sendall(b"back")
        assert recv_exactly(c, 4) == b"back"


def test_drop_sends_fin(echo: EchoServer) -> None:
    with LinkProxy(echo.port) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as c:
        c.sendall(b"x")
        assert recv_exactly(c, 1) == b"x"
        proxy.drop()
        assert c.recv(10) == b""
        assert proxy.links() == []


def test_reset_sends_rst(echo: EchoServer) -> None:
    with LinkProxy(echo.port) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as c:
        c.sendall(b"x")
        assert recv_exactly(c, 1) == b"x"
        proxy.reset()
        # The RST shows as ECONNRESET on read, or EPIPE if our write raced it.
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            c.recv(10)
            c.sendall(b"more")  # in case the RST raced the read
            c.recv(10)


def test_refuse_and_max_connections(echo: EchoServer) -> None:
    with LinkProxy(echo.port, max_connections=1) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as first:
            first.sendall(b"1")
            assert recv_exactly(first, 1) == b"1"
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as second:
                assert second.recv(10) == b""  # over the bound: closed at once
        proxy.drop()
        proxy.refuse(True)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as third:
            assert third.recv(10) == b""


def test_buffer_is_bounded_when_the_server_stops_reading(echo: EchoServer) -> None:
    echo.reading.clear()
    with LinkProxy(echo.port, buffer_bytes=64 * 1024) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as c:
        deadline = time.monotonic() + 10
        while not proxy.links() and time.monotonic() < deadline:
            time.sleep(0.01)  # the accept thread registers the link
        c.setblocking(False)
        sent = 0
        block = b"\0" * 65536
        for _ in range(2000):  # at most 128 MB; TCP must push back long before
            try:
                sent += c.send(block)
            except BlockingIOError:
                break
        else:
            pytest.fail("the proxy kept accepting bytes without bound")
        up = proxy.links()[0].pipes[0]
        assert up.queued <= 64 * 1024 + 65536  # one recv may overshoot the bound
        echo.reading.set()


@pytest.mark.parametrize("host", ["10.0.0.1", "example.org", "0.0.0.0"])
def test_loopback_only(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        LinkProxy(1883, target_host=host)
    with pytest.raises(ValueError, match="loopback"):
        LinkProxy(1883, listen_host=host)
