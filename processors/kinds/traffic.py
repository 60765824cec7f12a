"""Traffic detectors (loops, radar, cameras) reporting per-interval aggregates."""

from processors.kinds.base import Reading, SensorKind, measure


class TrafficReading(Reading):
    """One traffic-flow observation over the reporting interval (FIWARE ``TrafficFlowObserved``)."""

    vehicle_count: float | None = measure(
        "vehicles",
        0,
        10000,
        "Vehicles counted in the reporting interval",
        normal=(0, 120),
        fiware="intensity",
        step=1,
        district_total=True,
    )
    mean_speed: float | None = measure(
        "km/h", 0, 250, "Mean vehicle speed", normal=(10, 60), fiware="averageVehicleSpeed"
    )
    occupancy: float | None = measure(
        "%",
        0,
        100,
        "Share of time the detector is occupied (FIWARE uses a 0-1 fraction)",
        normal=(2, 40),
        fiware="occupancy",
    )


KIND = SensorKind(
    name="traffic",
    title="Traffic",
    model=TrafficReading,
    interval_s=60.0,
    fiware_type="TrafficFlowObserved",
)
