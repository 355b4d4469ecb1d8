//! The test hosts themselves (tests/hosts/, tests/src/hosts.rs): reached over real SSH,
//! they log what ran, imitate the OSes they claim, and the simulated macOS host's Finch
//! behaves like Finch where the xtask depends on it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use cultivate_tests::hosts::{HostVariant, TestHost};
use xtask::host::probe::FinchVm;

/// Runs `command` as `user` over SSH; it must succeed. Returns trimmed stdout.
fn ok(host: &TestHost, user: &str, command: &str) -> String {
    let output = host.ssh(user, command).unwrap_or_else(|e| panic!("{e:#}"));
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{user}@{}: `{command}` failed ({}):\n{stdout}\n{stderr}",
        host.container,
        output.status
    );
    stdout
}

/// Runs `command` as `user` over SSH; it must fail (but not as ssh itself, 255).
/// Returns stdout and stderr together.
fn fails(host: &TestHost, user: &str, command: &str) -> String {
    let output = host.ssh(user, command).unwrap_or_else(|e| panic!("{e:#}"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "{user}@{}: `{command}` should have failed:\n{text}", host.container);
    assert_ne!(output.status.code(), Some(255), "ssh itself failed:\n{text}");
    text
}

fn base_image() -> String {
    cultivate_tests::hosts::base_image().unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn docker_host_runs_docker_and_compose_over_ssh_and_logs_each_session() {
    let host = TestHost::docker();
    assert_ne!(host.http_port, 0);
    assert_eq!(host.target("deploy"), format!("deploy@127.0.0.1:{}", host.ssh_port));
    let connections_before = host.accepted_connections();

    let commands = [
        ("root", "docker info --format '{{.ServerVersion}}'"),
        ("root", "docker-compose version"),
        ("deploy", "sudo -n docker info --format '{{.Driver}}'"),
        ("deploy", "sudo -n docker-compose version --short"),
    ];
    for (user, command) in commands {
        assert!(!ok(host, user, command).is_empty(), "{user}: `{command}` printed nothing");
    }
    assert_eq!(ok(host, "deploy", "sudo -n docker info --format '{{.Driver}}'"), "overlay2");
    // deploy is not in the docker group, and nosudo cannot sudo without a password.
    assert!(fails(host, "deploy", "docker info").contains("permission denied"));
    assert!(fails(host, "nosudo", "sudo -n true").contains("password is required"));
    // Stdin and the exit status pass through the logging ForceCommand.
    let args = host.ssh_args("root");
    let mut child = Command::new(&args[0])
        .args(&args[1..])
        .arg("cat; exit 7")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"through stdin").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!((output.status.code(), output.stdout.as_slice()), (Some(7), &b"through stdin"[..]));
    // A multi-line command is one log line.
    assert_eq!(ok(host, "root", "echo one\necho two"), "one\ntwo");

    let log = host.command_log();
    let logged: Vec<(String, String)> = log
        .lines()
        .map(|line| {
            let mut fields = line.splitn(3, ' ');
            let time = fields.next().unwrap_or_default();
            assert!(time.parse::<u64>().is_ok(), "no unix time in {line:?}");
            (fields.next().unwrap_or_default().to_string(), fields.next().unwrap_or_default().to_string())
        })
        .collect();
    let mut expected: Vec<(String, String)> =
        commands.iter().map(|(user, command)| (user.to_string(), command.to_string())).collect();
    expected.push(("deploy".into(), "sudo -n docker info --format '{{.Driver}}'".into()));
    expected.push(("deploy".into(), "docker info".into()));
    expected.push(("nosudo".into(), "sudo -n true".into()));
    expected.push(("root".into(), "cat; exit 7".into()));
    expected.push(("root".into(), "echo one\\necho two".into()));
    assert_eq!(logged, expected, "command log:\n{log}");
    assert_eq!(host.accepted_connections() - connections_before, expected.len());

    // A port published by a container inside the host is reachable on the host's http_port.
    let base = base_image();
    host.load_image(&base).unwrap_or_else(|e| panic!("{e:#}"));
    let server = "$s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die; \
                  while ($c = $s->accept) { <$c>; print $c \"HTTP/1.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok\"; close $c }";
    ok(host, "root", &format!("docker run -d -p 80:8080 {base} perl -MIO::Socket::INET -e '{server}'"));
    let url = format!("http://127.0.0.1:{}/", host.http_port);
    let response = cultivate_tests::get_when_up(&url, Duration::from_secs(30)).unwrap();
    assert_eq!((response.status, response.text().as_str()), (200, "ok"));
}

#[test]
fn os_variants_look_like_their_os_and_record_package_manager_calls() {
    // (variant, lines its /etc/os-release must have (none: no release file at all),
    // the package manager it has, that manager's install verb)
    let cases: [(&str, &[&str], Option<&str>, &str); 4] = [
        ("rhel8", &["ID=\"rhel\"", "VERSION_ID=\"8.9\""], Some("yum"), "install -y"),
        ("amzn2023", &["ID=\"amzn\"", "VERSION_ID=\"2023\""], Some("dnf"), "install -y"),
        ("alpine", &["ID=alpine", "VERSION_ID=3.19.1"], Some("apk"), "add"),
        ("no-release", &[], None, ""),
    ];
    let threads: Vec<_> = cases
        .into_iter()
        .map(|(variant, release_lines, manager, verb)| {
            thread::spawn(move || {
                let host = TestHost::start(HostVariant::Os(variant), false).unwrap_or_else(|e| panic!("{e:#}"));
                assert_eq!(host.http_port, 0);
                if release_lines.is_empty() {
                    let files = "/etc/os-release /usr/lib/os-release /etc/redhat-release /etc/debian_version";
                    fails(&host, "deploy", &format!("ls {files} 2>/dev/null"));
                } else {
                    let release = ok(&host, "deploy", "cat /etc/os-release");
                    for line in release_lines {
                        assert!(release.lines().any(|l| l == *line), "{variant}: no {line} in\n{release}");
                    }
                    assert!(release.contains("PRETTY_NAME="), "{variant}: {release}");
                }
                for candidate in ["apt-get", "yum", "dnf", "zypper", "apk", "brew"] {
                    let found = host.ssh("deploy", &format!("command -v {candidate}")).unwrap();
                    let expected = manager == Some(candidate);
                    assert_eq!(found.status.success(), expected, "{variant}: command -v {candidate}");
                    if expected {
                        assert_eq!(
                            String::from_utf8_lossy(&found.stdout).trim(),
                            format!("/usr/local/bin/{candidate}")
                        );
                    }
                }
                for engine in ["docker", "docker-compose", "dockerd"] {
                    fails(&host, "root", &format!("command -v {engine}"));
                }
                if let Some(manager) = manager {
                    // Unprivileged, the install is refused (and still recorded); as root it "installs" Docker.
                    fails(&host, "deploy", &format!("{manager} {verb} docker"));
                    ok(&host, "deploy", &format!("sudo -n {manager} {verb} docker"));
                    assert_eq!(ok(&host, "root", "docker --version"), "Docker version 24.0.7, build afdd53b");
                    assert_eq!(ok(&host, "root", "docker version --format '{{.Server.Version}}'"), "24.0.7");
                    assert_eq!(ok(&host, "root", "docker compose version --short"), "2.21.0");
                    ok(&host, "root", "docker info");
                    assert_eq!(
                        host.package_calls(),
                        format!("1500 {manager} {verb} docker\n0 {manager} {verb} docker\n"),
                        "{variant}"
                    );
                }
                assert_eq!(host.command_log().lines().count(), host.accepted_connections(), "{variant}");
                host.container.clone()
            })
        })
        .collect();
    let mut names = Vec::new();
    for handle in threads {
        names.push(handle.join().expect("a variant check failed"));
    }
    // Dropped hosts leave nothing behind.
    for name in names {
        assert!(cultivate_tests::docker(["inspect", name.as_str()]).is_err(), "{name} still exists");
    }
}

#[test]
fn fake_old_docker_answers_19_03_without_compose_v2() {
    let host = TestHost::start(HostVariant::Os("debian"), true).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(ok(&host, "root", "cat /etc/os-release").contains("ID=debian"));
    assert_eq!(ok(&host, "root", "command -v apt-get"), "/usr/local/bin/apt-get");
    assert_eq!(ok(&host, "root", "docker --version"), "Docker version 19.03.0, build aeac949");
    assert_eq!(ok(&host, "deploy", "sudo -n docker version --format '{{.Server.Version}}'"), "19.03.0");
    assert!(fails(&host, "root", "docker compose version").contains("'compose' is not a docker command"));
    assert_eq!(ok(&host, "root", "docker-compose version --short"), "1.20.0");
    assert_eq!(ok(&host, "root", "docker-compose --version"), "docker-compose version 1.20.0, build ca8d3c6");
}

#[test]
fn macos_host_simulates_darwin_and_finch() {
    let host = TestHost::macos();
    assert_ne!(host.http_port, 0);
    assert_eq!(ok(host, "ada", "uname"), "Darwin");
    assert_eq!(ok(host, "ada", "uname -sm"), "Darwin arm64");
    assert_eq!(ok(host, "ada", "sw_vers -productVersion"), "14.4.1");
    assert_eq!(ok(host, "ada", "echo $HOME; id -u"), "/Users/ada\n501");
    ok(host, "ada", "sudo -n true");
    fails(host, "ada", "command -v docker || command -v docker-compose || test -e /etc/os-release");
    fails(host, "root", "command -v docker || command -v docker-compose");
    assert_eq!(ok(host, "ada", "finch --version"), "finch version v1.2.0");
    assert_eq!(FinchVm::parse(&ok(host, "ada", "finch vm status")), Some(FinchVm::Running));
    // Finch's own message (runfinch/finch virtual_machine_init.go) for init on a running VM.
    assert!(fails(host, "ada", "finch vm init").contains(r#"the instance \"finch\" is already running"#));

    let base = base_image();
    host.load_image(&base).unwrap_or_else(|e| panic!("{e:#}"));
    let refused = fails(host, "ada", &format!("finch run --rm -v /opt/x:/y {base} true"));
    assert!(refused.contains("/opt/x") && refused.contains("simulated Finch"), "{refused}");
    let refused = fails(
        host,
        "ada",
        &format!("finch run --rm --mount type=bind,source=/Users/ada,target=/var/run/postgresql {base} true"),
    );
    assert!(refused.contains("/var/run/postgresql"), "{refused}");
    assert_eq!(
        ok(host, "ada", &format!("finch run --rm -v /Users/ada:/y {base} sh -c 'test -d /y && echo mounted'")),
        "mounted"
    );

    // Compose files are checked after ${VAR} interpolation from .env.
    let compose = format!(
        "mkdir -p ~/app && cd ~/app && printf 'SOCKETS=/Users/ada/app/run\\n' >.env && \
         printf 'services:\\n  db:\\n    image: {base}\\n    volumes:\\n      - ${{SOCKETS}}:/var/run/postgresql\\n' \
         >docker-compose.yml && finch compose up -d"
    );
    assert!(fails(host, "ada", &compose).contains("/Users/ada/app/run"));
    let calls = host.finch_calls();
    assert!(calls.lines().any(|l| l.ends_with("ada finch vm init")), "{calls}");
    assert!(calls.lines().any(|l| l.ends_with(&format!("ada finch run --rm -v /opt/x:/y {base} true"))), "{calls}");
}

#[test]
fn finch_vm_lifecycle_from_nonexistent() {
    let host = TestHost::start(HostVariant::Macos { finch_vm: FinchVm::Nonexistent, finch: true }, false)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(FinchVm::parse(&ok(&host, "ada", "finch vm status")), Some(FinchVm::Nonexistent));
    let error = fails(&host, "ada", "finch vm start");
    assert!(
        error.contains(r#"the instance \"finch\" does not exist, run `finch vm init` to create a new instance"#),
        "{error}"
    );
    assert!(fails(&host, "ada", "finch ps").contains("does not exist"));
    ok(&host, "ada", "finch vm init");
    assert_eq!(FinchVm::parse(&ok(&host, "ada", "finch vm status")), Some(FinchVm::Running));
    ok(&host, "ada", "finch ps");
    ok(&host, "ada", "finch vm stop");
    assert!(fails(&host, "ada", "finch vm init").contains("already exists but is stopped"));

    let without = TestHost::start(HostVariant::Macos { finch_vm: FinchVm::Running, finch: false }, false)
        .unwrap_or_else(|e| panic!("{e:#}"));
    fails(&without, "ada", "command -v finch");
    assert_eq!(ok(&without, "ada", "uname"), "Darwin");
    // Homebrew refuses root; as the user it "installs" Finch, whose VM does not exist yet.
    assert!(fails(&without, "root", "brew install --cask finch").contains("Running Homebrew as root"));
    ok(&without, "ada", "brew install --cask finch");
    assert_eq!(FinchVm::parse(&ok(&without, "ada", "finch vm status")), Some(FinchVm::Nonexistent));
    assert_eq!(without.package_calls(), "0 brew install --cask finch\n501 brew install --cask finch\n");
}
