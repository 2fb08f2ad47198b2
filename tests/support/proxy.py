"""A TCP forwarder tests control, to take a dependency (the database, the log sink) away and back."""

from __future__ import annotations

import asyncio
import threading

from psycopg.conninfo import conninfo_to_dict

from tests.support.processes import free_port


class TcpProxy:
    """127.0.0.1:<port> → a TCP address or a unix socket, in a thread of its own; `outage()` resets
    every connection and refuses new ones until `restore()`: a dependency going away as its
    client sees it, without stopping the shared server behind it."""

    def __init__(self, host: str, port: int, unix_path: str | None = None) -> None:
        self.unix_path = unix_path
        self.target = (host, port)
        self.port = free_port()
        self.cut = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._links: set[asyncio.StreamWriter] = set()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(5)

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut.is_set():
            writer.close()
            return
        try:
            if self.unix_path:
                up_reader, up_writer = await asyncio.open_unix_connection(self.unix_path)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._links.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._links.difference_update((writer, up_writer))

    def outage(self) -> None:
        """Reset every open connection and refuse new ones until `restore`."""

        def reset() -> None:
            self.cut.set()
            for w in list(self._links):
                w.transport.abort()

        self._loop.call_soon_threadsafe(reset)

    def restore(self) -> None:
        self.cut.clear()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)


def database_proxy(database_url: str) -> tuple[TcpProxy, str]:
    """A proxy to the test database (TCP or its unix socket), and the URL that goes through it."""
    info = conninfo_to_dict(database_url)
    host, port = str(info.get("host") or "127.0.0.1"), int(info.get("port") or 5432)
    proxy = TcpProxy(host, port, f"{host}/.s.PGSQL.{port}" if host.startswith("/") else None)
    user, password = info.get("user") or "postgres", info.get("password") or ""
    return proxy, f"postgresql://{user}{':' + password if password else ''}@127.0.0.1:{proxy.port}/{info['dbname']}"
