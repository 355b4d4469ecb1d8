#!/bin/sh
# cultivate-edge-route HOST: from now on the edge passes new connections to HOST, a
# container's own name or the service name `frontend`; the connections it has keep
# their frontend (nginx reloads gracefully). Returns once only the new configuration
# takes connections.
#
# Why: the edge passes TCP, so it cannot retry a connection that a stopping frontend
# resets, as one queued at its listener is when nginx closes it. A deploy routes the
# edge to the new frontend by name before the old one stops, and back to `frontend`
# once the old one is gone. Routing to the host already routed to changes nothing.
set -eu
. /usr/local/lib/cultivate-edge/render.sh

[ "$#" -eq 1 ] || die "usage: cultivate-edge-route HOST"
HOST=$1
# A name that is not one never matches the route file; render refuses it below.
if [ "$(cat "$ROUTE_FILE" 2>/dev/null || true)" = "$HOST" ] && [ "$(served_generation)" != "" ]; then
    printf 'cultivate-edge: already routing to %s\n' "$HOST" >&2
    exit 0
fi

GENERATION="$HOST@$(date +%s%N)"
render "$HOST" "$GENERATION" "$CONF.next"
nginx -t -q -c "$CONF.next" || die "nginx refused the configuration for '$HOST' (see above)"
mv "$CONF.next" "$CONF"
OLD_WORKERS=$(accepting_workers)
nginx -s reload -c "$CONF"
# nginx starts new workers, and 100 ms later tells the old ones to stop accepting: done
# when the new generation answers and no old worker accepts. Bounded: 50 tries, 0.1 s apart.
tries=0
until [ "$(served_generation)" = "$GENERATION" ] && ! accepting_workers | grep -qxF "$OLD_WORKERS"; do
    tries=$((tries + 1))
    [ "$tries" -le 50 ] || die "nginx did not load the configuration for '$HOST' within 5 s"
    sleep 0.1
done
printf '%s\n' "$HOST" > "$ROUTE_FILE"
printf 'cultivate-edge: new connections go to %s\n' "$HOST" >&2
