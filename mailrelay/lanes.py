"""Blocking work off the event loop, without ThreadPoolExecutor's locks.

    lane = Lane("relay-spool", threads=8)
    result = await lane.run(fn, *args)      fn runs in one of the lane's threads
    lane.stop()

Why not `loop.run_in_executor`: ThreadPoolExecutor.submit takes a lock that
its workers also take when they go idle (`_idle_semaphore`) and a global
one. Under load, with judge threads holding the GIL, the event loop blocks
on that lock until a worker gets the GIL back: measured at 10-20 % of the
relay's time. A lane is a SimpleQueue (a put never waits) and a result
handed back with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = None


class Lane:
    def __init__(self, name: str, threads: int) -> None:
        self.name = name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((fn, args, future, loop))
        return await future

    def stop(self) -> None:
        """The threads finish what they hold and exit (not waited for)."""
        for _ in self._threads:
            self._queue.put(_STOP)

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            fn, args, future, loop = item
            try:
                result = fn(*args)
            except BaseException as err:  # handed to the awaiting coroutine
                _hand_back(loop, _set_exception, future, err)
            else:
                _hand_back(loop, _set_result, future, result)
            del item, fn, args, future, loop


def _hand_back(loop: asyncio.AbstractEventLoop, setter, future, value) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
        loop.call_soon_threadsafe(setter, future, value)


def _set_result(future: asyncio.Future, value: Any) -> None:
    if not future.done():  # cancelled (a timeout) meanwhile
        future.set_result(value)


def _set_exception(future: asyncio.Future, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
