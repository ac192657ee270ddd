"""The continuous batcher: grouping, ordering, errors, overload, shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest

from classifier.batching import Batcher, Overloaded
from classifier.errors import ClientError


class Gate:
    """A run_batch that records its batches and can be held closed to let a queue build up."""

    def __init__(self) -> None:
        self.batches: list[list] = []
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()

    def __call__(self, items: list) -> list:
        self.entered.set()
        self.open.wait(10)
        self.batches.append(list(items))
        if "boom" in items:
            raise ValueError("boom")
        return [f"answer to {item}" for item in items]


async def start_first(batcher: Batcher, gate: Gate) -> asyncio.Future:
    """A call "first" that is held inside run_batch until the gate opens."""
    gate.open.clear()
    first = asyncio.ensure_future(batcher.submit("first"))
    await asyncio.to_thread(gate.entered.wait, 10)
    return first


async def hold_then_release(batcher: Batcher, gate: Gate, items: list) -> list:
    """Start one call, hold it while `items` queue up, then let everything go."""
    first = await start_first(batcher, gate)
    rest = [asyncio.ensure_future(batcher.submit(item)) for item in items]
    await asyncio.sleep(0.05)
    gate.open.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_a_lone_call_runs_at_once_and_gets_its_own_answer():
    gate = Gate()
    batcher = Batcher(gate, max_batch_size=8, max_queue=100)
    timing: dict[str, float] = {}
    assert asyncio.run(batcher.submit("x", timing)) == "answer to x"
    assert gate.batches == [["x"]]
    assert set(timing) == {"queue", "model"} and timing["queue"] < 0.5


def test_calls_that_queue_while_the_model_runs_become_one_batch_in_order():
    gate = Gate()
    batcher = Batcher(gate, max_batch_size=4, max_queue=100)
    items = [f"image {i}" for i in range(6)]
    answers = asyncio.run(hold_then_release(batcher, gate, items))
    assert answers == [f"answer to {item}" for item in ["first", *items]]
    # the first ran alone; the six that queued meanwhile ran as batches of at most four
    assert gate.batches == [["first"], items[:4], items[4:]]


def test_take_chooses_how_many_of_the_queued_calls_run_together():
    gate = Gate()
    offered: list[int] = []

    def powers_of_two(queued: int) -> int:  # what a model compiled for 1, 2, 4, 8 might want
        offered.append(queued)
        return 1 << (queued.bit_length() - 1)

    batcher = Batcher(gate, max_batch_size=8, max_queue=100, take=powers_of_two)
    items = [f"image {i}" for i in range(7)]
    answers = asyncio.run(hold_then_release(batcher, gate, items))
    assert answers == [f"answer to {item}" for item in ["first", *items]]
    assert gate.batches == [["first"], items[:4], items[4:6], items[6:]]
    assert offered == [1, 7, 3, 1]


def test_an_error_reaches_every_caller_of_its_batch_and_the_batcher_goes_on():
    gate = Gate()
    batcher = Batcher(gate, max_batch_size=4, max_queue=100)
    answers = asyncio.run(hold_then_release(batcher, gate, ["a", "boom"]))
    assert answers[0] == "answer to first"
    assert all(isinstance(answer, ValueError) for answer in answers[1:])
    assert asyncio.run(batcher.submit("later")) == "answer to later"


class AnswersOnce(Gate):
    def __call__(self, items: list) -> list:
        return super().__call__(items)[:1]


def test_a_wrong_number_of_results_is_an_error_not_a_mixup():
    gate = AnswersOnce()
    batcher = Batcher(gate, max_batch_size=4, max_queue=100)
    answers = asyncio.run(hold_then_release(batcher, gate, ["a", "b"]))
    assert answers[0] == "answer to first"  # alone, one answer is right
    assert all(isinstance(answer, RuntimeError) for answer in answers[1:]), answers


def test_a_full_queue_refuses_at_once_with_retry_after():
    gate = Gate()
    batcher = Batcher(gate, max_batch_size=4, max_queue=2)
    answers = asyncio.run(hold_then_release(batcher, gate, ["a", "b", "c", "d"]))
    refused = [answer for answer in answers if isinstance(answer, Overloaded)]
    assert len(refused) == 2 and answers[:3] == ["answer to first", "answer to a", "answer to b"]
    assert all(error.status == 503 and error.retry_after >= 1 for error in refused)
    assert isinstance(refused[0], ClientError) and "busy" in refused[0].message


def test_close_finishes_what_was_queued_and_refuses_the_rest():
    gate = Gate()
    batcher = Batcher(gate, max_batch_size=2, max_queue=100)

    async def scenario():
        first = await start_first(batcher, gate)
        queued = [asyncio.ensure_future(batcher.submit(x)) for x in "abc"]
        await asyncio.sleep(0.05)
        closing = asyncio.ensure_future(asyncio.to_thread(batcher.close, 10))
        await asyncio.sleep(0.05)
        with pytest.raises(ClientError, match="shutting down"):
            await batcher.submit("too late")
        gate.open.set()
        await closing
        return await asyncio.gather(first, *queued)

    assert asyncio.run(scenario()) == [f"answer to {x}" for x in ["first", "a", "b", "c"]]
    assert not batcher._thread.is_alive()


def test_callers_that_went_away_are_not_run():
    gate = Gate()
    batcher = Batcher(gate, max_batch_size=8, max_queue=100)

    async def scenario():
        first = await start_first(batcher, gate)
        gone = asyncio.ensure_future(batcher.submit("gone"))
        kept = asyncio.ensure_future(batcher.submit("kept"))
        await asyncio.sleep(0.05)
        gone.cancel()
        gate.open.set()
        return await asyncio.gather(first, kept)

    assert asyncio.run(scenario()) == ["answer to first", "answer to kept"]
    assert gate.batches == [["first"], ["kept"]]


def test_a_caller_on_a_plain_thread_gets_its_answers_in_order():
    gate = Gate()
    batcher = Batcher(gate, max_batch_size=2, max_queue=100)
    assert batcher.run(["a", "b", "c"]) == ["answer to a", "answer to b", "answer to c"]
    assert gate.batches == [["a", "b"], ["c"]]
    with pytest.raises(Overloaded):
        Batcher(gate, max_batch_size=2, max_queue=2).run(["a", "b", "c"])


def idle_work(batcher: Batcher, gate: Gate, name: str, quiet_s: float) -> asyncio.Future:
    """Work for the batcher's spare time that shows among the gate's batches when it runs."""
    return asyncio.ensure_future(
        batcher.when_idle(lambda: gate.batches.append(name), quiet_s=quiet_s, due_s=10)
    )


def test_idle_work_runs_on_the_model_thread_after_the_batches_that_were_waiting():
    gate = Gate()
    batcher = Batcher(gate, max_batch_size=8, max_queue=100, name="model")
    ran: list[str] = []

    def work() -> str:
        ran.append(threading.current_thread().name)
        gate.batches.append("idle work")
        return "explained"

    async def scenario():
        first = await start_first(batcher, gate)
        queued = asyncio.ensure_future(batcher.submit("queued"))
        idle = asyncio.ensure_future(batcher.when_idle(work, quiet_s=0.05, due_s=10))
        await asyncio.sleep(0.05)
        gate.open.set()
        return await asyncio.gather(first, queued, idle)

    assert asyncio.run(scenario()) == ["answer to first", "answer to queued", "explained"]
    assert gate.batches == [["first"], ["queued"], "idle work"]
    assert ran == ["model"]


def test_idle_work_on_a_busy_model_takes_its_turn_between_two_batches_when_due():
    gate = Gate()
    batcher = Batcher(gate, max_batch_size=8, max_queue=100)

    async def busy_for(seconds: float) -> None:  # a new image every 10 ms
        for _ in range(int(seconds / 0.01)):
            asyncio.ensure_future(batcher.submit("image"))
            await asyncio.sleep(0.01)

    async def scenario():
        busy = asyncio.ensure_future(busy_for(1.5))
        await asyncio.sleep(0.05)  # busy already
        started = asyncio.get_running_loop().time()
        # a quiet spell far above the 10 ms gaps: it never comes
        await batcher.when_idle(lambda: gate.batches.append("idle"), quiet_s=0.5, due_s=0.6)
        waited = asyncio.get_running_loop().time() - started
        await busy
        return waited

    waited = asyncio.run(scenario())
    assert 0.55 < waited < 1.2, waited
    position = gate.batches.index("idle")
    assert position > 0 and gate.batches[position + 1 :], "batches before and after it"


def test_idle_work_whose_caller_went_away_never_runs():
    gate = Gate()
    batcher = Batcher(gate, max_batch_size=8, max_queue=100)

    async def scenario():
        first = await start_first(batcher, gate)
        gone = idle_work(batcher, gate, "gone", quiet_s=0)
        await asyncio.sleep(0.05)
        gone.cancel()
        await asyncio.sleep(0.05)  # the cancellation reaches when_idle, which withdraws it
        gate.open.set()
        await first
        return await batcher.when_idle(lambda: "later", quiet_s=0, due_s=10)

    assert asyncio.run(scenario()) == "later"
    assert "gone" not in gate.batches


def test_close_runs_the_idle_work_still_waiting():
    gate = Gate()
    batcher = Batcher(gate, max_batch_size=8, max_queue=100)

    async def scenario():
        first = await start_first(batcher, gate)
        waiting = asyncio.ensure_future(batcher.when_idle(lambda: "done", quiet_s=60, due_s=60))
        await asyncio.sleep(0.05)
        closing = asyncio.ensure_future(asyncio.to_thread(batcher.close, 10))
        gate.open.set()
        await closing
        return await asyncio.gather(first, waiting)

    assert asyncio.run(scenario()) == ["answer to first", "done"]


def test_an_error_in_idle_work_reaches_its_caller_and_the_batcher_goes_on():
    batcher = Batcher(Gate(), max_batch_size=8, max_queue=100)

    def fails():
        raise ValueError("no gradients")

    with pytest.raises(ValueError, match="no gradients"):
        asyncio.run(batcher.when_idle(fails, quiet_s=0, due_s=1))
    assert asyncio.run(batcher.submit("later")) == "answer to later"


def test_idle_work_leaves_time_after_a_batch_for_the_answers_to_come_back_as_new_images():
    """Clients that wait for their answers send their next image just after a batch: work in
    the spare time must let those come first, not start the moment the queue is empty."""
    gate = Gate()
    batcher = Batcher(gate, max_batch_size=8, max_queue=100)

    async def scenario():
        first = await start_first(batcher, gate)
        idle = idle_work(batcher, gate, "idle", quiet_s=0.2)
        await asyncio.sleep(0.3)  # longer than the quiet spell, but the model is busy
        gate.open.set()
        await first
        await asyncio.sleep(0.02)  # the answer came back; the client's next image follows
        await batcher.submit("next")
        await idle

    asyncio.run(scenario())
    assert gate.batches == [["first"], ["next"], "idle"]
