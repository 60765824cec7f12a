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
