"""Where a detector's state lives: numpy arrays with one row per device, grown as devices appear.

A detector declares its state (:meth:`~processors.detectors.base.Detector.state_spec`
and the like); :class:`Store` holds it. Three kinds of state:

- **per device**: one row per device of the kind, copied out for the devices a
  batch touches and written back on commit;
- **binned**: large per-device tables (a time-of-day profile) of which a reading
  touches a bin or two; read and written in place through :class:`Binned`, with an
  undo log, since copying whole rows would cost more than the scoring;
- **shared**: small arrays common to all devices of the kind.

The writes here are the vectorised primitives the rest build on: :func:`put_rows`
and :func:`put_cells` write many rows with one ``np.put``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.registry import DeviceTable

FloatArray = NDArray[np.float64]
State = dict[str, NDArray[Any]]
Spec = tuple[np.dtype[Any], tuple[int, ...], Any]
"""One state entry: (dtype, shape of one device's entry, initial value)."""
Undo = list[tuple[str, NDArray[np.intp], NDArray[Any]]]
"""In-place changes to binned tables: (table, flat (device, bin) cells, their old contents)."""


def spec(dtype: Any, shape: tuple[int, ...] = (), fill: Any = 0) -> Spec:
    """Shorthand for one entry of :meth:`~processors.detectors.base.Detector.state_spec`."""
    return np.dtype(dtype), shape, fill


class Store:
    """One detector's state: per-device rows, binned tables, shared arrays, and each device's interval.

    Rows are allocated for at least every device of the registry table a batch
    comes with, and doubled when a device beyond them appears, so that growing is rare.
    """

    def __init__(self, per_device: dict[str, Spec], binned: dict[str, Spec], shared: State) -> None:
        self.spec = per_device
        self.binned_spec = binned
        self.state: State = {
            name: np.full((0, *shape), fill, dtype=dtype) for name, (dtype, shape, fill) in per_device.items()
        }
        self.shared: State = {name: value.copy() for name, value in shared.items()}
        self.binned: State = {
            name: np.full((0, *shape), fill, dtype=dtype) for name, (dtype, shape, fill) in binned.items()
        }
        self.intervals = np.zeros(0, dtype=np.float64)
        """Each device's reporting interval, in ms."""
        self.one_interval: FloatArray | None = None
        """The interval as a (1, 1) column when every device of the kind reports at the same one."""

    def grow(self, n: int, table: DeviceTable) -> None:
        """Make room for devices ``0 .. n - 1`` and every device of ``table``; new rows take their fill."""
        have = self.intervals.shape[0]
        if n > have or len(table) != have:
            size = max(n, len(table))
            self.intervals = np.array([table.interval_s(i) * 1000.0 for i in range(size)], dtype=np.float64)
            same = size > 0 and bool((self.intervals == self.intervals[0]).all())
            self.one_interval = self.intervals[:1, None].copy() if same else None
        rows = self.devices_known()
        if n <= rows:
            return
        size = max(n, len(table), 2 * rows)
        for arrays, specs in ((self.state, self.spec), (self.binned, self.binned_spec)):
            for name, (dtype, shape, fill) in specs.items():
                grown = np.full((size, *shape), fill, dtype=dtype)
                grown[:rows] = arrays[name]
                arrays[name] = grown

    def devices_known(self) -> int:
        return int(next(iter(self.state.values())).shape[0])

    def interval_col(self, devices: NDArray[np.intp]) -> FloatArray:
        """:attr:`~processors.detectors.base.Round.interval_col` of a round of ``devices``."""
        one = self.one_interval
        if one is not None:
            return one
        column: FloatArray = self.intervals[devices][:, None]
        return column

    def bytes_per_device(self) -> int:
        """State bytes one device costs."""
        specs = (*self.spec.values(), *self.binned_spec.values())
        return sum(dtype.itemsize * int(np.prod(shape, dtype=np.int64)) for dtype, shape, _ in specs)


class Binned:
    """Large per-device tables of the round's devices, read and written in place with an undo log.

    A table of shape (devices, bins, ...) is addressed as one row per (device, bin)
    cell, ``device * bins + bin``: a round reads and writes its cells with
    ``np.take`` and ``np.put`` on whole rows, several times faster than indexing by
    (device, bin) pairs.
    """

    __slots__ = ("_arrays", "_flats", "_undo", "device")

    def __init__(self, arrays: State, device: NDArray[np.intp], undo: Undo) -> None:
        self._arrays = arrays
        self._undo = undo
        self.device = device
        self._flats: dict[tuple[int, int], tuple[NDArray[np.intp], NDArray[np.intp]]] = {}

    def get(self, name: str, index: NDArray[np.intp]) -> NDArray[Any]:
        """``table[device[i], index[..., i]]`` for each row ``i`` of the round.

        ``index`` may hold several bins per row, shape (k, rows): the result is then (k, rows, ...).
        """
        table = self._arrays[name]
        found: NDArray[Any] = cells(table).take(self._flat(table, index), axis=0)
        return found.reshape(*index.shape, *table.shape[2:])

    def set(
        self, name: str, index: NDArray[np.intp], values: NDArray[Any], old: NDArray[Any] | None = None
    ) -> None:
        """Write ``values`` where :meth:`get` reads; of repeated cells, the last write stays.

        ``old``: the cells' contents as :meth:`get` returned them for this ``index``, when
        the caller has them and nothing wrote them since (the undo log keeps them, read
        again otherwise).
        """
        table = self._arrays[name]
        rows = cells(table)
        flat = self._flat(table, index).reshape(-1)
        if old is None:
            before = rows.take(flat, axis=0)
        else:
            before = np.asarray(old, dtype=table.dtype).reshape(flat.size, rows.shape[1])
        self._undo.append((name, flat, before))
        shape = (*index.shape, *table.shape[2:])
        put_cells(rows, flat, np.broadcast_to(np.asarray(values, dtype=table.dtype), shape))

    def rows(self, rows: NDArray[np.intp]) -> Binned:
        """The same tables for only some of the round's rows (same undo log): reads cost what they read."""
        return Binned(self._arrays, self.device[rows], self._undo)

    def _flat(self, table: NDArray[Any], index: NDArray[np.intp]) -> NDArray[np.intp]:
        """The cells of ``index`` in a table of ``table.shape[1]`` bins; worked out once per index array
        (a round reads and writes the same bins of several tables: ``index`` is not changed in place)."""
        key = (id(index), table.shape[1])
        known = self._flats.get(key)
        if known is not None and known[0] is index:
            return known[1]
        flat: NDArray[np.intp] = self.device * table.shape[1] + index
        self._flats[key] = (index, flat)
        return flat


def cells(table: NDArray[Any]) -> NDArray[Any]:
    """A (devices, bins, ...) table as a view of (devices x bins) rows, one per cell."""
    assert table.flags.c_contiguous, "binned tables are allocated contiguous, so this is a view"
    return table.reshape(table.shape[0] * table.shape[1], -1)


_FEW_ROWS = 256


def put_rows(table: NDArray[Any], rows: NDArray[np.intp], values: NDArray[Any]) -> None:
    """``table[rows] = values`` for distinct rows of a per-device array, with one ``np.put``."""
    if rows.size < _FEW_ROWS or table.size == 0 or not table.flags.c_contiguous:
        table[rows] = values
        return
    put_cells(table.reshape(table.shape[0], -1), rows, values)


def put_cells(rows: NDArray[Any], flat: NDArray[np.intp], values: NDArray[Any]) -> None:
    """``rows[flat] = values`` for distinct cells, each row written as one opaque element."""
    if flat.size < _FEW_ROWS:  # plain indexing costs less than setting up the opaque view
        rows[flat] = np.reshape(values, (flat.size, rows.shape[1]))
        return
    width = rows.shape[1] * rows.itemsize
    packed = np.ascontiguousarray(values, dtype=rows.dtype).reshape(flat.size, rows.shape[1])
    np.put(rows.view(np.dtype((np.void, width))).reshape(-1), flat, packed.view(np.dtype((np.void, width))))
