# cultivate-edge render library, sourced by cultivate-edge-entrypoint and
# cultivate-edge-route: checks the settings and renders nginx's configuration.
#
# Environment (defaults):
#   FRONTEND_HTTP_PORT=8080     the frontend's PROXY-protocol HTTP listener
#   FRONTEND_HTTPS_PORT=8443    the frontend's PROXY-protocol HTTPS listener

CONF=/tmp/edge/nginx.conf
# The host new connections go to, as last loaded (the service name, or one container's).
ROUTE_FILE=/tmp/edge/route
TEMPLATE=/etc/nginx/cultivate-edge/nginx.conf.template
# Loopback only: answers with the loaded configuration's generation.
GENERATION_PORT=8099

die() { printf 'cultivate-edge: error: %s\n' "$*" >&2; exit 1; }

# A container or service name as Docker's DNS knows it (Compose v1 names have `_`).
check_host() {
    case "$1" in
        '' | *[!A-Za-z0-9._-]* | [._-]* | *[._-]) die "the frontend host must be a container or service name (got '$1')" ;;
    esac
}

check_ports() {
    FRONTEND_HTTP_PORT="${FRONTEND_HTTP_PORT:-8080}"
    FRONTEND_HTTPS_PORT="${FRONTEND_HTTPS_PORT:-8443}"
    for port in "$FRONTEND_HTTP_PORT" "$FRONTEND_HTTPS_PORT"; do
        case "$port" in
            '' | *[!0-9]* | 0*) die "frontend ports must be integers between 1 and 65535 (got '$port')" ;;
        esac
        [ "${#port}" -le 5 ] && [ "$port" -le 65535 ] || die "frontend ports must be integers between 1 and 65535 (got '$port')"
    done
}

# The first nameserver (127.0.0.11 on Docker's user-defined networks).
find_resolver() {
    RESOLVER=$(awk '$1 == "nameserver" && $2 != "" { print $2; exit }' /etc/resolv.conf 2>/dev/null || true)
    RESOLVER=${RESOLVER%%%*}
    case "$RESOLVER" in
        '') RESOLVER=127.0.0.11 ;;
        *[!0-9A-Fa-f.:]*) die "unsupported nameserver '$RESOLVER' in /etc/resolv.conf" ;;
        *:*) RESOLVER="[$RESOLVER]" ;;
    esac
}

# render HOST GENERATION OUT: the configuration passing connections to HOST.
render() {
    check_host "$1"
    check_ports
    find_resolver
    (
        umask 027
        sed -e "s|@RESOLVER@|$RESOLVER|g" \
            -e "s|@FRONTEND_HOST@|$1|g" \
            -e "s|@FRONTEND_HTTP_PORT@|$FRONTEND_HTTP_PORT|g" \
            -e "s|@FRONTEND_HTTPS_PORT@|$FRONTEND_HTTPS_PORT|g" \
            -e "s|@GENERATION_PORT@|$GENERATION_PORT|g" \
            -e "s|@GENERATION@|$2|g" \
            "$TEMPLATE" > "$3"
    )
    if grep -n '@[A-Z0-9_]*@' "$3" >&2; then
        die "unrendered placeholder in $3"
    fi
}

# The generation the running nginx answers with (empty when none answers in a second).
served_generation() {
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$GENERATION_PORT && head -n 1 <&3" 2>/dev/null || true
}

# The PIDs of nginx's workers taking new connections (one shutting down says so in its
# title: "nginx: worker process is shutting down").
accepting_workers() {
    for dir in /proc/[0-9]*; do
        [ "$(tr -d '\0' < "$dir/cmdline" 2>/dev/null)" = "nginx: worker process" ] && printf '%s\n' "${dir#/proc/}"
    done
    return 0
}
