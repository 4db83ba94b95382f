"""Work raced against its client leaving: in the request's own task, with the cancellation taken back after."""

from __future__ import annotations

import asyncio

import pytest

from app.errors import ClientDisconnected
from app.http.disconnect import cancel_on_disconnect


class Client:
    """An ASGI ``receive`` whose disconnect arrives when told."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, object]:
        await self.gone.wait()
        return {"type": "http.disconnect"}


def _cancelling() -> int:
    """Cancellation requests the running task still has pending (0: any was taken back)."""
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


def test_finished_work_returns_its_result_and_leaves_nothing_running() -> None:
    async def main() -> tuple[str, int, int]:
        client = Client()
        result = await cancel_on_disconnect(client.receive, lambda: asyncio.sleep(0.01, "answer"))
        client.gone.set()  # a disconnect after the answer must not cancel what the task does next
        await asyncio.sleep(0.01)
        return result, _cancelling(), len(asyncio.all_tasks())

    assert asyncio.run(main()) == ("answer", 0, 1)


def test_a_disconnect_cancels_the_work_and_is_reported_as_such() -> None:
    steps: list[str] = []

    async def work() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            steps.append("work cancelled")
            raise
        return "never"

    async def main() -> int:
        client = Client()
        asyncio.get_running_loop().call_later(0.01, client.gone.set)
        with pytest.raises(ClientDisconnected):
            await cancel_on_disconnect(client.receive, work)
        await asyncio.sleep(0)  # the task still runs normally: the cancellation was taken back
        return _cancelling()

    assert asyncio.run(main()) == 0
    assert steps == ["work cancelled"]


def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def main() -> tuple[bool, int]:
        client = Client()
        request = asyncio.create_task(cancel_on_disconnect(client.receive, lambda: asyncio.sleep(5)))
        await asyncio.sleep(0.01)
        request.cancel()  # shutdown, not the client
        await asyncio.wait({request})
        return request.cancelled(), len(asyncio.all_tasks())

    assert asyncio.run(main()) == (True, 1)


def test_work_that_swallows_the_cancellation_still_ends_as_a_disconnect() -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "partial"
        return "never"

    async def main() -> int:
        client = Client()
        asyncio.get_running_loop().call_later(0.01, client.gone.set)
        with pytest.raises(ClientDisconnected):
            await cancel_on_disconnect(client.receive, stubborn)
        return _cancelling()

    assert asyncio.run(main()) == 0


def test_a_disconnect_noticed_as_the_work_returns_does_not_cancel_what_follows() -> None:
    async def main() -> str:
        client = Client()

        async def work() -> str:
            client.gone.set()
            await asyncio.sleep(0)  # the watcher finishes here; its callback runs after this task resumes
            return "answer"

        result = await cancel_on_disconnect(client.receive, work)
        await asyncio.sleep(0.01)  # a late cancellation would land here
        return result

    assert asyncio.run(main()) == "answer"
