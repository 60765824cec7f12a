"""Reading and writing the device registry file (CSV or JSON).

CSV is what operators edit in a spreadsheet; JSON (a list of objects with the
same keys) is what provisioning systems export. Both are checked row by row and
every problem is reported with its line, so a typo never silently drops devices.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from processors.registry import REGISTRY_COLUMNS, Device, Registry, RegistryError


def load_registry(path: Path) -> Registry:
    """Load and check a registry file; raise ``RegistryError`` that names the bad line."""
    if not path.is_file():
        raise RegistryError(
            f"device registry {path} does not exist; create one with "
            f"'citypulse simulate --registry {path} --dry-run' or set CITYPULSE_REGISTRY"
        )
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        return _from_json(text, path)
    return _from_csv(text, path)


def _from_csv(text: str, path: Path) -> Registry:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REGISTRY_COLUMNS[:5] if c not in (reader.fieldnames or [])]
    if missing:
        raise RegistryError(
            f"{path}: header lacks {', '.join(missing)}; the header must be {','.join(REGISTRY_COLUMNS)}"
        )
    registry = Registry()
    for row in reader:
        where = f"{path}:{reader.line_num}"
        device = Device.from_row(row, where)
        try:
            registry.add(device)
        except RegistryError as bad:
            raise RegistryError(f"{where}: {bad}") from None
    return registry


def _from_json(text: str, path: Path) -> Registry:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as bad:
        raise RegistryError(f"{path}: not valid JSON ({bad})") from None
    if not isinstance(rows, list):
        raise RegistryError(f"{path}: a JSON registry is a list of device objects")
    registry = Registry()
    for number, row in enumerate(rows, start=1):
        where = f"{path}: device #{number}"
        if not isinstance(row, dict):
            raise RegistryError(f"{where} is not an object")
        try:
            registry.add(Device.from_row(row, where))
        except RegistryError as bad:
            raise RegistryError(str(bad) if str(bad).startswith(where) else f"{where}: {bad}") from None
    return registry


def save_registry(registry: Registry, path: Path) -> None:
    """Write the registry atomically (a crash never leaves half a file)."""
    rows = [device.to_row() for device in registry]
    if path.suffix.lower() == ".json":
        data = json.dumps(
            [{k: v for k, v in row.items() if v != ""} for row in rows],
            indent=1,
            ensure_ascii=False,
        )
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=REGISTRY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
