#!/bin/sh
# cultivate-edge-entrypoint: render the edge's nginx configuration, then run nginx in
# the foreground as the current, unprivileged user.
#
# Environment (defaults; the ports are checked in render.sh):
#   FRONTEND_HOST=frontend      the frontend's name (resolved per connection)
set -eu
. /usr/local/lib/cultivate-edge/render.sh

FRONTEND_HOST="${FRONTEND_HOST:-frontend}"
render "$FRONTEND_HOST" "$FRONTEND_HOST@start" "$CONF"
printf '%s\n' "$FRONTEND_HOST" > "$ROUTE_FILE"
printf 'cultivate-edge: ports 80 and 443 to %s:%s and :%s (PROXY protocol) via resolver %s\n' \
    "$FRONTEND_HOST" "$FRONTEND_HTTP_PORT" "$FRONTEND_HTTPS_PORT" "$RESOLVER" >&2

if [ "$#" -gt 0 ]; then
    exec "$@"
fi
exec nginx -g 'daemon off;' -c "$CONF"
