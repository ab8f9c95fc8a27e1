"""The local engine's dynamic batcher: one worker's requests -> ``batching.run_batch`` calls.

One batch runs at a time, on one thread beside the event loop (ONNX Runtime releases the GIL,
so the loop keeps parsing requests while the model computes). The policy:

* an idle worker starts a batch at once with the requests queued now (``max_delay_ms`` 0, the
  local default): a lone request waits for nobody, so latency at low load is one model call;
* while a batch runs, new requests queue; when it ends, the next batch takes up to
  ``max_batch`` of them. Under load the batch size follows the arrival rate by itself;
* with ``max_delay_ms`` > 0 (Triton's and Ray's policy) the first request of a batch waits up
  to that long for the batch to fill. That wait is added in full to a lone request, so the
  2 ms of Ray's default alone would break a 2 ms p99 at concurrency 1: the local default is 0
  (indicative runs under a load average of ~17 showed p50 at concurrency 1 going from 5.0 to
  11.8 ms with a 2 ms wait; benchmarks/results/serve-indicative-2026-12-02);
* a worker holds at most ``capacity`` requests (queued and running); one more is refused at
  once with 503 + Retry-After (``Overloaded``), so a flood is shed, not queued without end.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from edgegen.serve.protocol import Done, ProtocolError, Work

RunBatch = Callable[[list[Work]], list[Done]]


class Overloaded(ProtocolError):
    """The worker holds ``capacity`` requests: a 503 (``app.Endpoints`` adds Retry-After)."""

    def __init__(self, capacity: int) -> None:
        super().__init__(f"the server is at capacity ({capacity} requests held by this worker); "
                         "retry after the Retry-After seconds", 503)


class Batcher:
    """``await batcher(work)`` -> its ``Done``; call from one event loop only."""

    def __init__(self, run: RunBatch, *, max_batch: int, max_delay_ms: float,
                 capacity: int) -> None:
        self._run = run
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000.0
        self.capacity = capacity
        self._queue: deque[tuple[Work, asyncio.Future[Done]]] = deque()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="edgegen-infer")
        self.held = 0  # requests admitted and not yet answered
        self.batches = 0
        self.requests = 0

    async def __call__(self, work: Work) -> Done:
        if self.held >= self.capacity:
            raise Overloaded(self.capacity)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Done] = loop.create_future()
        self._queue.append((work, fut))
        self.held += 1
        if len(self._queue) >= self.max_batch:
            self._full.set()
        if self._task is None:
            self._task = loop.create_task(self._loop())
        try:
            return await fut
        finally:
            self.held -= 1

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self.max_delay_s > 0 and len(self._queue) < self.max_batch:
                    await self._wait_to_fill()
                take = min(self.max_batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(take)]
                if len(self._queue) < self.max_batch:
                    self._full.clear()
                works = [w for w, _ in batch]
                try:
                    done = await loop.run_in_executor(self._pool, self._run, works)
                except Exception as exc:  # noqa: BLE001 - each request gets the error
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                else:
                    for (_, fut), d in zip(batch, done):
                        if not fut.done():  # a cancelled request (shutdown) is skipped
                            fut.set_result(d)
                self.batches += 1
                self.requests += take
        finally:
            self._task = None

    async def _wait_to_fill(self) -> None:
        """Until the queue holds ``max_batch`` or the first request has waited the delay."""
        deadline = time.monotonic() + self.max_delay_s
        while len(self._queue) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self._full.wait(), left)
            except TimeoutError:
                return

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
