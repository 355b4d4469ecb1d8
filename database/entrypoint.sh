#!/bin/sh
# Initialise the cluster on first start, then run the server in the foreground.
#
# POSTGRES_USER (default apiuser) and POSTGRES_DB (default cultivate) name the role the
# backend logs in as and its database. Peer authentication maps OS user apiuser
# (uid 1001, the backend's user) to that role; nobody else gets in but postgres itself.
#
# Initialisation happens in a scratch directory beside PGDATA and is moved into place
# only when complete, so a container killed half-way through never leaves a cluster
# without its role and database: the next start simply initialises again.
set -eu

PGDATA=${PGDATA:-/var/lib/postgresql/data/pgdata}
POSTGRES_USER=${POSTGRES_USER:-apiuser}
POSTGRES_DB=${POSTGRES_DB:-cultivate}
SCRATCH="$PGDATA.init"

for name in "$POSTGRES_USER" "$POSTGRES_DB"; do
    case "$name" in
        '' | [!a-z_]* | *[!a-z0-9_]*)
            echo "cultivate-db: error: '$name' is not a valid role or database name (lowercase letters, digits, _)" >&2
            exit 1 ;;
    esac
done

# The ident map, rewritten at every start so it follows POSTGRES_USER.
write_ident_map() {
    printf '# MAPNAME   SYSTEM-USERNAME  PG-USERNAME\ncultivate   apiuser          %s\ncultivate   postgres         postgres\n' \
        "$POSTGRES_USER" > "$1/pg_ident.conf"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "cultivate-db: no cluster in $PGDATA, initialising"
    rm -rf "$SCRATCH"
    initdb -D "$SCRATCH" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=reject >/dev/null
    write_ident_map "$SCRATCH"
    init_socket=$(mktemp -d)
    pg_ctl -D "$SCRATCH" -w -s \
        -o "-c listen_addresses='' -c unix_socket_directories=$init_socket -c hba_file=/etc/cultivate/pg_hba.conf" \
        start
    # No passwords: the role logs in only through peer authentication.
    psql -v ON_ERROR_STOP=1 -q -h "$init_socket" -U postgres -d postgres <<SQL
CREATE ROLE $POSTGRES_USER LOGIN;
CREATE DATABASE $POSTGRES_DB OWNER $POSTGRES_USER;
REVOKE ALL ON DATABASE $POSTGRES_DB FROM PUBLIC;
SQL
    pg_ctl -D "$SCRATCH" -w -s -m fast stop
    rmdir "$init_socket"
    mv "$SCRATCH" "$PGDATA"
    echo "cultivate-db: cluster initialised with role $POSTGRES_USER and database $POSTGRES_DB"
fi

write_ident_map "$PGDATA"
exec postgres -D "$PGDATA" -c config_file=/etc/cultivate/postgresql.conf -c "ident_file=$PGDATA/pg_ident.conf" "$@"
