"""uvicorn's WebSocket protocol as favgate runs it (favgate.wsprotocol): writes of one
turn of the loop leave as one, in order; compression as the setting says.

The transport is a real TCP connection on 127.0.0.1; the protocol's own behaviour is
every WebSocket test's (test_subscriptions, test_websocket and test_fanout serve it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from test_subscriptions import PROTOCOL, TIMEOUT, serve
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import PerMessageDeflate

from favgate.config import Settings
from favgate.wsprotocol import CoalescingTransport


@dataclass
class Written(asyncio.Transport):
    """A real transport, each of its writes recorded."""

    transport: asyncio.Transport
    writes: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()

    def close(self) -> None:
        self.transport.close()


@dataclass
class Connection:
    writer: Written
    coalescing: CoalescingTransport
    reader: asyncio.StreamReader

    async def received(self, size: int) -> bytes:
        async with asyncio.timeout(TIMEOUT):
            return await self.reader.readexactly(size)


@pytest.fixture
async def connection() -> AsyncIterator[Connection]:
    accepted: asyncio.Future[asyncio.Transport] = asyncio.get_running_loop().create_future()

    class Accepting(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            accepted.set_result(transport)

    server = await asyncio.get_running_loop().create_server(Accepting, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, client = await asyncio.open_connection("127.0.0.1", port)
    async with asyncio.timeout(TIMEOUT):
        written = Written(await accepted)
    try:
        yield Connection(written, CoalescingTransport(written, asyncio.get_running_loop()), reader)
    finally:
        client.close()
        written.close()
        server.close()
        await server.wait_closed()


async def test_the_writes_of_one_turn_leave_as_one_in_order(connection: Connection) -> None:
    for chunk in (b"first ", b"", b"second ", bytearray(b"third")):
        connection.coalescing.write(chunk)
    assert connection.writer.writes == []  # nothing yet: the turn is not over
    assert connection.coalescing.get_write_buffer_size() == len(b"first second third")
    assert await connection.received(18) == b"first second third"
    assert connection.writer.writes == [b"first second third"]
    connection.coalescing.write(b"next turn")
    assert await connection.received(9) == b"next turn"
    assert connection.writer.writes == [b"first second third", b"next turn"]


async def test_closing_sends_what_was_written_first(connection: Connection) -> None:
    connection.coalescing.write(b"a close frame")
    connection.coalescing.close()
    assert await connection.received(13) == b"a close frame"
    async with asyncio.timeout(TIMEOUT):
        assert await connection.reader.read() == b""  # then the connection ends
    assert connection.coalescing.is_closing()


async def test_what_is_pending_when_the_connection_is_gone_is_dropped(
    connection: Connection,
) -> None:
    connection.coalescing.write(b"never sent")
    connection.writer.close()  # gone before the turn ends: no error, nothing written
    await asyncio.sleep(0.05)
    assert connection.writer.writes == []


@pytest.mark.parametrize("deflate", [True, False])
async def test_compression_is_a_setting(settings: Settings, deflate: bool) -> None:
    async with (
        serve(settings.replace(ws_per_message_deflate=deflate)) as address,
        connect(
            f"ws://{address}/graphql",
            subprotocols=[PROTOCOL],  # type: ignore[list-item]
            compression="deflate",  # offered, as browsers do
        ) as websocket,
    ):
        await websocket.send(json.dumps({"type": "connection_init", "payload": {}}))
        negotiated = [type(each) for each in websocket.protocol.extensions]
    assert negotiated == ([PerMessageDeflate] if deflate else [])
