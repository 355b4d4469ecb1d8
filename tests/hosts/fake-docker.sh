#!/bin/sh
# Fake Docker CLI of the test host (installed by install-fake-docker.sh, which sets the
# versions). Answers the version and info queries a doctor makes; nothing else.
version=$FAKE_DOCKER_VERSION
build=$FAKE_DOCKER_BUILD
api=$FAKE_DOCKER_API
compose=${FAKE_COMPOSE_VERSION:-}
printf '%s docker %s\n' "$(id -u)" "$*" >>/var/log/fake-docker-calls.log 2>/dev/null

# Like the real socket (root:docker 0660): other users need the docker group.
require_daemon() {
    [ "$(id -u)" = 0 ] && return 0
    id -Gn | tr ' ' '\n' | grep -qx docker && return 0
    if [ "$api" = 1.40 ]; then
        echo "Got permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: Get http://%2Fvar%2Frun%2Fdocker.sock/v$api/$1: dial unix /var/run/docker.sock: connect: permission denied" >&2
    else
        echo "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v$api/$1\": dial unix /var/run/docker.sock: connect: permission denied" >&2
    fi
    exit 1
}

# The value of -f/--format, if any.
format_of() {
    while [ $# -gt 0 ]; do
        case $1 in
        -f | --format)
            printf '%s' "${2:-}"
            return
            ;;
        --format=*)
            printf '%s' "${1#--format=}"
            return
            ;;
        esac
        shift
    done
}

case ${1:-} in
--version | -v)
    echo "Docker version $version, build $build"
    ;;
version)
    shift
    format=$(format_of "$@")
    case $format in
    "") ;;
    *Server*)
        require_daemon version
        echo "$version"
        exit 0
        ;;
    *)
        echo "$version"
        exit 0
        ;;
    esac
    printf 'Client:\n Version:           %s\n API version:       %s\n Git commit:        %s\n OS/Arch:           linux/amd64\n\n' \
        "$version" "$api" "$build"
    require_daemon version
    printf 'Server: Docker Engine - Community\n Engine:\n  Version:          %s\n  API version:      %s (minimum version 1.12)\n  OS/Arch:          linux/amd64\n' \
        "$version" "$api"
    ;;
info)
    shift
    require_daemon info
    case $(format_of "$@") in
    "") printf 'Client:\n Context:    default\n\nServer:\n Containers: 0\n Images: 0\n Server Version: %s\n Storage Driver: overlay2\n Cgroup Driver: systemd\n Operating System: (fake Docker of the cultivate test host)\n' "$version" ;;
    *) echo "$version" ;;
    esac
    ;;
compose)
    if [ -z "$compose" ]; then
        echo "docker: 'compose' is not a docker command." >&2
        echo "See 'docker --help'" >&2
        exit 1
    fi
    shift
    case "$*" in
    "version --short" | "version --short "*) echo "$compose" ;;
    version* | --version | -v) echo "Docker Compose version v$compose" ;;
    *)
        echo "fake docker (cultivate test host): 'docker compose $*' is not simulated" >&2
        exit 1
        ;;
    esac
    ;;
*)
    echo "fake docker (cultivate test host): 'docker $*' is not simulated" >&2
    exit 1
    ;;
esac
