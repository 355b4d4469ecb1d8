#!/bin/sh
# Image build step: install the scripts, users, sudo rules and logs common to all variants.
set -eu
lib=/usr/local/lib/cultivate-testhost
chmod 0755 "$lib"/*.sh "$lib"/*.py
ln -sf "$lib/entrypoint.sh" /usr/local/sbin/cultivate-testhost-entrypoint
install -m 0755 "$lib/log-command.sh" /usr/local/bin/cultivate-log-command
install -m 0644 "$lib/sshd.conf" /etc/ssh/sshd_config.d/cultivate-testhost.conf

# pam_loginuid cannot write /proc/self/loginuid without CAP_AUDIT_CONTROL (OS variants).
sed -i 's/^session\s\+required\s\+pam_loginuid.so/session optional pam_loginuid.so/' /etc/pam.d/sshd

useradd --uid 1500 --create-home --home-dir /home/deploy --shell /bin/bash deploy
useradd --uid 1501 --create-home --home-dir /home/nosudo --shell /bin/bash nosudo
# '*' instead of the locked '!': no usable password, but not a locked account.
for user in root deploy nosudo; do usermod -p '*' "$user"; done
echo 'deploy ALL=(ALL:ALL) NOPASSWD: ALL' >/etc/sudoers.d/deploy
# nosudo may use sudo, but only with a password it does not have.
echo 'nosudo ALL=(ALL:ALL) ALL' >/etc/sudoers.d/nosudo
chmod 0440 /etc/sudoers.d/deploy /etc/sudoers.d/nosudo

# Writable by every user: the scripts that append to them run as the calling user.
for log in ssh-commands.log pkg-calls.log finch-calls.log fake-docker-calls.log; do
    : >"/var/log/$log"
    chmod 0666 "/var/log/$log"
done
