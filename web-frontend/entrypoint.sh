#!/bin/sh
# cultivate-frontend-entrypoint: render the nginx configuration from the environment,
# then run nginx in the foreground (as the current, unprivileged user).
#
# Environment (defaults):
#   HTTP_PORT=80            plain-HTTP listener (also serves /nginx-health)
#   HTTPS_PORT=443          TLS listener, only when certificates are mounted
#   HTTPS_PUBLIC_PORT=$HTTPS_PORT   port used in the HTTP->HTTPS redirect (":443" omitted)
#   EDGE_HTTP_PORT=8080     PROXY-protocol HTTP listener, for the edge (deploy/edge)
#   EDGE_HTTPS_PORT=8443    PROXY-protocol TLS listener, for the edge
#   BACKEND_HOST=backend    backend-api host name (resolved at request time)
#   BACKEND_PORT=3000       backend-api port
#   SERVER_NAMES=localhost  space-separated host names (DNS names or IPv4 addresses) the
#                           HTTP->HTTPS redirect may point to: a request whose Host (port
#                           left out) is one of them is redirected to it, any other Host to
#                           the FIRST one (never to a client-supplied name). Empty = localhost.
# Certificates: /etc/nginx/certs/fullchain.pem and /etc/nginx/certs/privkey.pem
# (mount read-only; both present = HTTPS on, neither = HTTP only, one = error).
set -eu

TEMPLATE_DIR=/etc/nginx/cultivate
CERT_DIR=/etc/nginx/certs
RUNTIME_DIR=/tmp/nginx
CONF_DIR="$RUNTIME_DIR/conf"
NGINX_CONF="$CONF_DIR/nginx.conf"

log() { printf 'cultivate-frontend: %s\n' "$*" >&2; }
die() { printf 'cultivate-frontend: error: %s\n' "$*" >&2; exit 1; }

HTTP_PORT="${HTTP_PORT:-80}"
HTTPS_PORT="${HTTPS_PORT:-443}"
HTTPS_PUBLIC_PORT="${HTTPS_PUBLIC_PORT:-$HTTPS_PORT}"
EDGE_HTTP_PORT="${EDGE_HTTP_PORT:-8080}"
EDGE_HTTPS_PORT="${EDGE_HTTPS_PORT:-8443}"
BACKEND_HOST="${BACKEND_HOST:-backend}"
BACKEND_PORT="${BACKEND_PORT:-3000}"
SERVER_NAMES="${SERVER_NAMES:-}"

# A TCP port: decimal integer 1-65535, no sign, no leading zero.
validate_port() {
    name=$1
    value=$2
    case "$value" in
        '' | *[!0-9]* | 0*) die "$name must be an integer between 1 and 65535 (got '$value')" ;;
    esac
    if [ "${#value}" -gt 5 ] || [ "$value" -gt 65535 ]; then
        die "$name must be an integer between 1 and 65535 (got '$value')"
    fi
}

validate_port HTTP_PORT "$HTTP_PORT"
validate_port HTTPS_PORT "$HTTPS_PORT"
validate_port HTTPS_PUBLIC_PORT "$HTTPS_PUBLIC_PORT"
validate_port EDGE_HTTP_PORT "$EDGE_HTTP_PORT"
validate_port EDGE_HTTPS_PORT "$EDGE_HTTPS_PORT"
validate_port BACKEND_PORT "$BACKEND_PORT"

# Each listener on its own port (HTTPS's two only count with certificates, below).
[ "$EDGE_HTTP_PORT" != "$HTTP_PORT" ] || die "EDGE_HTTP_PORT and HTTP_PORT must differ (both $HTTP_PORT)"

# Host name or IPv4 address: letters, digits, dots, hyphens (no spaces, quotes, ';' ...).
case "$BACKEND_HOST" in
    '' | *[!A-Za-z0-9.-]* | [.-]* | *[.-]) die "BACKEND_HOST must be a host name or IPv4 address (got '$BACKEND_HOST')" ;;
esac

