#!/bin/sh
# cultivate-edge-entrypoint: render the edge's nginx configuration, then run nginx in
# the foreground as the current, unprivileged user.
#
# Environment (defaults):
#   FRONTEND_HOST=frontend      the frontend's name (resolved per connection)
#   FRONTEND_HTTP_PORT=8080     the frontend's PROXY-protocol HTTP listener
#   FRONTEND_HTTPS_PORT=8443    the frontend's PROXY-protocol HTTPS listener
set -eu

die() { printf 'cultivate-edge: error: %s\n' "$*" >&2; exit 1; }

FRONTEND_HOST="${FRONTEND_HOST:-frontend}"
FRONTEND_HTTP_PORT="${FRONTEND_HTTP_PORT:-8080}"
FRONTEND_HTTPS_PORT="${FRONTEND_HTTPS_PORT:-8443}"

case "$FRONTEND_HOST" in
    '' | *[!A-Za-z0-9.-]* | [.-]* | *[.-]) die "FRONTEND_HOST must be a host name (got '$FRONTEND_HOST')" ;;
esac
for port in "$FRONTEND_HTTP_PORT" "$FRONTEND_HTTPS_PORT"; do
    case "$port" in
        '' | *[!0-9]* | 0*) die "frontend ports must be integers between 1 and 65535 (got '$port')" ;;
    esac
    [ "${#port}" -le 5 ] && [ "$port" -le 65535 ] || die "frontend ports must be integers between 1 and 65535 (got '$port')"
done

# The first nameserver (127.0.0.11 on Docker's user-defined networks).
RESOLVER=$(awk '$1 == "nameserver" && $2 != "" { print $2; exit }' /etc/resolv.conf 2>/dev/null || true)
RESOLVER=${RESOLVER%%%*}
case "$RESOLVER" in
    '') RESOLVER=127.0.0.11 ;;
    *[!0-9A-Fa-f.:]*) die "unsupported nameserver '$RESOLVER' in /etc/resolv.conf" ;;
    *:*) RESOLVER="[$RESOLVER]" ;;
esac

CONF=/tmp/edge/nginx.conf
umask 027
sed -e "s|@RESOLVER@|$RESOLVER|g" \
    -e "s|@FRONTEND_HOST@|$FRONTEND_HOST|g" \
    -e "s|@FRONTEND_HTTP_PORT@|$FRONTEND_HTTP_PORT|g" \
    -e "s|@FRONTEND_HTTPS_PORT@|$FRONTEND_HTTPS_PORT|g" \
    /etc/nginx/cultivate-edge/nginx.conf.template > "$CONF"
if grep -n '@[A-Z0-9_]*@' "$CONF" >&2; then
    die "unrendered placeholder in $CONF"
fi
printf 'cultivate-edge: ports 80 and 443 to %s:%s and :%s (PROXY protocol) via resolver %s\n' \
    "$FRONTEND_HOST" "$FRONTEND_HTTP_PORT" "$FRONTEND_HTTPS_PORT" "$RESOLVER" >&2

if [ "$#" -gt 0 ]; then
    exec "$@"
fi
exec nginx -g 'daemon off;' -c "$CONF"
