"""A TCP relay a test can break the way a lost server breaks a connection.

`cut()` aborts every open connection both ways at once (no close frame: a
WebSocket client sees 1006, as after a kill -9); `freeze()` stops their bytes
both ways and closes nothing (a dead link: only the client's pings notice);
`target` picks the server for new connections (a load balancer that moved on);
`refusing` turns new connections away at once (a process that is gone).
Runs on the test's own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib


class Relay:
    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self.connections = 0
        self.refusing = False
        self._server: asyncio.base_events.Server | None = None
        self._pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, asyncio.Event]] = []

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime?intent=transcription"

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        for client, upstream, _ in self._pairs:
            for writer in (client, upstream):
                writer.transport.abort()
        self._pairs.clear()

    def freeze(self) -> None:
        for _, _, flowing in self._pairs:
            flowing.clear()

    async def _accept(self, client_reader, client_writer) -> None:
        self.connections += 1
        if self.refusing:
            client_writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        flowing = asyncio.Event()
        flowing.set()
        self._pairs.append((client_writer, up_writer, flowing))

        async def pipe(reader, writer):
            with contextlib.suppress(Exception):
                while data := await reader.read(65536):
                    await flowing.wait()
                    writer.write(data)
                    await writer.drain()
            if flowing.is_set():
                writer.transport.abort()

        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))