# One SERVER_NAMES entry: a DNS name (labels of letters, digits and hyphens, 1-63
# characters, no hyphen at either end, 253 characters in all, no trailing dot) or an
# IPv4 address (four decimal numbers 0-255 without leading zeros).
validate_server_name() {
    name=$1
    why=
    case "$name" in
        *[!A-Za-z0-9.-]*) why="only letters, digits, dots and hyphens are allowed" ;;
        .* | *. | *..*) why="empty label (leading, trailing or doubled dot)" ;;
    esac
    if [ -z "$why" ] && [ "${#name}" -gt 253 ]; then
        why="longer than 253 characters"
    fi
    if [ -z "$why" ]; then
        saved_ifs=$IFS
        IFS=.
        # shellcheck disable=SC2086 # split on dots; no glob characters left at this point
        set -- $name
        IFS=$saved_ifs
        case "$name" in
            *[!0-9.]*)
                for label in "$@"; do
                    case "$label" in
                        -* | *-) why="label '$label' starts or ends with a hyphen" ;;
                    esac
                    if [ "${#label}" -gt 63 ]; then
                        why="label longer than 63 characters"
                    fi
                done ;;
            *)
                # Digits and dots only: it must be an IPv4 address.
                if [ "$#" -ne 4 ]; then
                    why="not an IPv4 address (4 numbers expected)"
                fi
                for part in "$@"; do
                    case "$part" in
                        0?*) why="not an IPv4 address (leading zero in '$part')" ;;
                    esac
                    if [ "${#part}" -gt 3 ] || [ "$part" -gt 255 ]; then
                        why="not an IPv4 address ('$part' is above 255)"
                    fi
                done ;;
        esac
    fi
    if [ -n "$why" ]; then
        die "SERVER_NAMES must be a space-separated list of DNS names or IPv4 addresses: '$name' is not one: $why (SERVER_NAMES='$SERVER_NAMES')"
    fi
}

# SERVER_NAMES: validated, lowercased (as nginx's $host), duplicates dropped.
REDIRECT_NAMES=
set -f   # no pathname expansion while splitting the list
for name in $SERVER_NAMES; do
    validate_server_name "$name"
    name=$(printf '%s' "$name" | tr 'A-Z' 'a-z')
    case " $REDIRECT_NAMES " in
        *" $name "*) ;;
        *) REDIRECT_NAMES="${REDIRECT_NAMES:+$REDIRECT_NAMES }$name" ;;
    esac
done
set +f
REDIRECT_NAMES=${REDIRECT_NAMES:-localhost}
REDIRECT_DEFAULT=${REDIRECT_NAMES%% *}

# DNS resolver for the backend name: first nameserver in /etc/resolv.conf
# (127.0.0.11 on Docker user-defined networks). nginx does not read /etc/hosts for
# names resolved at request time.
RESOLVER=$(awk '$1 == "nameserver" && $2 != "" { print $2; exit }' /etc/resolv.conf 2>/dev/null || true)
RESOLVER=${RESOLVER%%%*}   # drop an IPv6 zone id (fe80::1%eth0)
case "$RESOLVER" in
    '')
        RESOLVER=127.0.0.11
        log "warning: no nameserver in /etc/resolv.conf, using resolver $RESOLVER" ;;
    *[!0-9A-Fa-f.:]*) die "unsupported nameserver '$RESOLVER' in /etc/resolv.conf" ;;
    *:*) RESOLVER="[$RESOLVER]" ;;
esac

# HTTPS only when both certificate files exist.
TLS=off
if [ -e "$CERT_DIR/fullchain.pem" ] && [ -e "$CERT_DIR/privkey.pem" ]; then
    TLS=on
    for f in fullchain.pem privkey.pem; do
        [ -r "$CERT_DIR/$f" ] || die "$CERT_DIR/$f is not readable by uid $(id -u) (make it readable by uid/gid 101)"
    done
    [ "$HTTP_PORT" != "$HTTPS_PORT" ] || die "HTTP_PORT and HTTPS_PORT must differ (both $HTTP_PORT)"
    for port in "$HTTP_PORT" "$HTTPS_PORT" "$EDGE_HTTP_PORT"; do
        [ "$EDGE_HTTPS_PORT" != "$port" ] || die "EDGE_HTTPS_PORT must differ from HTTP_PORT, HTTPS_PORT and EDGE_HTTP_PORT (all $port)"
    done
    [ "$EDGE_HTTP_PORT" != "$HTTPS_PORT" ] || die "EDGE_HTTP_PORT and HTTPS_PORT must differ (both $HTTPS_PORT)"
elif [ -e "$CERT_DIR/fullchain.pem" ]; then
    die "$CERT_DIR/fullchain.pem exists but $CERT_DIR/privkey.pem is missing: mount both files or neither"
elif [ -e "$CERT_DIR/privkey.pem" ]; then
    die "$CERT_DIR/privkey.pem exists but $CERT_DIR/fullchain.pem is missing: mount both files or neither"
fi

if [ "$HTTPS_PUBLIC_PORT" = 443 ]; then
    HTTPS_PORT_SUFFIX=
else
    HTTPS_PORT_SUFFIX=":$HTTPS_PUBLIC_PORT"
fi

# Listen on IPv6 too when the kernel has it.
if [ -f /proc/net/if_inet6 ]; then
    LISTEN6_HTTP="listen [::]:$HTTP_PORT default_server;"
    LISTEN6_HTTPS="listen [::]:$HTTPS_PORT ssl http2 default_server;"
