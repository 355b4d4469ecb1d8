#!/usr/bin/env python3
"""The simulated Finch's check of a compose project before `compose up|create|run`.

Arguments: what follows `finch compose`. Prints the refusal and exits 1 when a service
bind-mounts a host path the Finch VM does not share, or a host path onto the PostgreSQL
socket directory; exits 0 otherwise. Interpolates ${VAR} like Compose: the environment
first, then the project's .env.
"""

import os
import re
import sys

import yaml

SHARED = ("/Users", "/private", "/var/folders", "/tmp/lima")
SOCKET_DIRS = ("/var/run/postgresql", "/run/postgresql")
CHECKED = ("up", "create", "run")
DEFAULT_FILES = ("docker-compose.yml", "docker-compose.yaml", "compose.yaml", "compose.yml")
VALUE_OPTIONS = {"-p", "--project-name", "-H", "--host", "-c", "--context", "--log-level",
                 "--profile", "--ansi", "--tlscacert", "--tlscert", "--tlskey"}


class Refused(Exception):
    pass


def parse(argv):
    files, project_dir, env_file, command = [], None, None, None
    i = 0
    while i < len(argv):
        arg = argv[i]
        value = argv[i + 1] if i + 1 < len(argv) else ""
        if arg in ("-f", "--file"):
            files.append(value)
            i += 2
        elif arg.startswith("--file="):
            files.append(arg.split("=", 1)[1])
            i += 1
        elif arg == "--project-directory":
            project_dir = value
            i += 2
        elif arg.startswith("--project-directory="):
            project_dir = arg.split("=", 1)[1]
            i += 1
        elif arg == "--env-file":
            env_file = value
            i += 2
        elif arg.startswith("--env-file="):
            env_file = arg.split("=", 1)[1]
            i += 1
        elif arg in VALUE_OPTIONS:
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            command = arg
            break
    return files, project_dir, env_file, command


def read_env_file(path):
    env = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                key, value = line.split("=", 1)
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                    value = value[1:-1]
                env[key.strip()] = value
    except FileNotFoundError:
        pass
    return env


PATTERN = re.compile(r"\$(?:(\$)|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
BRACED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])(.*))?$", re.DOTALL)


def interpolate(text, env):
    def substitute(match):
        if match.group(1):
            return "$"
        if match.group(3):
            return env.get(match.group(3), "")
        braced = BRACED.match(match.group(2))
        if not braced:
            return match.group(0)
        name, operator, argument = braced.groups()
        value = env.get(name)
        if operator and operator.startswith(":") and not value:
            value = None
        if value is None and operator:
            if operator.endswith("?"):
                raise Refused(f"required variable {name} is missing a value: {argument}")
            return argument
        return value or ""

    return PATTERN.sub(substitute, text)


def check_host_path(source, target, base):
    source = os.path.normpath(os.path.join(base, os.path.expanduser(source)))
    target = (target or "").rstrip("/")
    if any(target == d or target.startswith(d + "/") for d in SOCKET_DIRS):
        raise Refused(f'simulated Finch: host path "{source}" mounted on {target}: Unix sockets do not work '
                      "across the Finch VM boundary, use a named volume")
    if not any(source == d or source.startswith(d + "/") for d in SHARED):
        raise Refused(f'simulated Finch: bind mount source "{source}" is outside the directories the Finch VM '
                      "shares with macOS (/Users, /private, /var/folders, /tmp/lima)")


def check_project(doc, base):
    if not isinstance(doc, dict):
        return
    for service in (doc.get("services") or {}).values():
        for volume in (service or {}).get("volumes") or []:
            if isinstance(volume, str):
                parts = volume.split(":")
                if len(parts) >= 2 and parts[0][:1] in ("/", ".", "~"):
                    check_host_path(parts[0], parts[1], base)
            elif isinstance(volume, dict) and volume.get("type") == "bind":
                check_host_path(str(volume.get("source", "")), str(volume.get("target", "")), base)
    # A named volume whose local driver binds a host directory crosses the VM boundary too.
    for volume in (doc.get("volumes") or {}).values():
        options = (volume or {}).get("driver_opts") or {}
        if "bind" in str(options.get("o", "")) and options.get("device"):
            check_host_path(str(options["device"]), "", base)


def main(argv):
    files, project_dir, env_file, command = parse(argv)
    if command not in CHECKED:
        return 0
    if not files:
        files = [name for name in DEFAULT_FILES if os.path.exists(name)][:1]
    if not files:
        return 0
    base = os.path.abspath(project_dir or os.path.dirname(os.path.abspath(files[0])))
    env = read_env_file(env_file or os.path.join(base, ".env"))
    env.update(os.environ)
    try:
        for path in files:
            with open(path, encoding="utf-8") as handle:
                check_project(yaml.safe_load(interpolate(handle.read(), env)), base)
    except Refused as refusal:
        print(refusal)
        return 1
    except (OSError, yaml.YAMLError):
        return 0  # docker-compose reports unreadable files itself
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
