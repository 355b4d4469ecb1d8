#!/bin/sh
# Entrypoint of the test host (installed as cultivate-testhost-entrypoint).
#   HOST_VARIANT=docker (default)  sshd and a real dockerd
#   HOST_VARIANT=podman            sshd and rootful Podman with podman-compose; no Docker
#   HOST_VARIANT=macos             simulated macOS: sshd, dockerd hidden behind a simulated Finch
#   HOST_VARIANT=<OS variant>      sshd only; another OS's release files and package managers
# AUTHORIZED_KEY: the public key every user accepts (required).
# FAKE_DOCKER=old: a fake Docker 19.03 CLI and docker-compose 1.20 on PATH.
# DOCKER_STORE=classic (default) | containerd: the image store of the host's dockerd.
# macos only: FINCH_VM=Nonexistent|Stopped|Running (default Running), FINCH=absent.
set -eu
lib=/usr/local/lib/cultivate-testhost
variant=${HOST_VARIANT:-docker}
. "$lib/os-variants.sh"

fail() {
    echo "cultivate-testhost: $*" >&2
    exit 2
}

[ -n "${AUTHORIZED_KEY:-}" ] || fail "AUTHORIZED_KEY is empty: pass the public key the tests log in with"

authorize() { # user home
    group=$(id -gn "$1")
    install -d -m 0700 -o "$1" -g "$group" "$2/.ssh"
    printf '%s\n' "$AUTHORIZED_KEY" >"$2/.ssh/authorized_keys"
    chown "$1:$group" "$2/.ssh/authorized_keys"
    chmod 0600 "$2/.ssh/authorized_keys"
}

remove_release_files() {
    rm -f /etc/os-release /usr/lib/os-release /etc/debian_version /etc/redhat-release \
        /etc/system-release /etc/alpine-release /etc/lsb-release
}

# Package managers the imitated system does not have (the Debian ones of this image).
hide_apt() {
    rm -f /usr/bin/apt /usr/bin/apt-get /usr/bin/apt-cache /usr/bin/apt-config /usr/bin/dpkg
}

install_managers() {
    for manager in "$@"; do
        install -m 0755 "$lib/fake-pkg.sh" "/usr/local/bin/$manager"
    done
}

start_dockerd() {
    rm -f /var/run/docker.pid
    # Docker 28 fails every container start ("failed to disable IPv6") on a read-only
    # /proc/sys (HOST-SETUP §9); the flags the tests start hosts with allow this.
    mount -o remount,rw /proc/sys 2>/dev/null || true
    case ${DOCKER_STORE:-classic} in
    classic) ;;
    containerd)
        mkdir -p /etc/docker
        echo '{"features":{"containerd-snapshotter":true}}' >/etc/docker/daemon.json
        ;;
    *) fail "DOCKER_STORE must be classic or containerd, not '$DOCKER_STORE'" ;;
    esac
    "$1" >/var/log/dockerd.log 2>&1 &
}

mkdir -p /run/sshd
# Host keys per container, never baked into the image.
ssh-keygen -A >/dev/null
authorize root /root
authorize deploy /home/deploy
authorize nosudo /home/nosudo
for log in ssh-commands.log pkg-calls.log finch-calls.log fake-docker-calls.log; do
    touch "/var/log/$log"
    chmod 0666 "/var/log/$log"
done

case $variant in
docker)
    start_dockerd /usr/sbin/dockerd
    ;;
podman)
    command -v podman >/dev/null || fail "HOST_VARIANT=podman needs an image built with ENGINE_PACKAGES (podman)"
    # A Podman server has no Docker: the probe must find podman alone.
    rm -f /usr/bin/docker /usr/bin/docker-compose /usr/sbin/dockerd /usr/sbin/docker-proxy \
        /usr/libexec/docker/cli-plugins/docker-compose
    # netavark writes sysctls (HOST-SETUP §9); crun refuses this machine's hybrid
    # cgroups and there is no systemd to manage them: runc and cgroupfs.
    mount -o remount,rw /proc/sys 2>/dev/null || true
    mkdir -p /etc/containers
    printf '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
        >/etc/containers/containers.conf
    # Podman warns on every command that cgroups v1 is deprecated; the machine's, not ours.
    echo 'SetEnv PODMAN_IGNORE_CGROUPSV1_WARNING=1' >/etc/ssh/sshd_config.d/podman.conf
    ;;
macos)
    mkdir -p /Users /private/tmp /var/folders /tmp/lima
    id ada >/dev/null 2>&1 || useradd --uid 501 --gid staff --create-home --home-dir /Users/ada --shell /bin/bash ada
    usermod -p '*' ada
    # The simulated Finch drives the host's dockerd as ada, as real Finch needs no sudo.
    usermod -a -G docker ada
    echo 'ada ALL=(ALL:ALL) NOPASSWD: ALL' >/etc/sudoers.d/ada
    chmod 0440 /etc/sudoers.d/ada
    authorize ada /Users/ada
    # macOS has no docker unless installed: keep the real one off every PATH.
    mkdir -p /opt/realdocker
    for binary in /usr/bin/docker /usr/bin/docker-compose /usr/sbin/dockerd; do
        [ -e "$binary" ] && mv "$binary" /opt/realdocker/
    done
    remove_release_files
    hide_apt
    install -m 0755 "$lib/uname.sh" /usr/local/bin/uname
    install -m 0755 "$lib/sw_vers.sh" /usr/local/bin/sw_vers
    install_managers brew
    if [ "${FINCH:-present}" = absent ]; then
        rm -f /usr/local/bin/finch
    else
        case ${FINCH_VM:-Running} in
        Nonexistent | Stopped | Running) ;;
        *) fail "FINCH_VM must be Nonexistent, Stopped or Running, not '${FINCH_VM}'" ;;
        esac
        install -d -m 0777 /var/lib/finch-sim
        [ -e /var/lib/finch-sim/state ] || echo "${FINCH_VM:-Running}" >/var/lib/finch-sim/state
        chmod 0666 /var/lib/finch-sim/state
        install -m 0755 "$lib/finch.sh" /usr/local/bin/finch
    fi
    start_dockerd /opt/realdocker/dockerd
    ;;
*)
    remove_release_files
    write_os_variant "$variant" || fail "unknown HOST_VARIANT '$variant' (docker, macos, $OS_VARIANTS)"
    # No container engine on these hosts unless a fake one is installed.
    rm -f /usr/bin/docker /usr/bin/docker-compose /usr/sbin/dockerd /usr/sbin/docker-proxy \
        /usr/bin/docker-init /usr/bin/containerd /usr/bin/containerd-shim* /usr/bin/ctr /usr/sbin/runc
    case " $MANAGERS " in
    *" apt-get "*) ;;
    *) hide_apt ;;
    esac
    # /usr/local/bin precedes /usr/bin on sshd's PATH, so these shadow the real apt-get.
    # shellcheck disable=SC2086 # a list of names
    install_managers $MANAGERS
    ;;
esac

case ${FAKE_DOCKER:-} in
"") ;;
old) "$lib/install-fake-docker.sh" old ;;
*) fail "FAKE_DOCKER must be 'old' or unset, not '$FAKE_DOCKER'" ;;
esac

exec /usr/sbin/sshd -D -e