else
    LISTEN6_HTTP=
    LISTEN6_HTTPS=
fi

# Ports below 1024 need CAP_NET_BIND_SERVICE (file capability on /usr/sbin/nginx). The
# kernel refuses to exec a binary whose file capabilities exceed the bounding set, so say why.
capbnd=$(awk '$1 == "CapBnd:" { print $2 }' /proc/self/status 2>/dev/null || true)
if [ -n "$capbnd" ]; then
    low=${capbnd#"${capbnd%????}"}
    if [ $((0x$low & 0x400)) -eq 0 ]; then
        die "CAP_NET_BIND_SERVICE is not in the container's capability bounding set (cap_drop: ALL?); nginx carries it as a file capability and cannot start without it: add cap_add: [NET_BIND_SERVICE]"
    fi
fi

umask 027
rm -rf "$CONF_DIR"
mkdir -p "$CONF_DIR/servers" \
    "$RUNTIME_DIR/client_body" "$RUNTIME_DIR/proxy" "$RUNTIME_DIR/fastcgi" \
    "$RUNTIME_DIR/uwsgi" "$RUNTIME_DIR/scgi"

# render TEMPLATE OUTPUT HEADERS_FILE: replace @NAME@ placeholders; nginx's own $variables
# are left alone. Values are validated above and contain no sed metacharacters.
render() {
    sed -e "s|@RUNTIME_DIR@|$RUNTIME_DIR|g" \
        -e "s|@HTTP_PORT@|$HTTP_PORT|g" \
        -e "s|@HTTPS_PORT@|$HTTPS_PORT|g" \
        -e "s|@HTTPS_PORT_SUFFIX@|$HTTPS_PORT_SUFFIX|g" \
        -e "s|@EDGE_HTTP_PORT@|$EDGE_HTTP_PORT|g" \
        -e "s|@EDGE_HTTPS_PORT@|$EDGE_HTTPS_PORT|g" \
        -e "s|@BACKEND_HOST@|$BACKEND_HOST|g" \
        -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" \
        -e "s|@RESOLVER@|$RESOLVER|g" \
        -e "s|@LISTEN6_HTTP@|$LISTEN6_HTTP|g" \
        -e "s|@LISTEN6_HTTPS@|$LISTEN6_HTTPS|g" \
        -e "s|@HEADERS@|$3|g" \
        "$TEMPLATE_DIR/$1" > "$2"
    if grep -n '@[A-Z0-9_]*@' "$2" >&2; then
        die "unrendered placeholder in $2"
    fi
}

# The redirect's map entries (http-redirect-server.conf.template): any Host -> the first
# name, each configured name -> itself. The leading backslash keeps a name such as
# "default" or "include" from being read as a map keyword.
{
    printf 'default %s;\n' "$REDIRECT_DEFAULT"
    for name in $REDIRECT_NAMES; do
        printf '\\%s %s;\n' "$name" "$name"
    done
} > "$CONF_DIR/redirect-hosts.conf"

HEADERS_HTTP="$TEMPLATE_DIR/security-headers.conf"
HEADERS_HTTPS="$TEMPLATE_DIR/security-headers-https.conf"

render nginx.conf.template "$NGINX_CONF" "$HEADERS_HTTP"
if [ "$TLS" = on ]; then
    render app-locations.conf.template "$CONF_DIR/app-locations-https.conf" "$HEADERS_HTTPS"
    render https-server.conf.template "$CONF_DIR/servers/https.conf" "$HEADERS_HTTPS"
    render http-redirect-server.conf.template "$CONF_DIR/servers/http.conf" "$HEADERS_HTTP"
    log "HTTPS on port $HTTPS_PORT, HTTP on port $HTTP_PORT redirects to https://<name>$HTTPS_PORT_SUFFIX for server names '$REDIRECT_NAMES' (others to $REDIRECT_DEFAULT); backend http://$BACKEND_HOST:$BACKEND_PORT via resolver $RESOLVER"
else
    render app-locations.conf.template "$CONF_DIR/app-locations.conf" "$HEADERS_HTTP"
    render http-server.conf.template "$CONF_DIR/servers/http.conf" "$HEADERS_HTTP"
    log "HTTP only on port $HTTP_PORT (no certificates in $CERT_DIR); backend http://$BACKEND_HOST:$BACKEND_PORT via resolver $RESOLVER"
fi

# Any arguments replace nginx (the config is rendered first), e.g. `nginx -t -c /tmp/nginx/conf/nginx.conf`.
if [ "$#" -gt 0 ]; then
    exec "$@"
fi

exec nginx -g 'daemon off;' -c "$NGINX_CONF"
