#!/bin/sh
# Simulated Finch of the simulated macOS host. The VM is a state in a file; container
# commands go to the host's real dockerd (compose to docker-compose v1) while the "VM"
# is Running. Like Finch's VM it refuses bind mounts outside the directories the VM
# shares with macOS, and host-path mounts onto the PostgreSQL socket directory.
# Errors read like Finch's (logrus), taken from runfinch/finch; own ones say "simulated".
# shellcheck disable=SC2016 # the backticks are part of Finch's messages
real=/opt/realdocker
lib=/usr/local/lib/cultivate-testhost
state_file=/var/lib/finch-sim/state
printf '%s %s finch %s\n' "$(date +%s)" "$(id -un)" "$*" >>/var/log/finch-calls.log 2>/dev/null

# logrus' text format: short on a terminal, key=value (msg quoted) otherwise.
log() { # level(FATA|INFO) logrus-level message
    if [ -t 2 ]; then
        printf '%s[0000] %s\n' "$1" "$3" >&2
    else
        quoted=$(printf '%s' "$3" | sed 's/\\/\\\\/g; s/"/\\"/g')
        printf 'time="%s" level=%s msg="%s"\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$2" "$quoted" >&2
    fi
}
fatal() {
    log FATA fatal "$1"
    exit 1
}
info() { log INFO info "$1"; }

state() { cat "$state_file" 2>/dev/null || echo Running; }
set_state() { echo "$1" >"$state_file"; }

require_running() {
    case $(state) in
    Nonexistent) fatal 'instance "finch" does not exist, run `finch vm init` to create a new instance' ;;
    Stopped) fatal 'instance "finch" is stopped, run `finch vm start` to start the instance' ;;
    esac
}

# After a VM boot, containerd brings back the containers with a restart policy.
restart_containers() {
    for id in $("$real/docker" ps -aq --filter status=exited); do
        case $("$real/docker" inspect --format '{{.HostConfig.RestartPolicy.Name}}' "$id") in
        always | unless-stopped) "$real/docker" start "$id" >/dev/null 2>&1 ;;
        esac
    done
}

vm() {
    case ${1:-} in
    status) state ;;
    init)
        case $(state) in
        Stopped) fatal 'the instance "finch" already exists but is stopped, run `finch vm start` to start the existing instance' ;;
        Running) fatal 'the instance "finch" is already running' ;;
        esac
        info "Initializing and starting Finch virtual machine..."
        set_state Running
        info "Finch virtual machine started successfully"
        ;;
    start)
        case $(state) in
        Nonexistent) fatal 'the instance "finch" does not exist, run `finch vm init` to create a new instance' ;;
        Running) fatal 'the instance "finch" is already running' ;;
        esac
        info "Starting existing Finch virtual machine..."
        set_state Running
        restart_containers
        info "Finch virtual machine started successfully"
        ;;
    stop)
        case $(state) in
        Nonexistent) fatal 'the instance "finch" does not exist' ;;
        Stopped) fatal 'the instance "finch" is already stopped' ;;
        esac
        info "Stopping existing Finch virtual machine..."
        # Containers live in the VM: they stop with it.
        "$real/docker" ps -q | xargs -r "$real/docker" stop -t 5 >/dev/null 2>&1
        set_state Stopped
        info "Finch virtual machine stopped successfully"
        ;;
    remove)
        case $(state) in
        Nonexistent) fatal 'the instance "finch" does not exist' ;;
        Running) fatal 'the instance "finch" is running, run `finch vm stop` to stop the instance first' ;;
        esac
        info "Removing existing Finch virtual machine..."
        set_state Nonexistent
        info "Finch virtual machine removed successfully"
        ;;
    *) fatal "simulated Finch: unknown vm command \"${1:-}\" (status, init, start, stop, remove)" ;;
    esac
}

