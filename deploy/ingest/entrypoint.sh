#!/bin/sh
# Secrets handed over as files (Docker secrets, the InfluxDB tokens volume) become the settings
# citypulse reads: INFLUX_TOKEN_FILE -> CITYPULSE_INFLUX_TOKEN. Then the command runs as given.
set -eu
if [ -n "${INFLUX_TOKEN_FILE:-}" ]; then
  if [ ! -r "$INFLUX_TOKEN_FILE" ]; then
    echo "error: INFLUX_TOKEN_FILE=$INFLUX_TOKEN_FILE is not readable: did InfluxDB's first setup run?" >&2
    exit 2
  fi
  CITYPULSE_INFLUX_TOKEN="$(cat "$INFLUX_TOKEN_FILE")"
  export CITYPULSE_INFLUX_TOKEN
fi
exec "$@"
