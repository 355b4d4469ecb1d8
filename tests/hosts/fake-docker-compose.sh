#!/bin/sh
# Fake Compose v1 (1.20.0) of the test host, installed with FAKE_DOCKER=old.
printf '%s docker-compose %s\n' "$(id -u)" "$*" >>/var/log/fake-docker-calls.log 2>/dev/null
case "$*" in
--version | -v) echo "docker-compose version 1.20.0, build ca8d3c6" ;;
"version --short") echo "1.20.0" ;;
version*)
    echo "docker-compose version 1.20.0, build ca8d3c6"
    echo "docker-py version: 3.1.1"
    echo "CPython version: 3.6.4"
    echo "OpenSSL version: OpenSSL 1.0.1t  3 May 2016"
    ;;
*)
    echo "fake docker-compose (cultivate test host): 'docker-compose $*' is not simulated" >&2
    exit 1
    ;;
esac
