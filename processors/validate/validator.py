"""The validator: a cycle of raw messages through the paths, assembled into batches and rejects.

A cycle goes through the paths in a fixed order. One-reading messages on topics
already resolved to a registered device are offered to the plain path, and what it
leaves to the column path (:meth:`Validator._fast_singles`); gateway batches are
offered to the plain path whole; every other message goes the general way, in
arrival order: the reference path reads its topic and payload, and the items of a
batch are offered to the column path before the model. Then each kind's rows from
all the paths are put back in arrival order (by sequence number), duplicates are
dead-lettered, and the rest become one :class:`~processors.batch.ReadingBatch` per kind.

Duplicates (the same device and timestamp twice, within a cycle or across recent
cycles) are rejected with reason ``duplicate``. The memory of recent timestamps is
only updated by :meth:`Validator.remember`, which the pipeline calls once the cycle
is durable: a cycle whose write failed is validated again exactly the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.batch import ReadingBatch
from processors.dedup import RecentTimestamps
from processors.kinds import KINDS, SensorKind
from processors.reasons import Reason
from processors.registry import Registry
from processors.timestamps import format_rfc3339
from processors.topics import ParsedTopic, TopicError, TopicForm, TopicScheme
from processors.validate.column_path import ColumnPath, Pending
from processors.validate.context import Context, Singles
from processors.validate.cycle import Cycle, Rows, item_bytes
from processors.validate.gateways import GatewayCheck
from processors.validate.limits import Limits
from processors.validate.messages import UNKNOWN, RawMessage, Reject, ValidationPolicy, ValidationResult
from processors.validate.plain import PlainPath
from processors.validate.reference import ReferencePath


class Validator:
    """Turns raw messages into per-kind batches against a registry and a policy.

    Pure: the caller passes the current time, so replays and tests are exact. The
    only state is the memory of recent timestamps (see :meth:`remember`) and caches.
    ``column_path=False`` leaves every message to the reference path, and
    ``plain_path=False`` leaves the plain path's share to the column path (both to
    compare the paths; they give the same results).
    """

    def __init__(
        self,
        registry: Registry,
        policy: ValidationPolicy | None = None,
        topics: TopicScheme | None = None,
        *,
        column_path: bool = True,
        plain_path: bool = True,
    ) -> None:
        self.registry = registry
        self.policy = policy or ValidationPolicy()
        self.topics = topics or TopicScheme()
        self.column_path = column_path
        self.plain_path = column_path and plain_path
        """Offer well-formed readings to the plain path first (off: the column path alone)."""
        self.recent: dict[str, RecentTimestamps] = {
            name: RecentTimestamps(self.policy.dedup_window) for name in KINDS
        }
        self._context = Context(registry, self.policy, self.topics)
        self._reference = ReferencePath(self._context)
        self._columns = ColumnPath(self._context, self._reference)
        self._plain = PlainPath(self._context, self._columns.plans)
        self._limits = Limits(self.policy, self.topics)
        self._gateways = GatewayCheck(registry, self.topics)

    # --- public ----------------------------------------------------------------------------
    def validate(self, messages: Sequence[RawMessage], now_ms: int) -> ValidationResult:
        cycle = Cycle(now_ms)
        pending: dict[str, list[Pending]] = {}
        # Message i numbers its readings from i << shift: every path can number its own
        # readings in arrival order without knowing how many readings came before.
        shift = self._context.shift
        over: dict[int, str] = {}
        gateways: dict[int, str] = {}
        plain: Counter[str] = Counter()
        if self.column_path:
            slow: Sequence[int] = self._fast_singles(messages, cycle, over, gateways, plain)
        else:
            over = self._limits.screen(messages, range(len(messages)))
            slow = range(len(messages))
        for i, detail in over.items():
            cycle.seq = i << shift
            self._over_limit(messages[i], detail, cycle)
        if over:
            slow = [i for i in slow if i not in over]
        for i in slow:
            cycle.seq = i << shift
            routed = cycle.routed.get(i)
            if routed is not None:
                self._reference.single(messages[i], *routed, cycle.next_seq(), cycle)
            elif i in gateways:  # taken whole by the plain path: its kind waits its turn all the same
                pending.setdefault(gateways[i], [Pending()])
            else:
                self._message(messages[i], cycle, pending)
        for name, chunks in pending.items():
            if plain[name] or any(chunk.items for chunk in chunks):
                self._columns.arrays(KINDS[name], chunks, cycle, plain[name])
        return self._finish(cycle, messages, slow)

    def remember(self, result: ValidationResult) -> None:
        """Record the cycle's readings as seen, once they are durable.

        Called after the store accepted the cycle, so a retried cycle is not taken
        for its own duplicate, and a cycle that was never stored is not remembered.
        """
        for name, batch in result.batches.items():
            self.recent[name].add(batch.device, batch.ts_ms)

    def state(self) -> dict[str, dict[str, NDArray[Any]]]:
        """The duplicate memory per kind, keyed by device id so the registry may change in between."""
        return {name: recent.state(self.registry.tables[name]) for name, recent in self.recent.items()}

    def restore(self, state: dict[str, dict[str, NDArray[Any]]]) -> None:
        for name, saved in state.items():
            if name in self.recent:
                self.recent[name].restore(saved, self.registry.tables[name])

    # --- the paths -----------------------------------------------------------------------------
    def _fast_singles(
        self,
        messages: Sequence[RawMessage],
        cycle: Cycle,
        over: dict[int, str],
        gateways: dict[int, str],
        plain: Counter[str],
    ) -> list[int]:
        """The plain and column paths for one-reading messages on known topics, a kind at a time.

        A topic already resolved to a registered device, with a payload within the
        size limit, is first offered to the plain path; what it does not take goes to
        the column path. Returns the indices of every other message, for the general
        way (or straight for the model, those in ``cycle.routed``).
        """
        if not messages:
            return []
        singles = Singles.of(messages, self._context.routes, self.policy.max_payload_bytes, cycle.now_ms)
        counts: dict[int, int] = {}
        if self.plain_path and singles.parse.any():
            taken, counts = self._plain.singles(messages, singles, cycle)
            # Only the messages the plain path left are looked at again (a few in a hundred in
            # the usual cycle), so that what follows costs in proportion to them, not to the cycle.
            if taken.any():
                singles = singles.without(taken)
        left = singles.index.tolist()
        if self.plain_path and (singles.codes < 0).any():  # gateway batches are never known routes
            taken_whole, counted = self._plain_gateways(
                messages, singles.index[singles.codes < 0].tolist(), cycle
            )
            gateways.update(taken_whole)
            plain.update(counted)
            if gateways:
                left = [i for i in left if i not in gateways]
        # What the plain path takes is within every limit (known fields only, numbers, a short
        # timestamp, a registered device): only the rest is screened, before any other path reads it.
        over.update(self._limits.screen(messages, left))
        if over:  # dead-lettered whole: no path reads them
            singles.parse[np.isin(singles.index, list(over))] = False
        return self._columns.singles(messages, singles, counts, cycle)

    def _plain_gateways(
        self, messages: Sequence[RawMessage], slow: Sequence[int], cycle: Cycle
    ) -> tuple[dict[int, str], Counter[str]]:
        """Gateway batches the plain path takes whole (message -> kind), and its readings per kind."""
        return self._plain.gateways(messages, slow, cycle)

    def _message(self, message: RawMessage, cycle: Cycle, pending: dict[str, list[Pending]]) -> None:
        """The general way for one message: the reference path, the items of an array offered to
        the column path first (they wait in ``pending``)."""
        reference = self._reference
        opened = reference.open(message, cycle)
        if opened is None:
            return
        topic, kind, payload = opened
        if payload[:1] != b"[":
            reference.whole(message, topic, kind, cycle)
            return
        items = self._columns.read(payload) if self.column_path else None
        if not isinstance(items, list):
            items = reference.read_array(message, payload, kind, cycle)
            if items is None:
                return
            if not items:
                self._empty(message, topic, kind, cycle)
                return
            if not self.column_path:
                reference.items(message, topic, kind, items, cycle)
                return
        if not items:
            self._empty(message, topic, kind, cycle)
            return
        self._columns.array(message, topic, kind, items, cycle, pending)

    def _empty(self, message: RawMessage, topic: ParsedTopic, kind: SensorKind, cycle: Cycle) -> None:
        """An empty array carries no reading, but it is still dead-lettered: no message vanishes."""
        device = topic.source_id if topic.form is TopicForm.READING else None
        cycle.result.received[kind.name] += 1
        self._context.reject(
            cycle,
            cycle.next_seq(),
            Reason.NO_MEASUREMENTS,
            "an empty array holds no readings",
            message.topic,
            message.payload,
            kind.name,
            device,
        )

    def _over_limit(self, message: RawMessage, detail: str, cycle: Cycle) -> None:
        """Dead-letter a message past a shape limit, whole; its topic names the kind if it can."""
        kind, device = UNKNOWN, None
        try:
            topic = self.topics.parse(message.topic)
        except TopicError:
            pass
        else:
            if topic.kind in KINDS:
                kind = topic.kind
                device = topic.source_id if topic.form is TopicForm.READING else None
        cycle.result.received[kind] += 1
        self._context.reject(
            cycle, cycle.next_seq(), Reason.OVER_LIMIT, detail, message.topic, message.payload, kind, device
        )

    # --- assembling the batches ----------------------------------------------------------------
    def _finish(self, cycle: Cycle, messages: Sequence[RawMessage], slow: Sequence[int]) -> ValidationResult:
        result = cycle.result
        # Only a message that went the general way can be a gateway's batch.
        sources = self._gateways.of_messages(messages, slow) if self.policy.gateway_check else None
        for name, rows in cycle.rows.items():
            kind = KINDS[name]
            seq, device, ts, values, received = rows.concatenate(len(kind.measures))
            if seq.size == 0:
                continue
            if len(rows.chunks) + bool(rows.slow) > 1:
                order = np.argsort(seq, kind="stable")
                seq, device, ts, values, received = (
                    seq[order],
                    device[order],
                    ts[order],
                    values[order],
                    received[order],
                )
            if sources is not None:
                foreign = self._gateways.foreign(name, device, sources[seq >> self._context.shift])
                if foreign.any():
                    for i in np.flatnonzero(foreign).tolist():
                        self._foreign(cycle, kind, int(seq[i]), int(device[i]), rows)
                    keep = ~foreign
                    seq, device, ts, values, received = (
                        seq[keep],
                        device[keep],
                        ts[keep],
                        values[keep],
                        received[keep],
                    )
            duplicate = self._duplicates(name, device, ts)
            if duplicate.any():
                for i in np.flatnonzero(duplicate).tolist():
                    self._duplicate(cycle, kind, int(seq[i]), int(device[i]), int(ts[i]), rows)
                keep = ~duplicate
                seq, device, ts, values, received = (
                    seq[keep],
                    device[keep],
                    ts[keep],
                    values[keep],
                    received[keep],
                )
            result.batches[name] = ReadingBatch(
                kind=kind,
                table=self.registry.tables[name],
                device=device,
                ts_ms=ts,
                values=values,
                received_ms=received,
            )
        # Kinds in one fixed order (that of KINDS), whichever path took their readings first.
        result.batches = {name: result.batches[name] for name in KINDS if name in result.batches}
        cycle.rejects.sort(key=lambda pair: pair[0])
        result.rejects = [reject for _, reject in cycle.rejects]
        return result

    def _duplicates(self, kind: str, device: NDArray[np.intp], ts: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Rows whose (device, ts) was seen before: earlier in this cycle, or in a remembered one."""
        duplicate = self.recent[kind].contains(device, ts)
        if device.size > 1:
            first, span = int(ts.min()), int(ts.max()) - int(ts.min()) + 1
            if (int(device.max()) + 1) * span < 2**62:
                # One int64 key per (device, ts), ordered as (device, ts): a cycle spans
                # minutes, so it fits, and one stable argsort is quicker than a lexsort.
                key = device.astype(np.int64) * span + (ts - first)
                ordered = np.sort(key)
                if not (ordered[1:] == ordered[:-1]).any():  # the usual cycle: a quicker sort says so
                    return duplicate
                order = np.argsort(key, kind="stable")
                ordered = key[order]
                same = ordered[1:] == ordered[:-1]
            else:
                order = np.lexsort((np.arange(device.size), ts, device))
                same = (device[order][1:] == device[order][:-1]) & (ts[order][1:] == ts[order][:-1])
            duplicate[order[1:][same]] = True
        return duplicate

    def _foreign(self, cycle: Cycle, kind: SensorKind, seq: int, position: int, rows: Rows) -> None:
        device = self.registry.tables[kind.name].devices[position]
        topic, origin = rows.origin(seq)
        payload = origin if isinstance(origin, bytes) else item_bytes(origin)
        gateway = self.topics.parse(topic).source_id
        behind = f"behind {device.gateway!r}" if device.gateway else "behind no gateway"
        cycle.rejects.append(
            (
                seq,
                Reject(
                    Reason.GATEWAY_MISMATCH,
                    f"gateway {gateway!r} sent a reading of device {device.device_id!r}, which the "
                    f"registry puts {behind}",
                    topic,
                    self._context.bounded(payload),
                    kind.name,
                    device.device_id,
                ),
            )
        )

    def _duplicate(
        self, cycle: Cycle, kind: SensorKind, seq: int, position: int, ts: int, rows: Rows
    ) -> None:
        device_id = self.registry.tables[kind.name].devices[position].device_id
        topic, origin = rows.origin(seq)
        payload = origin if isinstance(origin, bytes) else item_bytes(origin)
        cycle.rejects.append(
            (
                seq,
                Reject(
                    Reason.DUPLICATE,
                    f"device {device_id!r} already sent a reading stamped {format_rfc3339(ts)}",
                    topic,
                    self._context.bounded(payload),
                    kind.name,
                    device_id,
                ),
            )
        )
