#!/bin/sh
# sshd ForceCommand: record the session's command, then run it exactly as sshd would.
# One line per session: <unix time> <user> <command, newlines written as \n>.
command=$(printf '%s' "${SSH_ORIGINAL_COMMAND-}" | sed ':a;N;$!ba;s/\n/\\n/g')
line="$(date +%s) $(id -un) $command"
# One write per line, so concurrent sessions never interleave within a line.
printf '%s\n' "$line" >>/var/log/ssh-commands.log 2>/dev/null
if [ -n "${SSH_ORIGINAL_COMMAND-}" ]; then
    exec "${SHELL:-/bin/sh}" -c "$SSH_ORIGINAL_COMMAND"
fi
# No command: the login shell, as sshd would start it.
exec "${SHELL:-/bin/sh}" -l
