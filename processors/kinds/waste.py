"""Waste-bin sensors: how full, how hot, whether knocked over, how much battery is left."""

from processors.kinds.base import Reading, SensorKind, measure


class WasteReading(Reading):
    """One waste-container report (FIWARE ``WasteContainer``)."""

    fill_level: float | None = measure(
        "%",
        0,
        100,
        "Fill level (FIWARE uses a 0-1 fraction)",
        normal=(0, 90),
        fiware="fillingLevel",
        switching=True,  # emptied on collection days, whose hour and rhythm vary
    )
    temperature: float | None = measure(
        "°C", -40, 125, "Temperature inside the bin", normal=(15, 45), fiware="temperature"
    )
    tilt: float | None = measure("°", 0, 180, "Tilt from upright", normal=(0, 10))
    battery: float | None = measure("%", 0, 100, "Battery charge", normal=(20, 100))


KIND = SensorKind(
    name="waste",
    title="Waste collection",
    model=WasteReading,
    interval_s=900.0,
    fiware_type="WasteContainer",
)
