"""Connections per caller: what one slice host may hold of the controller's
sockets.

uvicorn accepts every TCP connection and keeps one that never sends a
request for as long as its peer likes. Every connection is a file
descriptor of the controller's process, so one slice host opening tens of
thousands of idle connections would use them all up: no other slice's
connection would be accepted, nor could the controller open a file or reach
a switch. ``peer_limited()`` is the HTTP protocol for ``uvicorn.Config(http=
...)`` that keeps at most ``CONNECTIONS_PER_HOST`` connections per
peer address (more are reset at once) and closes a new connection that sends
nothing within uvicorn's keep-alive timeout, as uvicorn does with an idle
one after a request. An answer is held in the controller's memory until its
peer reads it, past any timeout of uvicorn's (a connection closed with an
answer unsent waits for it to be sent): a connection whose peer has not
read what is buffered for it within ``WRITE_STALL`` seconds is reset, and
the answer dropped.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from .limits import CONNECTIONS_PER_HOST

#: seconds an answer may wait for its peer to read it (review 19: one
#: slice host's 60 connections, each with a batch's 4 MiB answer it never
#: read, held 274 MB of the controller until it closed them; 256 would hold
#: over a gigabyte)
WRITE_STALL = 10.0

#: requests a connection may send ahead of the answer it waits for (HTTP/1.1
#: pipelining; slice programs' clients send none ahead). uvicorn queues every
#: pipelined request it parses and reads on after each answer, however many
#: wait: one slice host's connection pipelining tiny requests (reading the
#: answers) grew the controller by 150 MB/s, 2.3 GB in 15 s (review 19b).
PIPELINED = 8

#: bytes of one request's head (request line and headers): the parser keeps
#: no limit, and joins a long header's pieces over and over: one connection
#: sending an endless header held the event loop, every slice's call taking
#: 1-2 s, and grew the controller without end (review 19b)
HEAD_BYTES = 64 * 1024


def peer_limited(per_host: int = CONNECTIONS_PER_HOST, base: type = AutoHTTPProtocol,
                 allowed: frozenset[str] | None = None,
                 write_stall: float = WRITE_STALL) -> type:
    """An HTTP protocol class with its own count of connections per peer.
    ``allowed``: the only peers served at all; others are reset at once (the
    operator listener: a slice host that routes to its address through its
    management link reaches it, the host's kernel accepting for any of its
    addresses, and would otherwise hold connections there). A connection
    whose transport stays paused (its peer does not read what is buffered
    for it, down to the transport's low-water mark) for ``write_stall``
    seconds is reset, and its buffer freed."""
    open_by_host: dict[str | None, int] = {}

    class PeerLimited(base):
        _host: str | None = None
        _counted = False
        _stalled: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:
            peer = transport.get_extra_info("peername")
            host = peer[0] if peer else None
            if (allowed is not None and host not in allowed) or \
                    open_by_host.get(host, 0) >= per_host:
                transport.abort()                 # a reset: nothing read, nothing kept
                return
            open_by_host[host] = open_by_host.get(host, 0) + 1
            self._host, self._counted = host, True
            super().connection_made(transport)
            # Until its first byte, the connection is as idle as after a response.
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler)

        _in_head = False
        _head_bytes = 0

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._in_head:
                self._head_bytes += len(data)
                if self._head_bytes > HEAD_BYTES:
                    self.transport.abort()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._head_bytes = True, 0

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()
            if len(getattr(self, "pipeline", ())) > PIPELINED:
                self.transport.abort()            # a reset; the parser stops here
                raise ConnectionAbortedError("too many pipelined requests")

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._stalled is None:
                self._stalled = self.loop.call_later(write_stall, self.transport.abort)

        def _unstall(self) -> None:
            if self._stalled is not None:
                self._stalled.cancel()
                self._stalled = None

        def resume_writing(self) -> None:
            self._unstall()
            super().resume_writing()

        def connection_lost(self, exc: Exception | None) -> None:
            self._unstall()
            if not self._counted:
                return
            self._counted = False
            n = open_by_host.get(self._host, 1) - 1
            if n:
                open_by_host[self._host] = n
            else:
                open_by_host.pop(self._host, None)
            super().connection_lost(exc)

    PeerLimited.open_by_host = open_by_host
    return PeerLimited
