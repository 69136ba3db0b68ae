#!/usr/bin/env bash
# A compose Kafka node's entrypoint (docker/compose.yaml), in place of the apache/kafka image's own:
# that one insists on JKS keystores with password files for SSL and formats storage without SCRAM
# users. Everything here comes from the kafka-secrets init service (`regsync stack secrets`): this
# node's server.properties (SASL_SSL + mutual TLS + StandardAuthorizer, rendered by the code that
# runs `regsync stack up --secure`) and the `kafka-storage format --add-scram` arguments.
set -euo pipefail
secrets=/etc/regsync/kafka
conf="$secrets/node-${KAFKA_NODE_ID:?}/server.properties"
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  # The SCRAM users are written with the first metadata record: the node never runs secure with
  # nobody able to log in, and never needs a plaintext bootstrap to create them.
  mapfile -t scram < "$secrets/format.args"
  /opt/kafka/bin/kafka-storage.sh format --cluster-id="${CLUSTER_ID:?}" --config "$conf" "${scram[@]}"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$conf"
