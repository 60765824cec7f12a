"""Air-quality monitors: particulates, gases and the weather that drives them.

Gas concentrations are mass concentrations (µg/m³, CO in mg/m³) because both
Vietnam's VN_AQI and the WHO guidelines are stated in them; the US EPA index
converts to ppm/ppb where it needs to.

The limit lines on the air dashboards: the WHO global air quality guidelines
(2021), short-term levels (:data:`processors.aqi.WHO_2021_SHORT_TERM`), and
Vietnam's national ambient limits, QCVN 05:2023/BTNMT Table 1 (µg/Nm³; NO2,
O3 and CO over one hour, PM2.5 over 24 hours).
"""

from processors.aqi import WHO_2021_SHORT_TERM
from processors.kinds.base import Limit, Reading, SensorKind, measure


def _who(pollutant: str, averaging: str) -> Limit:
    return Limit(WHO_2021_SHORT_TERM[pollutant], f"WHO 2021, {averaging}")


class AirReading(Reading):
    """One air-quality observation (FIWARE ``AirQualityObserved``)."""

    pm25: float | None = measure(
        "µg/m³",
        0,
        1000,
        "Fine particulate matter, PM2.5",
        normal=(5, 80),
        fiware="pm25",
        limits=(_who("pm25", "24-hour"), Limit(50, "QCVN 05:2023/BTNMT, 24-hour")),
    )
    pm10: float | None = measure(
        "µg/m³",
        0,
        2000,
        "Coarse particulate matter, PM10",
        normal=(10, 150),
        fiware="pm10",
        limits=(_who("pm10", "24-hour"),),
    )
    no2: float | None = measure(
        "µg/m³",
        0,
        2000,
        "Nitrogen dioxide",
        normal=(5, 120),
        fiware="no2",
        limits=(_who("no2", "24-hour"), Limit(200, "QCVN 05:2023/BTNMT, 1-hour")),
    )
    o3: float | None = measure(
        "µg/m³",
        0,
        1000,
        "Ozone",
        normal=(5, 160),
        fiware="o3",
        limits=(_who("o3", "8-hour"), Limit(200, "QCVN 05:2023/BTNMT, 1-hour")),
    )
    co: float | None = measure(
        "mg/m³",
        0,
        150,
        "Carbon monoxide",
        normal=(0.2, 3.0),
        fiware="co",
        limits=(_who("co", "24-hour"), Limit(30, "QCVN 05:2023/BTNMT, 1-hour")),
    )
    temperature: float | None = measure(
        "°C",
        -40,
        70,
        "Air temperature",
        normal=(10, 38),
        fiware="temperature",
        # A storm's gust front can cool the air by a few degrees within a minute, never by
        # the ten a faulty reading jumps: 4 °C a minute is the limit.
        max_rate=240,
    )
    humidity: float | None = measure(
        "%",
        0,
        100,
        "Relative humidity (FIWARE uses a 0-1 fraction)",
        normal=(40, 98),
        fiware="relativeHumidity",
    )


KIND = SensorKind(
    name="air",
    title="Air quality",
    model=AirReading,
    interval_s=60.0,
    fiware_type="AirQualityObserved",
)
