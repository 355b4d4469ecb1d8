#!/bin/sh
# uname of the simulated macOS host (Apple silicon, macOS 14.4.1).
# shellcheck disable=SC2034 # the flags are read through eval
sysname=Darwin
release=23.4.0
kversion="Darwin Kernel Version 23.4.0: Fri Mar 15 00:10:42 PDT 2024; root:xnu-10063.101.17~1/RELEASE_ARM64_T6000"
machine=arm64
processor=arm
node=$(cat /proc/sys/kernel/hostname 2>/dev/null || echo localhost)

s='' n='' r='' v='' m='' p=''
[ $# -eq 0 ] && s=1
for arg in "$@"; do
    case $arg in
    --kernel-name) s=1 ;;
    --nodename) n=1 ;;
    --kernel-release) r=1 ;;
    --kernel-version) v=1 ;;
    --machine) m=1 ;;
    --processor) p=1 ;;
    --all) s=1 n=1 r=1 v=1 m=1 ;;
    -*)
        flags=${arg#-}
        while [ -n "$flags" ]; do
            rest=${flags#?}
            case ${flags%"$rest"} in
            s | o) s=1 ;;
            n) n=1 ;;
            r) r=1 ;;
            v) v=1 ;;
            m) m=1 ;;
            p) p=1 ;;
            a) s=1 n=1 r=1 v=1 m=1 ;;
            *)
                echo "uname: illegal option -- ${flags%"$rest"}" >&2
                echo "usage: uname [-amnoprsv]" >&2
                exit 1
                ;;
            esac
            flags=$rest
        done
        ;;
    *)
        echo "usage: uname [-amnoprsv]" >&2
        exit 1
        ;;
    esac
done
out=
for field in s n r v m p; do
    eval "on=\$$field"
    [ -n "$on" ] || continue
    case $field in
    s) value=$sysname ;;
    n) value=$node ;;
    r) value=$release ;;
    v) value=$kversion ;;
    m) value=$machine ;;
    p) value=$processor ;;
    esac
    out="${out:+$out }$value"
done
printf '%s\n' "$out"
