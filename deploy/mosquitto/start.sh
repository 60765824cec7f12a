#!/bin/sh
# Runs Mosquitto on what the setup service wrote into the broker volume with 'citypulse devices
# provision' and 'citypulse devices certs': the configuration, the password file (one hashed
# secret per device, gateway and service), the ACL (each device may publish only its own
# readings) and the TLS listener's certificate. They are copied into the broker's own data
# directory, owner-only and owned by the account Mosquitto runs as. After the registry changes,
# run the setup service again and restart this one.
set -eu
from="${CITYPULSE_BROKER_FILES:-/citypulse-broker}"
data="${MOSQUITTO_DATA:-/mosquitto/data}"
owner="${MOSQUITTO_USER:-mosquitto}"
for name in mosquitto.conf passwd acl; do
  if [ ! -r "$from/$name" ]; then
    echo "error: $from/$name is missing: run the setup service (citypulse devices provision) first" >&2
    exit 2
  fi
done
umask 077
copy() {
  cp "$1" "$2.new"
  chown "$owner:$owner" "$2.new" 2>/dev/null || true
  mv "$2.new" "$2"
}
for name in mosquitto.conf passwd acl; do
  copy "$from/$name" "$data/$name"
done
if [ -d "$from/tls" ]; then
  mkdir -p "$data/tls"
  chown "$owner:$owner" "$data/tls" 2>/dev/null || true
  for name in ca.crt server.crt server.key; do
    copy "$from/tls/$name" "$data/tls/$name"
  done
fi
exec mosquitto -c "$data/mosquitto.conf"
