#!/bin/sh
# Puts a fake Docker CLI on PATH: `new` (24.0.7 with Compose v2.21.0) or `old` (19.03.0,
# no Compose v2, plus docker-compose 1.20.0).
set -eu
lib=/usr/local/lib/cultivate-testhost
case ${1:-} in
new) version=24.0.7 build=afdd53b api=1.43 compose=2.21.0 ;;
old) version=19.03.0 build=aeac949 api=1.40 compose= ;;
*)
    echo "usage: $0 new|old" >&2
    exit 2
    ;;
esac
cat >/usr/local/bin/docker <<WRAPPER
#!/bin/sh
export FAKE_DOCKER_VERSION=$version FAKE_DOCKER_BUILD=$build FAKE_DOCKER_API=$api FAKE_COMPOSE_VERSION=$compose
exec $lib/fake-docker.sh "\$@"
WRAPPER
chmod 0755 /usr/local/bin/docker
if [ "$1" = old ]; then
    install -m 0755 "$lib/fake-docker-compose.sh" /usr/local/bin/docker-compose
fi
