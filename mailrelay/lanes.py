"""Blocking work off the event loop, without ThreadPoolExecutor's locks.

    lane = Lane("relay-spool", threads=8)
    result = await lane.run(fn, *args)      fn runs in one of the lane's threads
    lane.stop()

    batcher = Batcher("relay-spool-remove", handle)   handle(list) on its thread, batched
    batcher.put(item)                                fire and forget

Why not `loop.run_in_executor`: ThreadPoolExecutor.submit takes a lock that
its workers also take when they go idle (`_idle_semaphore`) and a global
one; py-spy showed the event loop in `submit` for 10-20 % of the relay's GIL
time under load, and a hop costs 2-4 times a lane's (measured: 35-55 µs
against 12-16 µs of CPU). A lane is a SimpleQueue (a put never waits) and a
result handed back with `call_soon_threadsafe`. Every hand-off still costs
GIL traffic between threads, so per-message work that need not be awaited
one by one is batched (Batcher here, mailrelay.spool_writer for the spool).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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


class Batcher:
    """One thread handling, as one batch, whatever was put since it last woke.

    `put` never waits and nothing comes back through it: for work the event loop need not
    await (removing delivered entries), or whose handler answers the callers itself
    (mailrelay.spool_writer's group commit). Under load the batches grow, so the thread wakes,
    and takes the GIL, once per batch rather than once per item.
    """

    def __init__(self, name: str, handle: Callable[[list], None], max_batch: int = 256) -> None:
        self.handle = handle
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        self._queue.put(item)

    def stop(self) -> None:
        """The thread handles what was put before, then exits."""
        self._queue.put(_STOP)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _serve(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                batch.append(more)
            try:
                self.handle(batch)
            except Exception:  # the handler's own errors are its business; keep serving
                logging.getLogger("leakguard.mailrelay").exception("%s failed", self._thread.name)
