#!/bin/bash
# Runs once, after InfluxDB's first setup (docker-entrypoint-initdb.d): makes the two least-privilege
# tokens the stack uses, and leaves them in the shared tokens volume, readable by the containers that
# mount it (ingest and Grafana), never printed. InfluxDB chooses token values; the admin token stays
# with the operator (.env) and is used only by the one-shot setup service.
set -euo pipefail
out=/citypulse-tokens
mkdir -p "$out"
bucket_id=$(influx bucket list --org "$DOCKER_INFLUXDB_INIT_ORG" --name "$DOCKER_INFLUXDB_INIT_BUCKET" --hide-headers | cut -f1)
influx auth create --org "$DOCKER_INFLUXDB_INIT_ORG" --description "citypulse ingest (write only)" \
  --write-bucket "$bucket_id" --hide-headers | cut -f3 > "$out/ingest.token"
# Read-only over every bucket of the org: the raw bucket and the rollup that storage setup makes.
influx auth create --org "$DOCKER_INFLUXDB_INIT_ORG" --description "citypulse Grafana (read only)" \
  --read-buckets --hide-headers | cut -f3 > "$out/grafana.token"
chmod 0644 "$out/ingest.token" "$out/grafana.token"
