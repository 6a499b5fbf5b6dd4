#!/bin/bash
# Entrypoint of geocube-acceptance's PostGIS image (Debian postgresql-15 + postgis 3).
#
# Written for this project from the *documented* behaviour of the official postgres image's entrypoint
# (https://hub.docker.com/_/postgres, "Environment Variables" and "Initialization scripts"):
#   - POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER (default
#     postgres), POSTGRES_DB (default $POSTGRES_USER), POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD,
#     PGDATA, and the *_FILE variants of the first four;
#   - on an empty data directory: initdb, then a temporary server listening on the Unix socket only,
#     creation of POSTGRES_DB, then /docker-entrypoint-initdb.d/* in sorted order (*.sh run if executable,
#     else sourced; *.sql and *.sql.gz fed to psql with ON_ERROR_STOP as POSTGRES_USER into POSTGRES_DB);
#   - arguments starting with '-' are arguments of postgres (e.g. `-c max_connections=1024`);
#   - started as root, it fixes the data directory's ownership and re-executes itself as user postgres.
# Because the temporary server has no TCP listener, a TCP readiness probe passes only once init is done.
set -Eeuo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

log() { printf '%s [entrypoint] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# file_env VAR [DEFAULT]: VAR from $VAR or from the file named by $VAR_FILE (not both).
file_env() {
	local var="$1" file_var="${1}_FILE" default="${2:-}" value
	if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
		die "both $var and $file_var are set (they are exclusive)"
	fi
	value="$default"
	if [ -n "${!var:-}" ]; then
		value="${!var}"
	elif [ -n "${!file_var:-}" ]; then
		value="$(< "${!file_var}")"
	fi
	export "$var"="$value"
	unset "$file_var"
}

if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" != postgres ]; then
	exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 700 "$PGDATA"
	chmod 3777 /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		die "the database is uninitialized and POSTGRES_PASSWORD is empty: set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)"
	fi
	log "initializing $PGDATA for user $POSTGRES_USER"
	# shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of words on purpose
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
		--encoding=UTF8 $POSTGRES_INITDB_ARGS
	printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"
	# As the official image does: the final server listens on every address (the pod's IP), not loopback.
	printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"

	PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
	psql_cmd=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [ "$POSTGRES_DB" != postgres ]; then
		log "creating database $POSTGRES_DB"
		"${psql_cmd[@]}" --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			CREATE DATABASE :"db";
		EOSQL
	fi
	psql_cmd+=(--dbname "$POSTGRES_DB")
	shopt -s nullglob
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
			*.sh)
				if [ -x "$f" ]; then
					log "running $f"
					"$f"
				else
					log "sourcing $f"
					# shellcheck disable=SC1090
					. "$f"
				fi
				;;
			*.sql) log "running $f"; "${psql_cmd[@]}" -f "$f" ;;
			*.sql.gz) log "running $f"; gunzip -c "$f" | "${psql_cmd[@]}" ;;
			*) log "ignoring $f" ;;
		esac
	done
	shopt -u nullglob
	PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -m fast -w stop
	log "initialization complete"
fi

exec "$@"
