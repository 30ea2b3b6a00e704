"""A small TCP proxy that plays a bad office link on loopback (the machines have no netem).

Between a client and a server on 127.0.0.1 it can add latency each way, cap the bandwidth of
each direction, refuse or drop connections (FIN), reset them (RST), or black-hole them: keep
both TCP connections open but deliver nothing, the half-open link that only a keepalive can
detect. Every connection is bounded (``buffer_bytes`` queued per direction, then the proxy
stops reading and TCP flow control pushes back) and so is the number of connections.

Use from tests::

    with LinkProxy(broker.port, latency=0.025, rate_bps=2_500_000) as proxy:
        connect_to("127.0.0.1", proxy.port)
        proxy.blackhole(True)

or from a shell for the demo: ``python -m agent.testbed.linkproxy --target 1883 --latency 0.025``.
"""

from __future__ import annotations

import argparse
import collections
import ipaddress
import logging
import socket
import struct
import threading
import time
from types import TracebackType

log = logging.getLogger(__name__)

_PIECE = 16 * 1024  # rate limiting granularity: small pieces keep the pacing smooth


def _check_loopback(host: str) -> None:
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"link proxy works on loopback only, not {host!r}")


class _Pipe:
    """One direction of one connection: reader thread -> bounded delay line -> writer thread."""

    def __init__(self, proxy: LinkProxy, link: _Link, src: socket.socket, dst: socket.socket,
                 name: str) -> None:
        self.proxy = proxy
        self.link = link
        self.src = src
        self.dst = dst
        self.name = name
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.queued = 0
        self.cond = threading.Condition()
        self.eof = False
        self.tokens = 0.0
        self.last_refill = time.monotonic()
        self.threads = [
            threading.Thread(target=self._read, name=f"linkproxy-{name}-r", daemon=True),
            threading.Thread(target=self._write, name=f"linkproxy-{name}-w", daemon=True),
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def flush(self) -> None:
        """Throw away everything queued (black-hole switched on)."""
        with self.cond:
            self.queue.clear()
            self.queued = 0
            self.cond.notify_all()

    def _read(self) -> None:
        try:
            while not self.link.closed:
                try:
                    data = self.src.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                if self.proxy.blackholed:
                    continue  # swallowed: no data, no FIN, no RST
                with self.cond:
                    # Bounded: stop reading while the delay line is full (TCP pushes back).
                    while (self.queued >= self.proxy.buffer_bytes and not self.link.closed):
                        self.cond.wait(0.5)
                    self.queue.append((time.monotonic() + self.proxy.latency, data))
                    self.queued += len(data)
                    self.cond.notify_all()
        finally:
            with self.cond:
                self.eof = True
                self.cond.notify_all()

    def _pace(self, nbytes: int) -> None:
        rate = self.proxy.rate_bps
        if rate <= 0:
            return
        now = time.monotonic()
        self.tokens = min(rate * 0.05, self.tokens + (now - self.last_refill) * rate)
        self.last_refill = now
        self.tokens -= nbytes
        if self.tokens < 0:
            time.sleep(-self.tokens / rate)

    def _write(self) -> None:
        try:
            while not self.link.closed:
                with self.cond:
                    while not self.queue and not self.eof and not self.link.closed:
                        self.cond.wait(0.5)
                    if self.link.closed:
                        return
                    if not self.queue:  # EOF and drained
                        break
                    due, data = self.queue[0]
                    wait = due - time.monotonic()
                    if wait > 0:
                        self.cond.wait(min(wait, 0.5))
                        continue
                    self.queue.popleft()
                    self.queued -= len(data)
                    self.cond.notify_all()
                if self.proxy.blackholed:
                    continue
                view = memoryview(data)
                for start in range(0, len(view), _PIECE):
                    piece = view[start:start + _PIECE]
                    self._pace(len(piece))
                    # Counted before sending, so a peer that has read the bytes sees the count.
                    self.proxy.count(self.name, len(piece))
                    self.dst.sendall(piece)
            # The source closed cleanly: pass the FIN on, keep the other direction open.
            try:
                self.dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        except OSError:
            self.link.close()
        if self.eof:
            self.link.half_closed()


class _Link:
    """One proxied connection: client socket, upstream socket and the two pipes."""

    def __init__(self, proxy: LinkProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.closed = False
        self._half = 0
        self._lock = threading.Lock()
        self.pipes = [
            _Pipe(proxy, self, client, upstream, "up"),
            _Pipe(proxy, self, upstream, client, "down"),
        ]

    def start(self) -> None:
        for p in self.pipes:
            p.start()

    def half_closed(self) -> None:
        with self._lock:
            self._half += 1
            both = self._half >= 2
        if both:
            self.close()

    def close(self, *, rst: bool = False) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.upstream):
            try:
                if rst:
                    # Linger 0 makes close() send RST instead of FIN; SHUT_RD (which sends
                    # nothing) wakes our reader thread blocked in recv().
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.shutdown(socket.SHUT_RD)
                else:
                    s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for p in self.pipes:
            p.wake()
        self.proxy.forget(self)

    def join(self, timeout: float) -> None:
        for p in self.pipes:
            for t in p.threads:
                t.join(timeout)


class LinkProxy:
    """TCP proxy 127.0.0.1:``port`` -> ``target_host``:``target_port`` with link faults."""

    def __init__(
        self,
        target_port: int,
        *,
        target_host: str = "127.0.0.1",
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        latency: float = 0.0,
        rate_bps: float = 0.0,
        max_connections: int = 16,
        buffer_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        _check_loopback(target_host)
        _check_loopback(listen_host)
        if latency < 0 or rate_bps < 0 or max_connections < 1 or buffer_bytes < 1:
            raise ValueError("latency, rate and limits must be positive")
        self.target = (target_host, target_port)
        self.latency = latency  # one way, applied to each direction
        self.rate_bps = rate_bps  # bytes per second per direction; 0 = no cap
        self.max_connections = max_connections
        self.buffer_bytes = buffer_bytes
        self.blackholed = False
        self.refusing = False
        self.bytes_up = 0
        self.bytes_down = 0
        self.accepted = 0
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((listen_host, listen_port))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="linkproxy-accept", daemon=True)

    # ---------------------------------------------------------------- control
    def start(self) -> LinkProxy:
        """Start accepting connections."""
        self._thread.start()
        return self

    def set_latency(self, seconds: float) -> None:
        """One-way delay added to each direction from now on."""
        self.latency = max(0.0, seconds)

    def set_rate(self, bytes_per_second: float) -> None:
        """Bandwidth cap per direction (0: none)."""
        self.rate_bps = max(0.0, bytes_per_second)

    def blackhole(self, on: bool = True) -> None:
        """Deliver nothing either way while keeping connections open (no FIN, no RST)."""
        self.blackholed = on
        if on:
            for link in self.links():
                for p in link.pipes:
                    p.flush()

    def refuse(self, on: bool = True) -> None:
        """Close new connections at once (a server that is down)."""
        self.refusing = on

    def drop(self) -> None:
        """Close every open connection with FIN."""
        for link in self.links():
            link.close()

    def reset(self) -> None:
        """Close every open connection with RST."""
        for link in self.links():
            link.close(rst=True)

    def links(self) -> list[_Link]:
        """Open connections."""
        with self._lock:
            return list(self._links)

    def count(self, direction: str, nbytes: int) -> None:
        """Account bytes delivered in one direction."""
        with self._lock:
            if direction == "up":
                self.bytes_up += nbytes
            else:
                self.bytes_down += nbytes

    def forget(self, link: _Link) -> None:
        """Remove a closed link."""
        with self._lock:
            if link in self._links:
                self._links.remove(link)

    def stop(self) -> None:
        """Stop accepting, close every connection, join the threads."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._sock.close()
        links = self.links()
        for link in links:
            link.close()
        for link in links:
            link.join(2)

    # ---------------------------------------------------------------- internals
    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                full = len(self._links) >= self.max_connections
            if self.refusing or full:
                if full:
                    log.warning("link proxy refused a connection: %d open", self.max_connections)
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(self, client, upstream)
            with self._lock:
                self._links.append(link)
                self.accepted += 1
            link.start()

    def __enter__(self) -> LinkProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run a proxy from the shell until Ctrl-C (for the demo)."""
    parser = argparse.ArgumentParser(description="Loopback TCP proxy with link faults.")
    parser.add_argument("--target", type=int, required=True, help="port on 127.0.0.1 to forward to")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any)")
    parser.add_argument("--latency", type=float, default=0.0, help="one-way delay in seconds")
    parser.add_argument("--rate", type=float, default=0.0, help="bytes per second each way (0: none)")
    args = parser.parse_args(argv)
    with LinkProxy(args.target, listen_port=args.port, latency=args.latency,
                   rate_bps=args.rate) as proxy:
        print(f"listening on 127.0.0.1:{proxy.port} -> 127.0.0.1:{args.target}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
