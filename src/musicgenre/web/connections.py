"""Connection limits for ``musicgenre serve``: idle and trickling clients cannot hold the server.

uvicorn keeps a connection that sends nothing open forever, and reads an upload as slowly as the
client sends it; enough such connections exhaust the server's file descriptors and lock every user
out. ``guarded_protocol`` wraps uvicorn's HTTP protocol with three rules (``ConnectionLimits``,
set with ``serve`` flags):

- **Header timeout** (``--header-timeout``, default 10 s): a connection must send a complete request
  head within this long of opening, or of its previous response; else it is closed.
- **Body rate** (``--body-timeout``, default 30 s; ``--min-upload-kbps``, default 10 KB/s): once the
  head is in, the body must keep arriving: no gap longer than the body timeout, and after that grace at
  least the minimum average rate (bytes received >= rate x (seconds since the head - body timeout)).
  A client that fails either gets ``408 Request Timeout`` and is closed. Time in which the server
  itself stopped reading (the app not consuming the body yet) does not count against the client.
- **Connection cap** (``--max-connections``, default 200): a connection that would go over the cap
  first closes the oldest connection that has no request in progress (idle, or still sending its
  head); if every connection is busy with a request, the new one is answered ``503`` with
  ``Retry-After`` and closed. So idle connections never lock out a real request, and the server never
  holds more than the cap (plus the one being refused) of sockets for HTTP.

Responses in progress (an analysis, the page's event stream) are never cut by these rules; the analysis
queue's own time limit covers them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_TICK = 1.0  # seconds between checks of a connection whose request is in progress


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 200
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    min_body_bytes_per_s: float = 10_000.0

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.header_timeout_s <= 0 or self.body_timeout_s <= 0 \
                or self.min_body_bytes_per_s < 0:
            raise ValueError("max_connections >= 1, positive timeouts and a non-negative rate are required")


def _raw_response(status: str, text: str, extra: str = "") -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {len(body)}\r\n"
            f"connection: close\r\n{extra}\r\n").encode() + body


class _Counters:
    def __init__(self) -> None:
        self.header_timeouts = 0
        self.body_timeouts = 0
        self.evicted_idle = 0
        self.refused_503 = 0
        self._last_warning = 0.0

    def warn(self, what: str) -> None:  # at most one line every 10 s, with the totals
        now = time.monotonic()
        if now - self._last_warning >= 10:
            self._last_warning = now
            log.warning("%s (so far: %s)", what, self.as_dict())

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


def guarded_protocol(limits: ConnectionLimits, base: type[asyncio.Protocol] | None = None) -> type[Any]:
    """uvicorn's HTTP protocol class (``base``, default uvicorn's auto choice) with ``limits`` enforced; pass
    it as ``uvicorn.run(..., http=...)``. Each call makes a new class with its own counters (``.counters``)."""
    if base is None:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        base = AutoHTTPProtocol
    counters = _Counters()
    Base: Any = base

    class Guarded(Base):
        _limits = limits

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            now = self.loop.time()
            self._g_waiting_since = now  # waiting for a request head since
            self._g_body_since = self._g_last_data = self._g_last_check = now
            self._g_body_bytes = 0
            self._g_timer: asyncio.TimerHandle | None = None
            if len(self.connections) > limits.max_connections and not self._g_make_room():
                counters.refused_503 += 1
                counters.warn(f"{len(self.connections)} connections open (cap {limits.max_connections}), all busy: "
                              "answered 503")
                transport.write(_raw_response("503 Service Unavailable",
                                              "too many connections; try again shortly\n", "retry-after: 1\r\n"))
                transport.close()
                return
            self._g_schedule(limits.header_timeout_s)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._g_timer is not None:
                self._g_timer.cancel()
                self._g_timer = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            before = self.cycle
            super().data_received(data)
            now = self.loop.time()
            if self.cycle is not None and self.cycle is not before:  # a request head just arrived
                self._g_body_since = self._g_last_data = self._g_last_check = now
                self._g_body_bytes = 0
                self._g_schedule(_TICK)
            elif self.cycle is not None and not self.cycle.response_complete:
                self._g_body_bytes += len(data)
                self._g_last_data = now

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._g_waiting_since = self.loop.time()
            self._g_schedule(limits.header_timeout_s)

        # -- the rules --

        def _g_idle(self) -> bool:
            """No request in progress: waiting for (or still reading) a request head."""
            return self.cycle is None or bool(self.cycle.response_complete)

        def _g_make_room(self) -> bool:
            idle = [c for c in self.connections if c is not self and isinstance(c, Guarded)
                    and c._g_idle() and not c.transport.is_closing()]
            if not idle:
                return False
            oldest = min(idle, key=lambda c: c._g_waiting_since)
            oldest.transport.close()
            counters.evicted_idle += 1
            counters.warn(f"connection cap {limits.max_connections} reached: closed the oldest idle connection")
            return True

        def _g_schedule(self, delay: float) -> None:
            if self._g_timer is not None:
                self._g_timer.cancel()
            self._g_timer = self.loop.call_later(max(0.01, delay), self._g_check)

        def _g_check(self) -> None:
            self._g_timer = None
            transport = self.transport
            if transport is None or transport.is_closing() or transport.get_protocol() is not self:
                return  # closed, or handed to a WebSocket protocol
            now = self.loop.time()
            if self._g_idle():
                due = self._g_waiting_since + limits.header_timeout_s
                if now >= due:
                    counters.header_timeouts += 1
                    transport.close()
                else:
                    self._g_schedule(due - now)
                return
            if not self.cycle.more_body:  # the app has the whole request: its own limits apply
                self._g_last_check = now
                self._g_schedule(5 * _TICK)
                return
            if self.flow.read_paused:  # we stopped reading, not the client: the clock stops too
                shift = now - self._g_last_check
                self._g_body_since += shift
                self._g_last_data += shift
            self._g_last_check = now
            elapsed = now - self._g_body_since
            allowed = limits.min_body_bytes_per_s * (elapsed - limits.body_timeout_s)
            if now - self._g_last_data > limits.body_timeout_s or self._g_body_bytes < allowed:
                counters.body_timeouts += 1
                counters.warn("closed an upload that arrived too slowly")
                transport.write(_raw_response(
                    "408 Request Timeout", f"the upload arrived too slowly (limits: no gap over "
                    f"{limits.body_timeout_s:g} s, then {limits.min_body_bytes_per_s / 1000:g} KB/s)\n"))
                transport.close()
                return
            self._g_schedule(_TICK)

    Guarded.counters = counters  # type: ignore[attr-defined]
    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded
