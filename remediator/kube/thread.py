"""``KubeThread``: a cluster client on a thread and event loop of its own.

Context reads (the target, its pods, the namespace's events, logs) go out beside an
action, while its intent commits and while it waits for its own answers. On the
server's loop, their sends and answers took that loop's time from the action: about
0.7 ms of every alert's way to its first write. Here the kernel's part of each request
runs in parallel with the server's loop, and their Python waits only for the GIL.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Self, TypeVar

from remediator.kube.client import Kube
from remediator.settings import KubeSettings

T = TypeVar("T")


class KubeThread:
    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self._loop = loop
        self._thread = thread
        self._kube: Kube | None = None

    @classmethod
    async def start(cls, settings: KubeSettings) -> Self:
        """Start the thread and connect its client; a bad configuration raises here."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="kube-reads", daemon=True)
        thread.start()
        reads = cls(loop, thread)
        try:
            reads._kube = await reads._on_thread(Kube.connect(settings))
        except BaseException:
            await reads.close()
            raise
        return reads

    async def run(self, fn: Callable[[Kube], Coroutine[Any, Any, T]]) -> T:
        """``fn(kube)`` on the thread's loop. Cancelling the caller cancels it there."""
        assert self._kube is not None, "KubeThread.start connects the client"
        return await self._on_thread(fn(self._kube))

    async def close(self) -> None:
        """Cancel what still runs there, close the client, stop and join the thread."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            await self._on_thread(self._shut())
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join)
        self._loop.close()

    async def _shut(self) -> None:
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if self._kube is not None:
            await self._kube.close()

    async def _on_thread(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))
