#!/bin/sh
# Runs once, on an empty data volume (postgres image's /docker-entrypoint-initdb.d): one role and one
# database per consumer, so each service holds only its own credentials; then the filing store's
# component roles (docs/security.md), which `regsync db upgrade` (airflow-init) grants table by table.
set -eu

create() {
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v name="$1" -v password="$2" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE CONNECT, TEMPORARY ON DATABASE :"name" FROM PUBLIC;
SQL
}

role() {
  # NOINHERIT, no CREATEDB/CREATEROLE: the role holds only what the grants give it.
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v name="$1" -v password="$2" <<'SQL'
CREATE ROLE :"name" LOGIN NOINHERIT PASSWORD :'password';
SQL
}

create airflow "$AIRFLOW_DB_PASSWORD"     # Airflow's metadata DB
create regsync "$REGSYNC_DB_PASSWORD"     # the filing store and the pipeline's state (owner: migrations)
create apicurio "$APICURIO_DB_PASSWORD"   # the schema registry's storage
role regsync_pipeline "$REGSYNC_DB_PIPELINE_PASSWORD"   # the pipeline's jobs
role regsync_portal "$REGSYNC_DB_PORTAL_PASSWORD"       # the web service
role regsync_reader "$REGSYNC_DB_READER_PASSWORD"       # reports, BI, roster readers (SELECT only)
