"""Simulated sensor fleets: device placement, signals, fault injection, publishing.

Engineers use these to test the pipeline before real sensors exist, to size
deployments and to rehearse incidents. Everything is seeded: the same seed gives
the same bytes.
"""
