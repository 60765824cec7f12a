"""Water-network sensors: drinking-water quality plus the hydraulics of the pipes.

The limit lines: Vietnam's drinking-water regulation QCVN 01-1:2018/BYT (Ministry
of Health), Table 1: pH 6.0-8.5, turbidity at most 2 NTU, free chlorine 0.2-1.0 mg/L.
"""

from processors.kinds.base import Limit, Reading, SensorKind, measure

_QCVN = "QCVN 01-1:2018/BYT"


class WaterReading(Reading):
    """One water-network observation (FIWARE ``WaterQualityObserved`` plus hydraulics)."""

    ph: float | None = measure(
        "pH",
        0,
        14,
        "Acidity",
        normal=(6.5, 8.5),
        fiware="pH",
        limits=(Limit(6.0, _QCVN, "min"), Limit(8.5, _QCVN)),
    )
    turbidity: float | None = measure(
        "NTU", 0, 4000, "Turbidity", normal=(0.1, 2.0), fiware="turbidity", limits=(Limit(2.0, _QCVN),)
    )
    dissolved_oxygen: float | None = measure("mg/L", 0, 20, "Dissolved oxygen", normal=(5, 9), fiware="O2")
    conductivity: float | None = measure(
        "µS/cm", 0, 20000, "Electrical conductivity", normal=(100, 800), fiware="conductivity"
    )
    free_chlorine: float | None = measure(
        "mg/L",
        0,
        10,
        "Free chlorine residual",
        normal=(0.2, 1.0),
        fiware="Cl-",
        limits=(Limit(0.2, _QCVN, "min"), Limit(1.0, _QCVN)),
    )
    pressure: float | None = measure("bar", 0, 16, "Pipe pressure", normal=(1.5, 4.5))
    flow: float | None = measure("m³/h", 0, 10000, "Flow rate", normal=(5, 400), fiware="flow")


KIND = SensorKind(
    name="water",
    title="Water supply",
    model=WaterReading,
    interval_s=300.0,
    fiware_type="WaterQualityObserved",
)
