"""Running a fleet into memory, for tests that need its messages without a broker."""

from __future__ import annotations

from simulators.outputs import OutputCounts

Message = tuple[str, bytes]


class MemoryOutput:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.counts = OutputCounts()

    def publish(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))
        self.counts.published += 1
        self.counts.acknowledged += 1

    def close(self, timeout_s: float) -> OutputCounts:
        return self.counts
