#!/usr/bin/env bash
# compose's PostgreSQL entrypoint: TLS on, with the server certificate kafka-secrets issued from the
# deployment's CA (the one the clients already trust for Kafka). PostgreSQL refuses a key it does not
# own with mode 0600, and the volume's copy belongs to the init's uid 1000, so it is installed as
# the postgres user's first (this runs as root, as the image's entrypoint does before dropping to
# postgres); then the image's own entrypoint runs as usual.
set -euo pipefail
tls=/etc/regsync/postgres-tls
install -m 0600 -o postgres -g postgres "$tls/server.key" /var/lib/postgresql/server.key
install -m 0644 -o postgres -g postgres "$tls/server.crt" /var/lib/postgresql/server.crt
exec docker-entrypoint.sh postgres \
  -c ssl=on \
  -c ssl_cert_file=/var/lib/postgresql/server.crt \
  -c ssl_key_file=/var/lib/postgresql/server.key \
  -c ssl_min_protocol_version=TLSv1.2
