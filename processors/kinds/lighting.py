"""Street-light controllers: switch state, dimming, power draw and ambient light."""

from typing import Annotated

from pydantic import BeforeValidator

from processors.kinds.base import Reading, SensorKind, measure, on_off


class LightingReading(Reading):
    """One street-light controller report (FIWARE ``Streetlight``).

    ``state`` accepts ``"on"``/``"off"``, booleans or 0/1 and is stored as 0.0/1.0.
    """

    state: Annotated[float | None, BeforeValidator(on_off)] = measure(
        "on/off",
        0,
        1,
        "Lamp switched on (1) or off (0)",
        normal=(0, 1),
        fiware="powerState",
        step=1,
        switching=True,
    )
    dimming: float | None = measure(
        "%",
        0,
        100,
        "Dimming level (FIWARE uses a 0-1 fraction)",
        normal=(0, 100),
        fiware="illuminanceLevel",
        switching=True,
    )
    power: float | None = measure(
        "W",
        0,
        2000,
        "Electrical power drawn",
        normal=(0, 150),
        fiware="powerConsumption",
        scale="log",  # standby draw to full power is a factor of hundreds
        switching=True,
        district_total=True,
    )
    lux: float | None = measure(
        "lx",
        0,
        150000,
        "Ambient illuminance",
        normal=(0, 50000),
        scale="log",  # night to noon: 1e5-fold
        switching=True,  # the controller's own lamp adds its light when it switches on
    )


KIND = SensorKind(
    name="lighting",
    title="Street lighting",
    model=LightingReading,
    interval_s=300.0,
    fiware_type="Streetlight",
)
