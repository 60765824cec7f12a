"""The daily VN_AQI: 24-hour means for PM, daily maxima for gases, O3's two branches, completeness."""

from __future__ import annotations

from datetime import timedelta, timezone

import numpy as np

from processors.aqi import vn_aqi
from processors.aqi_daily import HOUR_MS, daily_vn_aqi, local_ms

HOURS = np.arange(24, dtype=np.int64) * HOUR_MS


def test_pm_days_are_24_hour_means_and_need_18_hours() -> None:
    pm25 = np.full(24, 40.0)
    pm25[12] = 400.0  # one bad hour raises the mean, not the day to its own level
    daily = daily_vn_aqi(HOURS, {"pm25": pm25})
    assert daily.aqi.tolist() == vn_aqi("pm25", [np.mean(pm25)]).tolist()
    sparse = pm25.copy()
    sparse[:7] = np.nan  # 17 hours: no daily value
    assert np.isnan(daily_vn_aqi(HOURS, {"pm25": sparse}).aqi).all()


def test_gases_take_the_days_highest_hour_and_o3_the_larger_branch() -> None:
    pm25 = np.full(24, 10.0)
    no2 = np.full(24, 20.0)
    no2[8] = 250.0
    daily = daily_vn_aqi(HOURS, {"pm25": pm25, "no2": no2})
    assert daily.sub_indices["no2"].tolist() == vn_aqi("no2", [250.0]).tolist()
    assert daily.aqi.tolist() == vn_aqi("no2", [250.0]).tolist()
    # A long afternoon at 180 µg/m³: harmless by the 1-hour table (< 200), Xấu by the 8-hour one.
    o3 = np.where((np.arange(24) >= 10) & (np.arange(24) < 20), 180.0, 40.0)
    daily = daily_vn_aqi(HOURS, {"pm25": pm25, "o3": o3})
    assert vn_aqi("o3_1h", [180.0])[0] < 100
    assert daily.sub_indices["o3"].tolist() == vn_aqi("o3_8h", [180.0]).tolist()
    assert daily.aqi[0] > 150
    # Beyond the 8-hour table's last breakpoint only the 1-hour value counts.
    storm = np.full(24, 450.0)
    assert (
        daily_vn_aqi(HOURS, {"pm25": pm25, "o3": storm}).sub_indices["o3"].tolist()
        == vn_aqi("o3_1h", [450.0]).tolist()
    )


def test_no_pm_means_no_index_and_days_follow_local_midnight() -> None:
    assert np.isnan(daily_vn_aqi(HOURS, {"no2": np.full(24, 300.0)}).aqi).all()
    beijing = timezone(timedelta(hours=8))
    # 16:00 UTC is local midnight in Beijing: 48 hours from there are exactly two local days.
    ts = 16 * HOUR_MS + np.arange(48, dtype=np.int64) * HOUR_MS
    pm25 = np.r_[np.full(24, 20.0), np.full(24, 120.0)]
    daily = daily_vn_aqi(local_ms(ts, beijing), {"pm25": pm25})
    assert daily.first_day == 1
    assert daily.aqi.tolist() == vn_aqi("pm25", [20.0, 120.0]).tolist()
    assert daily.days_above(150).tolist() == [2]
