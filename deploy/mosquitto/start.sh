#!/bin/sh
# Writes the broker's password file from the environment at every start (a password changed in
# .env takes effect on the next start), then runs Mosquitto with the repository's configuration.
set -eu
: "${MQTT_INGEST_PASSWORD:?set MQTT_INGEST_PASSWORD in .env}"
: "${MQTT_SENSORS_PASSWORD:?set MQTT_SENSORS_PASSWORD in .env}"
umask 077
passwd=/mosquitto/data/passwd
rm -f "$passwd.new"
touch "$passwd.new"
mosquitto_passwd -b "$passwd.new" ingest "$MQTT_INGEST_PASSWORD"
mosquitto_passwd -b "$passwd.new" sensors "$MQTT_SENSORS_PASSWORD"
chown mosquitto:mosquitto "$passwd.new" 2>/dev/null || true
mv "$passwd.new" "$passwd"
exec mosquitto -c /mosquitto/config/mosquitto.conf
