"""uvicorn's WebSocket protocol, its writes coalesced: one socket write per connection
and turn of the event loop.

uvicorn writes each WebSocket message to its transport as it is sent, and each write is
a system call that pushes a packet through the TCP stack. When a change reaches many
subscriptions (``favgate.storage.changes``), a connection holding several of them sends
several messages in one turn of the loop: that was a third of the gateway's CPU time
under a fan-out. Here the messages written in one turn leave together, in order, at the
start of the next turn: the same bytes, in fewer packets. A message waits at most for
the rest of the turn that sent it.

Everything else is uvicorn's ``websockets-sansio`` implementation, which ``favgate
serve`` runs (``favgate.cli``): this module only hands it a transport that gathers
writes (``connection_made`` is asyncio's documented hook for the transport).

**Compression** (permessage-deflate) is used when the client offers it, as browsers and
most libraries do, unless ``FAVGATE_WS_PER_MESSAGE_DEFLATE`` is false. It is on by
default because a change's message (~250 bytes) mostly repeats the one before it and
compresses to a few dozen bytes, which counts for mobile clients. Its costs, measured
with ``bench/fanout.py``: ~40 KiB of memory per connection (its compressor and
decompressor), and ~3 us of CPU per message sent, about a tenth of the gateway's time
when one change reaches 2,000 subscriptions. A gateway serving clients on a fast network
may switch it off.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from favgate.config import Settings

__all__ = ["CoalescedWebSocketProtocol", "websocket_options"]


def websocket_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's WebSocket options, as ``favgate serve`` runs it (and the benchmark)."""
    return {
        # A message over the body cap is refused (1009) as its frame header is read,
        # before its payload is buffered: the implementation of the `websockets` package
        # checks the length against ws_max_size first (favgate.websocket).
        "ws": CoalescedWebSocketProtocol,
        "ws_max_size": settings.max_body_bytes,
        "ws_per_message_deflate": settings.ws_per_message_deflate,
    }


class CoalescingTransport(asyncio.Transport):
    """A transport whose writes of one turn of the loop go out as one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        """Write what is pending now; nothing once the connection is closing."""
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(b"".join(pending))

    def close(self) -> None:
        self.flush()  # a close frame, written just before, goes out first
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class CoalescedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol, writing through a ``CoalescingTransport``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        coalescing = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(coalescing)
