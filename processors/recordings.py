"""Recorded tables as readings of one sensor kind, in time order: what ``citypulse replay`` sends.

Real monitors' records come as tables (a CSV export, a data portal's download)
whose columns have their own names, units and time format, with gaps and missing
values. A :class:`Layout` says how one table maps onto a kind: which column feeds
which measure (and in what unit), where the time is (one column, or several such
as ``year,month,day,hour``) and in which time zone, and which column names the
device, if any. :class:`RecordingBuilder` reads rows (lists of cells; the caller
opens the files) into a :class:`Recording`: one timeline of every device's
readings, sorted by time, in the kind's units.

What the records hold is kept as it is: a missing value stays missing (the reading
carries the other measures), a row with none of the mapped measures is a gap (the
device sent nothing that hour), and the time between readings is the records' own.
Rows that cannot be read (a time that does not parse, a cell that is neither a
number nor a missing-value marker) are counted with examples, never silently
dropped or guessed.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

import numpy as np
import orjson
from numpy.typing import NDArray

from processors.conversions import Conversion, UnitError, conversion
from processors.kinds import SensorKind
from processors.kinds.base import DEVICE_ID_PATTERN
from processors.registry import Device, Registry
from processors.topics import TopicScheme

NA_MARKERS = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "-"})
"""Cells that mean "no value" in the exports we have met (R writes NA, pandas NaN, SQL NULL)."""

MAX_EXAMPLES = 5
_DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)
_TIME_PARTS = ("year", "month", "day", "hour", "minute", "second")
_MS_THRESHOLD = 100_000_000_000
"""Epoch numbers at or above this are milliseconds (as :func:`processors.timestamps.parse_timestamp`)."""


class RecordingError(ValueError):
    """A table cannot be read as the layout says; the message names the file and the fix."""


@dataclass(frozen=True, slots=True)
class FieldSource:
    """One measure of the kind, read from one column and converted from the column's unit."""

    field: str
    column: str
    conversion: Conversion


def parse_mapping(spec: str, kind: SensorKind) -> tuple[FieldSource, ...]:
    """``field=COLUMN`` pairs, comma-separated; ``field=COLUMN:UNIT`` when the column's unit differs.

    >>> from processors.kinds import get_kind
    >>> sources = parse_mapping("pm25=PM2.5,co=CO:ug/m3", get_kind("air"))
    >>> [(s.field, s.column, s.conversion.factor) for s in sources]
    [('pm25', 'PM2.5', 1.0), ('co', 'CO', 0.001)]
    """
    sources: list[FieldSource] = []
    units = {m.name: m.unit for m in kind.measures}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, equals, column = part.partition("=")
        name, column = name.strip(), column.strip()
        if not equals or not name or not column:
            raise RecordingError(f"--map: {part!r} is not FIELD=COLUMN (e.g. pm25=PM2.5 or co=CO:ug/m3)")
        if name not in units:
            raise RecordingError(
                f"--map: {kind.name} has no measure {name!r}; its measures are {', '.join(units)}"
            )
        if any(s.field == name for s in sources):
            raise RecordingError(f"--map: {name} is mapped twice")
        unit = units[name]
        column_name, colon, source_unit = column.rpartition(":")
        if colon:
            try:
                convert = conversion(source_unit, unit)
            except UnitError as bad:
                raise RecordingError(f"--map {name}: {bad}") from None
            column = column_name.strip()
        else:
            convert = conversion(unit, unit)
        sources.append(FieldSource(name, column, convert))
    if not sources:
        raise RecordingError(f"--map names no column; e.g. --map {kind.measure_names[0]}=COLUMN")
    order = {n: i for i, n in enumerate(kind.measure_names)}
    return tuple(sorted(sources, key=lambda s: order[s.field]))


