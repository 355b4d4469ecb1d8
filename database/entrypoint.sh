#!/bin/sh
# Initialise the cluster on first start, then run the server in the foreground.
#
# Initialisation happens in a scratch directory beside PGDATA and is moved into place
# only when complete, so a container killed half-way through never leaves a cluster
# without its role and database: the next start simply initialises again.
set -eu

PGDATA=${PGDATA:-/var/lib/postgresql/data/pgdata}
SCRATCH="$PGDATA.init"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "cultivate-db: no cluster in $PGDATA, initialising"
    rm -rf "$SCRATCH"
    initdb -D "$SCRATCH" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=reject >/dev/null
    init_socket=$(mktemp -d)
    pg_ctl -D "$SCRATCH" -w -s \
        -o "-c listen_addresses='' -c unix_socket_directories=$init_socket -c hba_file=/etc/cultivate/pg_hba.conf" \
        start
    psql -v ON_ERROR_STOP=1 -q -h "$init_socket" -U postgres -d postgres -f /etc/cultivate/init.sql
    pg_ctl -D "$SCRATCH" -w -s -m fast stop
    rmdir "$init_socket"
    mv "$SCRATCH" "$PGDATA"
    echo "cultivate-db: cluster initialised with role apiuser and database cultivate"
fi

exec postgres -D "$PGDATA" -c config_file=/etc/cultivate/postgresql.conf "$@"
