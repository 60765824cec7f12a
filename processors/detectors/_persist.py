"""A detector's state saved across restarts, keyed by device id so that the registry may change.

:func:`save` gives plain arrays (the service writes every detector's into one ``.npz``
file): ``device_id``, then ``device:<name>`` for every per-device and binned entry and
``shared:<name>`` for every shared one. :func:`restore` takes them back for the
devices still registered; a saved state whose entries have other shapes was written
by another version of the detector and is ignored whole, so the detector starts afresh.
"""

from __future__ import annotations

import numpy as np

from processors.detectors._storage import State, Store
from processors.detectors._transaction import Staging
from processors.registry import DeviceTable


def save(store: Store, staging: Staging, table: DeviceTable) -> State:
    """Everything needed to resume, as committed: uncommitted in-place changes are left out."""
    n = min(store.devices_known(), len(table))
    saved: State = {"device_id": np.array([d.device_id for d in table.devices[:n]], dtype=np.str_)}
    for name, value in store.state.items():
        saved[f"device:{name}"] = value[:n].copy()
    for name, value in store.binned.items():
        saved[f"device:{name}"] = value[:n].copy()
    if staging.undo:  # an uncommitted scoring changed binned tables in place: report them committed
        for name, flat, old in reversed(staging.undo):
            cells_of = saved[f"device:{name}"]
            rows, index = np.divmod(flat, cells_of.shape[1])
            keep = rows < n
            cells_of[rows[keep], index[keep]] = old[keep].reshape(-1, *cells_of.shape[2:])
    for name, value in store.shared.items():
        saved[f"shared:{name}"] = value.copy()
    return saved


def restore(store: Store, staging: Staging, saved: State, table: DeviceTable) -> int:
    """Take back what :func:`save` gave; returns how many devices were restored (0 if incompatible)."""
    ids = saved.get("device_id")
    if ids is None:
        return 0
    specs = {**store.spec, **store.binned_spec}
    for name, (_, shape, _) in specs.items():
        value = saved.get(f"device:{name}")
        if value is None or value.shape[1:] != shape:
            return 0  # saved by another version of this detector: start afresh
    staging.rollback(store)
    positions = np.array([table.index.get(i, -1) for i in ids.tolist()], dtype=np.intp)
    known = positions >= 0
    if known.any():
        store.grow(int(positions[known].max()) + 1, table)
        for name, (dtype, _, _) in specs.items():
            arrays = store.state if name in store.spec else store.binned
            arrays[name][positions[known]] = saved[f"device:{name}"][known].astype(dtype)
    for name, value in store.shared.items():
        stored = saved.get(f"shared:{name}")
        if stored is not None and stored.shape == value.shape:
            store.shared[name] = stored.astype(value.dtype)
    staging.invalidate()
    return int(np.count_nonzero(known))
