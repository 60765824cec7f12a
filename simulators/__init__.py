"""Simulated sensor fleets: placement, physics, faults with ground truth, scenarios, publishing.

Engineers use these to test the pipeline before real sensors exist, to size
deployments, to score anomaly detectors and to rehearse incidents. Everything is
seeded: the same seed and start give the same bytes.

The way through: ``fleet`` places devices, ``schedule`` decides when each reports
and asks its kind's model (``models/``, driven by the city's ``weather``) for
values, ``incidents`` change what a staged incident touches, ``inject`` adds
faults and writes ``labels``, ``encode`` makes messages and the tally of what
the pipeline must do with them, and ``runner`` paces it all into an ``outputs``
(a file, or an MQTT broker through ``publisher``).
"""
