"""The air model matches the real monitor records it was calibrated on (Beijing, 2013-2017)."""

from __future__ import annotations

import numpy as np
import pytest

from processors.kinds import KINDS
from simulators.calibration import RH_BIN_CENTRES, autocorrelation, beijing_air_statistics, deseasonalise
from simulators.fleet import make_registry
from simulators.models import air, model_for
from tests.shared_data import shared_data

DATA = shared_data("beijing-air")
DONGSI = DATA / "PRSA_Data_Dongsi_20130301-20170228.csv"

# What simulators.calibration measured on Dongsi (urban) and Huairou (suburban): the targets.
MEASURED_ACF = {"Dongsi": (0.95, 0.72, 0.28, 0.0), "Huairou": (0.94, 0.73, 0.31, 0.02)}
MEASURED_RH_CORRELATION = {"Dongsi": 0.56, "Huairou": 0.47}


@pytest.mark.skipif(not DONGSI.is_file(), reason=f"the Beijing air-quality records are not at {DATA}")
def test_the_air_models_tables_are_what_the_records_say() -> None:
    stats = beijing_air_statistics(DONGSI)
    assert np.allclose(stats.ratio_by_rh, air.RATIO_BY_RH, atol=0.011)
    assert np.allclose(stats.pm25_diurnal, air.PM25_DIURNAL, atol=0.011)
    assert np.allclose(stats.o3_diurnal, air.O3_DIURNAL, atol=0.011)
    assert np.allclose(stats.co_diurnal, air.CO_DIURNAL, atol=0.011)
    assert stats.log_pm25_acf == MEASURED_ACF["Dongsi"]
    assert stats.log_pm25_rh_correlation == MEASURED_RH_CORRELATION["Dongsi"]


def test_simulated_air_behaves_like_the_records() -> None:
    """A simulated year, hourly: persistence of pollution, its link to humidity, the PM ratio."""
    registry = make_registry(1, ["air"], seed=2)
    model = model_for(KINDS["air"], registry.tables["air"], 2)
    start = 1_767_225_600_000  # 2026-01-01
    hours = 365 * 24
    ts = start + np.arange(hours, dtype=np.int64) * 3_600_000
    # One call for the year: the 20-minute red noise no longer carries over between hourly rows,
    # which hardly matters at hourly lags; everything slower comes from the weather.
    values = model.values(np.zeros(hours, dtype=np.intp), ts, np.random.default_rng(0))
    names = KINDS["air"].measure_names
    pm25, pm10, humidity = (values[:, names.index(m)] for m in ("pm25", "pm10", "humidity"))
    month = ts.astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)
    log_pm = deseasonalise(np.log(pm25), month)
    acf = autocorrelation(log_pm, (1, 6, 24, 48))
    measured = np.array(list(MEASURED_ACF.values()))
    assert np.all(np.asarray(acf) >= measured.min(axis=0) - 0.08), acf
    assert np.all(np.asarray(acf) <= measured.max(axis=0) + 0.08), acf
    correlation = float(np.corrcoef(log_pm, deseasonalise(humidity, month))[0, 1])
    assert (
        min(MEASURED_RH_CORRELATION.values()) - 0.12
        <= correlation
        <= max(MEASURED_RH_CORRELATION.values()) + 0.1
    )
    ratio = pm25 / pm10
    for centre, expected in zip(RH_BIN_CENTRES, air.RATIO_BY_RH, strict=True):
        in_bin = (humidity >= centre - 5) & (humidity < centre + 5)
        if in_bin.sum() >= 100:
            assert float(np.median(ratio[in_bin])) == pytest.approx(expected, abs=0.06), centre
