#!/bin/sh
# Installs the simulated Finch as `brew install --cask finch` would: no VM yet.
set -eu
install -d -m 0777 /var/lib/finch-sim
echo Nonexistent >/var/lib/finch-sim/state
chmod 0666 /var/lib/finch-sim/state
install -m 0755 /usr/local/lib/cultivate-testhost/finch.sh /usr/local/bin/finch