@dataclass(frozen=True)
class TimeColumns:
    """Where a row's time is: one column (a timestamp) or several (year, month, day, hour, ...).

    One column holds RFC 3339 / ISO 8601 text (with or without an offset) or epoch
    seconds or milliseconds. Several columns hold, in that order, the year, month
    and day and optionally the hour, minute and second, as whole numbers. Times
    without an offset are local times in ``tz``.
    """

    columns: tuple[str, ...]
    tz: tzinfo = UTC

    def __post_init__(self) -> None:
        if not self.columns:
            raise RecordingError("--time names no column")
        if len(self.columns) == 2 or len(self.columns) > len(_TIME_PARTS):
            raise RecordingError(
                f"--time {','.join(self.columns)}: give one timestamp column, or 3 to 6 columns "
                "holding year, month, day[, hour[, minute[, second]]] in that order"
            )

    def parse(self, cells: Sequence[str]) -> int:
        """Epoch milliseconds of one row's time cells; ``ValueError`` saying why not."""
        if len(cells) == 1:
            return _one_cell_ms(cells[0].strip(), self.tz)
        parts = [int(float(c)) for c in cells]
        parts += [0] * (len(_TIME_PARTS) - len(parts))
        year, month, day, hour, minute, second = parts
        local = datetime(year, month, day, hour, minute, second, tzinfo=self.tz)
        return round(local.timestamp() * 1000)


def _one_cell_ms(text: str, tz: tzinfo) -> int:
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if math.isfinite(number):
        return round(number) if number >= _MS_THRESHOLD else round(number * 1000.0)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return round(moment.timestamp() * 1000)


def device_id_of(text: str) -> str:
    """A valid device id from a station name or file name: other characters become ``-``.

    >>> device_id_of("Dongsi"), device_id_of("PRSA Data (Huairou)")
    ('Dongsi', 'PRSA-Data-Huairou')
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.:-]+", "-", text.strip()).strip("-_.:")[:64]
    if not cleaned or not _DEVICE_ID_RE.match(cleaned):
        raise RecordingError(f"{text!r} gives no usable device id; name the device with --device")
    return cleaned


@dataclass(frozen=True)
class Layout:
    """How one kind's readings are laid out in a table."""

    kind: SensorKind
    sources: tuple[FieldSource, ...]
    time: TimeColumns
    device_column: str | None = None
    na: frozenset[str] = NA_MARKERS

    @classmethod
    def of(
        cls,
        kind: SensorKind,
        mapping: str,
        time: str,
        tz: tzinfo,
        device_column: str | None = None,
        na: str = "",
    ) -> Layout:
        """The layout ``citypulse replay``'s options give: ``--map``, ``--time`` (comma-separated
        columns) in ``--tz``, ``--device-column``, and ``--na`` markers added to the known ones."""
        layout = cls(
            kind,
            parse_mapping(mapping, kind),
            TimeColumns(tuple(c.strip() for c in time.split(",") if c.strip()), tz),
            device_column,
        )
        if na:
            layout = cls(
                layout.kind, layout.sources, layout.time, layout.device_column, layout.na | set(na.split(","))
            )
        return layout


