from __future__ import annotations

from pathlib import Path

import pytest

from ingest.registry_file import load_registry, save_registry
from processors.registry import Device, Registry, RegistryError


def test_csv_and_json_round_trip(tmp_path: Path, small_registry: Registry) -> None:
    for name in ("devices.csv", "devices.json"):
        path = tmp_path / name
        save_registry(small_registry, path)
        loaded = load_registry(path)
        assert list(loaded) == list(small_registry)
        assert loaded.counts() == small_registry.counts()


def test_dense_indices_per_kind(small_registry: Registry) -> None:
    for name, table in small_registry.tables.items():
        assert [table.index[d.device_id] for d in table.devices] == list(range(len(table)))
        assert all(d.kind == name for d in table.devices)


def test_bad_rows_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "devices.csv"
    path.write_text(
        "device_id,kind,district,lat,lon,install_date,interval_s\n"
        "air-1,air,Ba Đình,21.03,105.81,,\n"
        "air-2,noise,Ba Đình,21.03,105.81,,\n"
    )
    with pytest.raises(RegistryError, match=r"devices.csv:3: .*unknown kind 'noise'"):
        load_registry(path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("air/1,air,Ba Đình,21,105,,", "device id"),
        ("air-1,air,Ba Đình,91,105,,", "latitude"),
        ("air-1,air,Ba Đình,21,east,,", "could not convert"),
        ("air-1,air,,21,105,,", "district"),
        ("air-1,air,Ba Đình,21,105,yesterday,", "Invalid isoformat"),
        ("air-1,air,Ba Đình,21,105,,-5", "interval_s"),
    ],
)
def test_each_bad_value_is_explained(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "devices.csv"
    path.write_text("device_id,kind,district,lat,lon,install_date,interval_s\n" + row + "\n")
    with pytest.raises(RegistryError, match=message):
        load_registry(path)


def test_missing_columns_and_files_are_explained(tmp_path: Path) -> None:
    path = tmp_path / "devices.csv"
    path.write_text("id,kind\nair-1,air\n")
    with pytest.raises(RegistryError, match="header lacks device_id"):
        load_registry(path)
    with pytest.raises(RegistryError, match="does not exist; create one"):
        load_registry(tmp_path / "nope.csv")


def test_conflicting_duplicates_are_refused() -> None:
    registry = Registry([Device("air-1", "air", "Ba Đình", 21.0, 105.8)])
    registry.add(Device("air-1", "air", "Ba Đình", 21.0, 105.8))
    assert len(registry) == 1
    with pytest.raises(RegistryError, match="registered twice"):
        registry.add(Device("air-1", "water", "Ba Đình", 21.0, 105.8))


def test_the_gateway_column_is_optional_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "devices.csv"
    path.write_text(
        "device_id,kind,district,lat,lon,install_date,interval_s,gateway\n"
        "air-1,air,Ba Đình,21.03,105.81,,,gw-1\n"
        "air-2,air,Ba Đình,21.03,105.81,,,\n"
        "water-1,water,Ba Đình,21.03,105.81,,,gw-1\n"
    )
    loaded = load_registry(path)
    assert {d.device_id: d.gateway for d in loaded} == {"air-1": "gw-1", "air-2": None, "water-1": "gw-1"}
    assert {g: [d.device_id for d in ds] for g, ds in loaded.gateways().items()} == {
        "gw-1": ["air-1", "water-1"]
    }
    for name in ("again.csv", "again.json"):
        save_registry(loaded, tmp_path / name)
        assert list(load_registry(tmp_path / name)) == list(loaded)


@pytest.mark.parametrize(
    ("gateway", "message"), [("gw 1", "gateway id 'gw 1' must be"), ("air-1", "not its own gateway")]
)
def test_a_bad_gateway_is_explained(tmp_path: Path, gateway: str, message: str) -> None:
    path = tmp_path / "devices.csv"
    path.write_text(f"device_id,kind,district,lat,lon,gateway\nair-1,air,Ba Đình,21,105,{gateway}\n")
    with pytest.raises(RegistryError, match=message):
        load_registry(path)
