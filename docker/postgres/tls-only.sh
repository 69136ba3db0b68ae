#!/bin/sh
# Runs once, on an empty data volume (/docker-entrypoint-initdb.d): refuse every TCP connection
# without TLS. The first matching pg_hba.conf line wins; the image's own init and the health check
# use the local socket, which this line does not cover.
set -eu
sed -i '1i hostnossl all all all reject' "$PGDATA/pg_hba.conf"