@dataclass
class Recording:
    """Every device's readings of one kind, in time order (ties by device), in the kind's units."""

    kind: SensorKind
    fields: tuple[str, ...]
    """The measures the table feeds, in the kind's order; ``values`` has one column each."""
    devices: tuple[str, ...]
    device: NDArray[np.intp]
    """Index into ``devices`` of each reading."""
    ts_ms: NDArray[np.int64]
    values: NDArray[np.float64]
    """One row per reading; NaN where the record has no value."""
    rows: int = 0
    """Table rows read (readings, gaps and unreadable rows)."""
    gaps: int = 0
    """Rows with none of the mapped measures: the device sent nothing then."""
    problems: Counter[str] = field(default_factory=Counter)
    """Unreadable rows and cells, by what was wrong."""
    examples: list[str] = field(default_factory=list)
    """The first few problems, with file and line."""

    def __len__(self) -> int:
        return int(self.ts_ms.size)

    def of_device(self, index: int) -> NDArray[np.intp]:
        """Row numbers of one device's readings, in time order."""
        found: NDArray[np.intp] = np.flatnonzero(self.device == index)
        return found

    def interval_s(self) -> dict[str, float]:
        """Each device's reporting interval: the most frequent time between its readings (whole seconds).

        The most frequent step, not the mean or median, so that gaps (however many)
        do not lengthen it: a monitor that reports hourly and is sometimes down still
        reports hourly.

        >>> from processors.kinds import get_kind
        >>> hours = np.arange(0, 10 * 3_600_000, 3_600_000, dtype=np.int64)
        >>> one = np.zeros(10, dtype=np.intp)
        >>> r = Recording(get_kind("air"), ("pm25",), ("a",), one, hours, np.ones((10, 1)))
        >>> r.interval_s()
        {'a': 3600.0}
        """
        found: dict[str, float] = {}
        for index, name in enumerate(self.devices):
            steps = np.diff(np.unique(self.ts_ms[self.of_device(index)] // 1000))
            if steps.size == 0:
                found[name] = self.kind.interval_s
                continue
            values, counts = np.unique(steps, return_counts=True)
            found[name] = float(values[np.argmax(counts)])
        return found

    def missing_from(self, registry: Registry) -> list[str]:
        """The recorded devices ``registry`` does not hold."""
        return [d for d in self.devices if d not in registry]

    def misstated_intervals(self, registry: Registry) -> list[tuple[str, float, float]]:
        """(device, recorded, declared interval in s) where ``registry`` is off by more than twice.

        Detectors scale their memories to the declared interval, so a registry that
        misstates it makes them misjudge the records.
        """
        measured = self.interval_s()
        found = []
        for name in self.devices:
            table = registry.tables[self.kind.name]
            declared = table.interval_s(table.index[name]) if name in table.index else None
            if declared is not None and not 0.5 <= measured[name] / declared <= 2.0:
                found.append((name, measured[name], declared))
        return found

    def registry(self, district: str | None = None, interval_s: float | None = None) -> Registry:
        """A registry of the recorded devices, each declaring the interval it really reports at.

        Detectors scale their memories and warm-ups to a device's interval, so an
        hourly monitor must not be registered at the kind's one-minute default.
        Locations are unknown (0, 0): give a registry file where they matter.
        """
        intervals = self.interval_s()
        registry = Registry()
        for name in self.devices:
            registry.add(
                Device(
                    device_id=name,
                    kind=self.kind.name,
                    district=district or name,
                    lat=0.0,
                    lon=0.0,
                    interval_s=interval_s if interval_s is not None else intervals[name],
                )
            )
        return registry

    def messages(self, topics: TopicScheme, shift_ms: int = 0) -> Iterator[tuple[int, str, bytes]]:
        """``(ts_ms, topic, payload)`` per reading in time order, timestamps moved by ``shift_ms``.

        A payload carries the device, its timestamp in epoch milliseconds and the
        measures the record has; a missing one is left out, as a device that did not
        measure it would.
        """
        topic_of = [topics.reading(self.kind.name, name) for name in self.devices]
        names = self.fields
        rounded = np.round(self.values, 6)
        present = ~np.isnan(rounded)
        for row in range(len(self)):
            ts = int(self.ts_ms[row]) + shift_ms
            index = int(self.device[row])
            reading: dict[str, object] = {"device": self.devices[index], "ts": ts}
            values = rounded[row]
            for j in np.flatnonzero(present[row]).tolist():
                reading[names[j]] = float(values[j])
            yield ts, topic_of[index], orjson.dumps(reading)


class RecordingBuilder:
    """Reads tables laid out as ``layout`` into one :class:`Recording`."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._devices: dict[str, int] = {}
        self._device: list[int] = []
        self._ts: list[int] = []
        self._values: list[list[float]] = []
        self._rows = 0
        self._gaps = 0
        self._problems: Counter[str] = Counter()
        self._examples: list[str] = []

    def _problem(self, what: str, where: str) -> None:
        self._problems[what] += 1
        if len(self._examples) < MAX_EXAMPLES:
            self._examples.append(f"{where}: {what}")

    def _device_index(self, name: str) -> int:
        index = self._devices.get(name)
        if index is None:
            index = self._devices[name] = len(self._devices)
        return index

    def add_table(
        self,
        header: Sequence[str],
        rows: Iterable[Sequence[str]],
        *,
        where: str,
        device: str | None = None,
        first_line: int = 2,
    ) -> None:
        """Add one table's rows; ``device`` names the device when the layout has no device column.

        ``where`` names the table in messages (its file), ``first_line`` is the line
        number of the first row.
        """
        layout = self.layout
        columns = {name.strip(): i for i, name in enumerate(header)}
        wanted = [*(s.column for s in layout.sources), *layout.time.columns]
        if layout.device_column is not None:
            wanted.append(layout.device_column)
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise RecordingError(
                f"{where}: no column {', '.join(repr(c) for c in missing)}; its columns are "
                f"{', '.join(repr(c.strip()) for c in header)}"
            )
        if layout.device_column is None and device is None:
            raise RecordingError(f"{where}: name its device with --device or --device-column")
        value_at = [columns[s.column] for s in layout.sources]
        time_at = [columns[c] for c in layout.time.columns]
        device_at = columns[layout.device_column] if layout.device_column is not None else None
        fixed = self._device_index(device_id_of(device)) if device is not None and device_at is None else -1
        convert = [s.conversion for s in layout.sources]
        names = [s.column for s in layout.sources]
        na = layout.na
        width = len(header)
        named: dict[str, int] = {}
        for line, row in enumerate(rows, first_line):
            self._rows += 1
            if len(row) != width:
                self._problem(f"{len(row)} cells where the header has {width}", f"{where}:{line}")
                continue
            try:
                ts = layout.time.parse([row[i] for i in time_at])
            except (ValueError, OverflowError) as bad:
                self._problem(f"unreadable time ({bad})", f"{where}:{line}")
                continue
            values: list[float] = []
            for column, i, convert_one in zip(names, value_at, convert, strict=True):
                cell = row[i].strip()
                if cell in na:
                    values.append(math.nan)
                    continue
                try:
                    number = float(cell)
                except ValueError:
                    number = math.nan
                if not math.isfinite(number):
                    self._problem(
                        f"unreadable value in {column} ({cell!r}), kept as missing", f"{where}:{line}"
                    )
                    values.append(math.nan)
                    continue
                values.append(convert_one.apply(number))
            if all(math.isnan(v) for v in values):
                self._gaps += 1
                continue
            if device_at is None:
                index = fixed
            else:
                cell = row[device_at]
                index = named.get(cell, -1)
                if index < 0:
                    try:
                        index = named[cell] = self._device_index(device_id_of(cell))
                    except RecordingError as bad:
                        self._problem(str(bad), f"{where}:{line}")
                        continue
            self._device.append(index)
            self._ts.append(ts)
            self._values.append(values)

    def build(self) -> Recording:
        """The timeline of everything added, sorted by time (ties by device, then as read)."""
        fields = tuple(s.field for s in self.layout.sources)
        ts = np.array(self._ts, dtype=np.int64)
        device = np.array(self._device, dtype=np.intp)
        values = np.array(self._values, dtype=np.float64).reshape(len(self._ts), len(fields))
        order = np.lexsort((np.arange(ts.size), device, ts))
        return Recording(
            kind=self.layout.kind,
            fields=fields,
            devices=tuple(self._devices),
            device=device[order],
            ts_ms=ts[order],
            values=values[order],
            rows=self._rows,
            gaps=self._gaps,
            problems=Counter(self._problems),
            examples=list(self._examples),
        )
