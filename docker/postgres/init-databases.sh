#!/bin/sh
# Runs once, on an empty data volume (postgres image's /docker-entrypoint-initdb.d): one role and one
# database per consumer, so each service holds only its own credentials.
set -eu

create() {
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v name="$1" -v password="$2" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
SQL
}

create airflow "$AIRFLOW_DB_PASSWORD"     # Airflow's metadata DB
create regsync "$REGSYNC_DB_PASSWORD"     # the filing store and the pipeline's state
create apicurio "$APICURIO_DB_PASSWORD"   # the schema registry's storage
