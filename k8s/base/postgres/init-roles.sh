#!/bin/sh
# Runs once, when the PostgreSQL data directory is first initialised (the
# official image executes /docker-entrypoint-initdb.d/*.sh as the postgres
# superuser). It gives every service its own login role that owns exactly one
# schema and cannot reach the others:
#
#   role                  schema         used by
#   task_api              tasks          task-api
#   notification_service  notifications  notification-service
#   audit_service         audit          audit-service
#
# Each schema is created here, owned by its role; a service creates its
# schema at start-up only when it is missing (src/db.rs), so the roles need
# CONNECT on the database and nothing more: no role can add schemas or read
# another role's schema (no USAGE is granted across roles).
#
# Passwords come from the environment (Kubernetes Secret); psql's :'var'
# quoting keeps them out of the SQL text.
set -eu

: "${TASK_API_DB_PASSWORD:?}"
: "${NOTIFICATION_SERVICE_DB_PASSWORD:?}"
: "${AUDIT_SERVICE_DB_PASSWORD:?}"

psql -v ON_ERROR_STOP=1 \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v db="$POSTGRES_DB" \
    -v task_api_pw="$TASK_API_DB_PASSWORD" \
    -v notification_service_pw="$NOTIFICATION_SERVICE_DB_PASSWORD" \
    -v audit_service_pw="$AUDIT_SERVICE_DB_PASSWORD" <<'SQL'
-- Nobody but the roles below may connect; nobody may create in `public`.
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM PUBLIC;

CREATE ROLE task_api LOGIN PASSWORD :'task_api_pw';
CREATE ROLE notification_service LOGIN PASSWORD :'notification_service_pw';
CREATE ROLE audit_service LOGIN PASSWORD :'audit_service_pw';

GRANT CONNECT ON DATABASE :"db" TO task_api, notification_service, audit_service;

CREATE SCHEMA tasks AUTHORIZATION task_api;
CREATE SCHEMA notifications AUTHORIZATION notification_service;
CREATE SCHEMA audit AUTHORIZATION audit_service;

-- Belt and braces: the services set search_path themselves (src/db.rs).
ALTER ROLE task_api SET search_path = tasks;
ALTER ROLE notification_service SET search_path = notifications;
ALTER ROLE audit_service SET search_path = audit;
SQL
