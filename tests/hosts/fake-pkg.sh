#!/bin/sh
# Fake package manager of the test host, installed under the name of each manager the
# imitated OS has. Records `<uid> <manager> <args>` in /var/log/pkg-calls.log. Like the
# real ones it refuses to change the system without root (brew: with root); installing
# a Docker package puts a fake Docker 24.0.7 CLI on PATH, podman a fake Podman 5.4 with
# podman-compose 1.3, `brew install finch` the simulated Finch (VM Nonexistent).
manager=${0##*/}
uid=$(id -u)
if [ $# -gt 0 ]; then
    printf '%s %s %s\n' "$uid" "$manager" "$*" >>/var/log/pkg-calls.log
else
    printf '%s %s\n' "$uid" "$manager" >>/var/log/pkg-calls.log
fi

# The first non-option argument is the verb (apt-get -y install x, dnf -q install x).
verb=
for arg in "$@"; do
    case $arg in
    -*) ;;
    *)
        verb=$arg
        break
        ;;
    esac
done

case $manager in
apt-get | apt)
    case $verb in
    install | reinstall | remove | purge | upgrade | dist-upgrade | full-upgrade | autoremove)
        [ "$uid" = 0 ] || {
            echo "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)" >&2
            echo "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?" >&2
            exit 100
        }
        ;;
    update)
        [ "$uid" = 0 ] || {
            echo "E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)" >&2
            echo "E: Unable to lock directory /var/lib/apt/lists/" >&2
            exit 100
        }
        echo "Reading package lists... Done"
        exit 0
        ;;
    esac
    ;;
yum | dnf)
    case $verb in
    install | reinstall | remove | erase | update | upgrade | makecache | config-manager)
        [ "$uid" = 0 ] || {
            if [ "$manager" = yum ]; then
                echo "You need to be root to perform this command." >&2
            else
                echo "Error: This command has to be run with superuser privileges (under the root user on most systems)." >&2
            fi
            exit 1
        }
        ;;
    esac
    ;;
zypper)
    case $verb in
    install | in | remove | rm | update | up | refresh | ref | addrepo | ar)
        [ "$uid" = 0 ] || {
            echo "Root privileges are required to run this command." >&2
            exit 5
        }
        ;;
    esac
    ;;
apk)
    case $verb in
    add | del | update | upgrade)
        [ "$uid" = 0 ] || {
            echo "ERROR: Unable to lock database: Permission denied" >&2
            echo "ERROR: Failed to open apk database: Permission denied" >&2
            exit 99
        }
        ;;
    esac
    ;;
brew)
    [ "$uid" != 0 ] || {
        echo "Error: Running Homebrew as root is extremely dangerous and no longer supported." >&2
        echo "As Homebrew does not drop privileges on installation you would be giving all" >&2
        echo "build scripts full access to your system." >&2
        exit 1
    }
    ;;
esac

case $verb in
install | in | add) ;;
--version | -v | "")
    echo "$manager (fake package manager of the cultivate test host)"
    exit 0
    ;;
*) exit 0 ;;
esac

# brew runs as the user; /usr/local/bin is root's here, hence sudo.
as_root() {
    if [ "$uid" = 0 ]; then "$@"; else sudo -n "$@"; fi
}
lib=/usr/local/lib/cultivate-testhost
docker='' finch='' podman=''
for arg in "$@"; do
    case $arg in
    docker | docker[.=_-]* | moby-* | colima) docker=yes ;;
    podman) podman=yes ;;
    finch) [ "$manager" = brew ] && finch=yes ;;
    esac
done
if [ -n "$docker" ]; then as_root "$lib/install-fake-docker.sh" new || exit 1; fi
if [ -n "$finch" ]; then as_root "$lib/install-fake-finch.sh" || exit 1; fi
if [ -n "$podman" ]; then as_root "$lib/install-fake-podman.sh" || exit 1; fi
echo "$manager: installed $* (fake, cultivate test host)"
exit 0
