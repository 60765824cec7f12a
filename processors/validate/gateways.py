"""Which gateway may speak for which device: the registry's ``gateway`` column, checked per reading.

A gateway's batch may carry readings only of the devices the registry puts behind
that gateway. The check runs once a cycle's readings are assembled, whichever path
accepted them: each row's sequence number says which message it came from, so one
comparison of codes per row separates a gateway's own devices from the others,
which are dead-lettered as ``gateway_mismatch``. A stolen gateway can then forward
only its own devices' readings, not the whole city's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from processors.registry import Registry
from processors.topics import TopicError, TopicForm, TopicScheme
from processors.validate.messages import RawMessage

NOT_A_BATCH = -2
"""A message on a readings topic: a device speaks for itself there (the topic is checked elsewhere)."""
UNKNOWN_GATEWAY = -3
"""A gateway the registry does not name: no device is behind it."""
NO_GATEWAY = -1
"""A device the registry puts behind no gateway."""


class GatewayCheck:
    """Gateways as small integer codes: per message (its topic's gateway) and per device (its own)."""

    def __init__(self, registry: Registry, topics: TopicScheme) -> None:
        self.registry = registry
        self.topics = topics
        self._codes: dict[str, int] = {}
        self._of_device: dict[str, NDArray[np.int32]] = {}
        self._topics: dict[str, int] = {}
        """Batch topics already resolved to their gateway's code (a gateway sends on one topic per kind)."""

    def of_messages(self, messages: Sequence[RawMessage], candidates: Iterable[int]) -> NDArray[np.int32]:
        """Each message's gateway code, :data:`NOT_A_BATCH` for readings topics (and bad ones);
        only the ``candidates`` are looked at (the others are known not to be batches)."""
        codes = np.full(len(messages), NOT_A_BATCH, dtype=np.int32)
        marker = f"{self.topics.prefix}/batches/"
        known = self._topics
        for i in candidates:
            name = messages[i].topic
            if name.startswith(marker):
                code = known.get(name)
                if code is None:
                    code = self._topic_code(name)
                    if len(known) >= 4 * len(self.registry) + 1024:  # topics nobody registered: bounded
                        known.clear()
                    known[name] = code
                codes[i] = code
        return codes

    def _topic_code(self, name: str) -> int:
        try:
            topic = self.topics.parse(name)
        except TopicError:
            return NOT_A_BATCH
        return self._code(topic.source_id, add=False) if topic.form is TopicForm.BATCH else NOT_A_BATCH

    def foreign(self, kind: str, device: NDArray[np.intp], source: NDArray[np.int32]) -> NDArray[np.bool_]:
        """Rows that came in a gateway's batch but belong to a device not behind that gateway."""
        if not (source != NOT_A_BATCH).any():
            return np.zeros(device.shape, dtype=np.bool_)
        own = self._devices(kind)[device]
        foreign: NDArray[np.bool_] = (source != NOT_A_BATCH) & (own != source)
        return foreign

    def _devices(self, kind: str) -> NDArray[np.int32]:
        table = self.registry.tables[kind]
        known = self._of_device.get(kind)
        if known is None or known.size != len(table):
            known = np.array(
                [self._code(d.gateway) if d.gateway else NO_GATEWAY for d in table.devices], dtype=np.int32
            )
            self._of_device[kind] = known
        return known

    def _code(self, gateway: str, add: bool = True) -> int:
        """The code of ``gateway``; one the registry does not name is :data:`UNKNOWN_GATEWAY`
        unless ``add`` (a device's own gateway, as the registry is read)."""
        code = self._codes.get(gateway)
        if code is not None:
            return code
        if add:
            code = self._codes[gateway] = len(self._codes)
            return code
        for name in self.registry.tables:  # every device's gateway gets its code first
            self._devices(name)
        return self._codes.get(gateway, UNKNOWN_GATEWAY)
