"""Grafana dashboards as code, generated from the sensor-kind declarations, and their provisioning files."""
