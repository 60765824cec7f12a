"""Hanoi: where simulated devices stand, and the city's clock.

Districts are the twelve urban districts (quận) by their long-standing
boundaries, with approximate centroids and radii; devices are scattered
around them. Real deployments carry their own district names in the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

UTC_OFFSET_HOURS = 7
"""Hanoi local time is UTC+7 all year (no daylight saving)."""

LATITUDE = 21.0285
LONGITUDE = 105.8542


@dataclass(frozen=True, slots=True)
class District:
    name: str
    lat: float
    lon: float
    radius_deg: float
    weight: float
    """Relative share of devices (roughly population and road density)."""


DISTRICTS: tuple[District, ...] = (
    District("Ba Đình", 21.0340, 105.8140, 0.012, 1.0),
    District("Hoàn Kiếm", 21.0288, 105.8525, 0.008, 0.8),
    District("Tây Hồ", 21.0700, 105.8190, 0.018, 0.8),
    District("Long Biên", 21.0480, 105.8880, 0.025, 1.2),
    District("Cầu Giấy", 21.0330, 105.7900, 0.012, 1.1),
    District("Đống Đa", 21.0180, 105.8300, 0.010, 1.3),
    District("Hai Bà Trưng", 21.0060, 105.8570, 0.010, 1.2),
    District("Hoàng Mai", 20.9740, 105.8630, 0.020, 1.4),
    District("Thanh Xuân", 20.9950, 105.8090, 0.010, 1.0),
    District("Nam Từ Liêm", 21.0120, 105.7650, 0.018, 1.0),
    District("Bắc Từ Liêm", 21.0700, 105.7600, 0.020, 1.0),
    District("Hà Đông", 20.9600, 105.7600, 0.022, 1.2),
)


# --- Climate ------------------------------------------------------------------------------------
# Approximate climate normals for Hanoi (Láng station), as published in common climate tables
# (Vietnam's national hydro-meteorological service, 1991-2020). January first. These set the
# seasonal levels; the weather model adds daily cycles, rain events and day-to-day anomalies.
MONTHLY_TEMPERATURE_C = (16.4, 17.2, 20.0, 23.9, 27.4, 29.0, 29.2, 28.6, 27.5, 24.9, 21.5, 18.2)
MONTHLY_DAILY_RANGE_C = (5.2, 4.6, 4.6, 5.4, 7.0, 6.8, 6.6, 6.1, 6.3, 6.8, 7.0, 6.6)
MONTHLY_HUMIDITY_PCT = (77.0, 81.0, 85.0, 85.0, 80.0, 79.0, 80.0, 83.0, 80.0, 77.0, 75.0, 74.0)
MONTHLY_RAIN_DAYS = (10.0, 12.0, 15.0, 13.0, 14.0, 14.0, 16.0, 17.0, 14.0, 10.0, 7.0, 5.0)
MONTHLY_RAIN_MM = (19.0, 26.0, 44.0, 90.0, 188.0, 240.0, 288.0, 318.0, 265.0, 131.0, 43.0, 23.0)

MONTHLY_PM25 = (75.0, 58.0, 55.0, 45.0, 34.0, 26.0, 22.0, 23.0, 30.0, 45.0, 58.0, 68.0)
"""Citywide monthly mean PM2.5 (µg/m³): an assumption shaped like published Hanoi monitor
summaries (dry-season winters two to three times the wet-season summers), not a measurement."""

MONTHLY_INVERSION_CHANCE = (0.6, 0.45, 0.3, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.45, 0.6)
"""Chance that a winter temperature-inversion episode starts in a given week, by month."""
