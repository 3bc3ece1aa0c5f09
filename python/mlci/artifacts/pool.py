"""Worker threads for transfers that never keep the process alive, so Ctrl-C ends a pull at once.

concurrent.futures' executors join their (non-daemon) threads at interpreter exit: one thread blocked on a
silent socket then holds the process for a whole read timeout after Ctrl-C. These threads are daemons; what
they leave behind is handled by their owners (partial downloads resume, temp files are removed on cancel).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class Cancelled(BaseException):
    """The work was cancelled (Ctrl-C). A BaseException, like KeyboardInterrupt: no `except Exception` in a
    retry loop may mistake it for a transient failure."""


class Pool:
    """`submit(fn, *args) -> Future` on at most `workers` daemon threads, started as needed."""

    def __init__(self, workers: int, name: str):
        self.workers = max(1, workers)
        self.name = name
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = \
            queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._queue.put((future, fn, args))
        with self._lock:
            if len(self._threads) < self.workers:
                t = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True)
                self._threads.append(t)
                t.start()
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(exc)

    def shutdown(self, cancel: bool = False) -> None:
        """Let the threads finish (they exit after the queued work); `cancel` drops work not yet started."""
        if cancel:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in self._threads:
            self._queue.put(None)