# A host path mounted at $2 from $1 (already known to be a host path).
check_host_path() {
    source=$(realpath -m -- "$1")
    case $2 in
    /var/run/postgresql | /var/run/postgresql/* | /run/postgresql | /run/postgresql/*)
        fatal "simulated Finch: host path \"$source\" mounted on $2: Unix sockets do not work across the Finch VM boundary, use a named volume"
        ;;
    esac
    case $source in
    /Users | /Users/* | /private | /private/* | /var/folders | /var/folders/* | /tmp/lima | /tmp/lima/*) ;;
    *) fatal "simulated Finch: bind mount source \"$source\" is outside the directories the Finch VM shares with macOS (/Users, /private, /var/folders, /tmp/lima)" ;;
    esac
}

check_volume() { # SRC:DST[:OPTS]; a bare DST or a volume name is no host path
    case $1 in
    *:*) ;;
    *) return 0 ;;
    esac
    src=${1%%:*}
    rest=${1#*:}
    case $src in
    /* | .* | "~"*) check_host_path "$src" "${rest%%:*}" ;;
    esac
}

check_mount() { # type=bind,source=...,target=...
    type=volume src='' dst=''
    old_ifs=$IFS
    IFS=,
    for field in $1; do
        case $field in
        type=*) type=${field#type=} ;;
        source=* | src=*) src=${field#*=} ;;
        target=* | destination=* | dst=*) dst=${field#*=} ;;
        esac
    done
    IFS=$old_ifs
    [ "$type" = bind ] && check_host_path "$src" "$dst"
    return 0
}

# Options of run/create up to the image; what follows is the container's command.
check_run_args() {
    while [ $# -gt 0 ]; do
        arg=$1
        shift
        case $arg in
        -v | --volume)
            check_volume "${1:-}"
            shift
            ;;
        -v=* | --volume=*) check_volume "${arg#*=}" ;;
        -v?*) check_volume "${arg#-v}" ;;
        --mount)
            check_mount "${1:-}"
            shift
            ;;
        --mount=*) check_mount "${arg#--mount=}" ;;
        --*=*) ;;
        -a | --attach | --add-host | --blkio-weight | --blkio-weight-device | --cap-add | --cap-drop | \
            --cgroup-parent | --cgroupns | --cidfile | --cpu-period | --cpu-quota | --cpu-rt-period | \
            --cpu-rt-runtime | -c | --cpu-shares | --cpus | --cpuset-cpus | --cpuset-mems | --detach-keys | \
            --device | --device-cgroup-rule | --device-read-bps | --device-read-iops | --device-write-bps | \
            --device-write-iops | --dns | --dns-option | --dns-search | --domainname | --entrypoint | -e | \
            --env | --env-file | --expose | --gpus | --group-add | --health-cmd | --health-interval | \
            --health-retries | --health-start-period | --health-timeout | -h | --hostname | --ip | --ip6 | \
            --ipc | --isolation | --kernel-memory | -l | --label | --label-file | --link | --link-local-ip | \
            --log-driver | --log-opt | --mac-address | -m | --memory | --memory-reservation | --memory-swap | \
            --memory-swappiness | --name | --network | --net | --network-alias | --net-alias | \
            --oom-score-adj | --pid | --pids-limit | --platform | -p | --publish | --pull | --restart | \
            --runtime | --security-opt | --shm-size | --stop-signal | --stop-timeout | --storage-opt | \
            --sysctl | --tmpfs | --ulimit | -u | --user | --userns | --uts | --volume-driver | \
            --volumes-from | -w | --workdir)
            shift
            ;;
        --) return 0 ;;
        -*) ;;
        *) return 0 ;;
        esac
    done
}

# Finch's own global flag.
[ "${1:-}" = --debug ] && shift

case ${1:-} in
"" | help | --help | -h)
    echo "Finch: open-source container development tool (simulated on the cultivate test host)"
    echo "Usage: finch <command>"
    ;;
--version | -v | version) echo "finch version v1.2.0" ;;
vm)
    shift
    vm "$@"
    ;;
compose)
    require_running
    shift
    message=$(python3 "$lib/finch-compose-mounts.py" "$@") || fatal "$message"
    exec "$real/docker-compose" "$@"
    ;;
run | create)
    require_running
    command=$1
    shift
    check_run_args "$@"
    exec "$real/docker" "$command" "$@"
    ;;
*)
    require_running
    exec "$real/docker" "$@"
    ;;
esac
