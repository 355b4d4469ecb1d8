#!/bin/sh
# Puts a fake Podman 5.4.2 and podman-compose 1.3.0 (Debian trixie's) on PATH, as the
# fake package managers "install" them: enough for the probe, which asks their versions
# and whether `podman info` works.
set -eu
cat >/usr/local/bin/podman <<'WRAPPER'
#!/bin/sh
case ${1:-} in
--version) echo "podman version 5.4.2" ;;
info) echo "host: {arch: amd64} (fake podman of the cultivate test host)" ;;
*)
    echo "fake podman: only --version and info" >&2
    exit 125
    ;;
esac
WRAPPER
cat >/usr/local/bin/podman-compose <<'WRAPPER'
#!/bin/sh
case ${1:-} in
--version | version)
    echo "podman-compose version 1.3.0"
    echo "podman version 5.4.2"
    ;;
*)
    echo "fake podman-compose: only --version" >&2
    exit 1
    ;;
esac
WRAPPER
chmod 0755 /usr/local/bin/podman /usr/local/bin/podman-compose
