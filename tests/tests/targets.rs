//! The xtask against real targets over real SSH: test hosts are containers running
//! their own sshd (and dockerd where needed), reached on loopback ports.

use std::net::TcpListener;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cultivate_tests::deploy::xtask_binary;
use cultivate_tests::hosts::{HostVariant, TestHost};
use cultivate_tests::{project, require_engine};
use xtask::host::probe::{FinchVm, PackageManager, SUPPORTED};
use xtask::host::report::{check_connectivity, connectivity_cmd, machine_report};
use xtask::host::runtime::RuntimeKind;
use xtask::host::transport::{Ssh, SshFailure, Transport};
use xtask::model::config::{Config, Host};
use xtask::model::platform::{LinuxEngine, TargetOs};
use xtask::model::ssh_target::SshTarget;
use xtask::support::command::Cmd;

fn config() -> Config {
    Config::parse("[app]\nname = \"cultivate\"\n", "test", &|_| None).unwrap()
}

/// A transport to `host` as `user`, with the test's key and known_hosts file.
fn ssh_to(host: &TestHost, user: &str) -> Transport {
    let mut ssh = Ssh::new(SshTarget::parse(&host.target(user)).unwrap()).unwrap();
    ssh.identity_file = Some(host.key.clone());
    ssh.known_hosts_file = Some(host.known_hosts.clone());
    ssh.connect_timeout = Duration::from_secs(5);
    Transport::Ssh(ssh)
}

fn ssh_failure(transport: &Transport) -> SshFailure {
    let output = transport.capture(&connectivity_cmd()).unwrap();
    SshFailure::classify(&output).unwrap_or_else(|| panic!("ssh did not fail: {output:?}"))
}

// Property 16: SSH connectivity verification — the connectivity check is the first
// command the host sees, before any other.
#[test]
fn property_16_connectivity_is_checked_before_anything_else() {
    require_engine();
    // A host of its own: the shared one logs the other tests' commands too.
    let host = &TestHost::start(HostVariant::Os("debian"), false).unwrap();
    let before = host.command_log().lines().count();
    let transport = ssh_to(host, "root");
    check_connectivity(&transport).unwrap();
    let report = machine_report(&config(), &transport, "debian host".into(), None, false).unwrap();
    transport.close();
    assert_eq!(report.os.map(|os| os.id), Some("debian".to_string()));
    let log = host.command_log();
    let ours: Vec<&str> = log.lines().skip(before).collect();
    assert!(ours.len() >= 2, "{log}");
    assert!(ours[0].ends_with(&connectivity_cmd().to_string()), "first command was {:?}", ours[0]);
}

// Property 17: SSH failure error messages name the host and the reason.
#[test]
fn property_17_refused_port() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let transport = Transport::Ssh(Ssh::new(SshTarget::parse(&format!("root@127.0.0.1:{port}")).unwrap()).unwrap());
    assert_eq!(ssh_failure(&transport), SshFailure::Refused);
    let message = format!("{:#}", check_connectivity(&transport).unwrap_err());
    assert!(message.contains(&format!("root@127.0.0.1:{port}")) && message.contains("connection refused"), "{message}");
}

#[test]
fn property_17_timeout_against_a_port_that_never_answers() {
    // The kernel completes the handshake into the backlog; nobody ever speaks.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut ssh = Ssh::new(SshTarget::parse(&format!("root@127.0.0.1:{port}")).unwrap()).unwrap();
    ssh.connect_timeout = Duration::from_secs(2);
    let transport = Transport::Ssh(ssh);
    let started = std::time::Instant::now();
    assert_eq!(ssh_failure(&transport), SshFailure::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(30));
    let message = format!("{:#}", check_connectivity(&transport).unwrap_err());
    assert!(message.contains("timed out") && message.contains(&port.to_string()), "{message}");
    drop(silent);
}

#[test]
fn property_17_unknown_host() {
    // In a network namespace of its own ssh has no resolver to ask: the name cannot
    // resolve, and no query leaves this machine.
    let transport = Transport::Ssh(Ssh::new(SshTarget::parse("root@cultivate-no-such-host.invalid").unwrap()).unwrap());
    let carrier = transport.carrier(&connectivity_cmd());
    let output = Cmd::new("unshare").arg("--net").arg(carrier.program).args(carrier.args).capture().unwrap();
    assert_eq!(SshFailure::classify(&output), Some(SshFailure::UnknownHost), "{output:?}");
    assert!(SshFailure::UnknownHost.message("root@cultivate-no-such-host.invalid").contains("unknown host"));
}

#[test]
fn property_17_wrong_key_and_changed_host_key() {
    require_engine();
    let host = TestHost::docker();
    let other_key = std::env::temp_dir().join(cultivate_tests::unique("wrong-key"));
    Cmd::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(other_key.to_string_lossy())
        .output()
        .unwrap();
    let mut ssh = Ssh::new(SshTarget::parse(&host.target("root")).unwrap()).unwrap();
    ssh.identity_file = Some(other_key.clone());
    ssh.known_hosts_file = Some(host.known_hosts.clone());
    let transport = Transport::Ssh(ssh);
    assert_eq!(ssh_failure(&transport), SshFailure::AuthenticationFailed);
    let message = format!("{:#}", check_connectivity(&transport).unwrap_err());
    assert!(message.contains("authentication failed") && message.contains(&host.target("root")), "{message}");

    // A known_hosts entry with another key for this host: refused as changed.
    let forged = std::env::temp_dir().join(cultivate_tests::unique("known-hosts"));
    let other_public = std::fs::read_to_string(other_key.with_extension("pub")).unwrap();
    let key_part: Vec<&str> = other_public.split_whitespace().take(2).collect();
    std::fs::write(&forged, format!("[127.0.0.1]:{} {}\n", host.ssh_port, key_part.join(" "))).unwrap();
    let mut ssh = Ssh::new(SshTarget::parse(&host.target("root")).unwrap()).unwrap();
    ssh.identity_file = Some(host.key.clone());
    ssh.known_hosts_file = Some(forged.clone());
    assert_eq!(ssh_failure(&Transport::Ssh(ssh)), SshFailure::HostKeyChanged);
    for file in [other_key.clone(), other_key.with_extension("pub"), forged] {
        let _ = std::fs::remove_file(file);
    }
}

/// What detection must find on each OS variant: (variant, id, package manager).
const VARIANTS: [(&str, &str, PackageManager); 15] = [
    ("ubuntu", "ubuntu", PackageManager::AptGet),
    ("debian", "debian", PackageManager::AptGet),
    ("rhel8", "rhel", PackageManager::Yum),
    ("rhel9", "rhel", PackageManager::Dnf),
    ("centos", "centos", PackageManager::Dnf),
    ("rocky", "rocky", PackageManager::Dnf),
    ("alma", "almalinux", PackageManager::Dnf),
    ("fedora", "fedora", PackageManager::Dnf),
    ("amzn2", "amzn", PackageManager::Yum),
    ("amzn2023", "amzn", PackageManager::Dnf),
    ("sles", "sles", PackageManager::Zypper),
    ("opensuse-leap", "opensuse-leap", PackageManager::Zypper),
    ("alpine", "alpine", PackageManager::Apk),
    ("redhat-release-only", "rhel", PackageManager::Yum),
    ("debian-version-only", "debian", PackageManager::AptGet),
];

// Properties 18, 19, 21 on real hosts: every OS variant is detected with its package
// manager; an unknown ID and a host with no release file are refused with the list
// of supported systems.
#[test]
fn properties_18_19_21_across_os_variants() {
    require_engine();
    let config = config();
    let all: Vec<&'static str> = VARIANTS.iter().map(|(v, _, _)| *v).chain(["unknown", "no-release"]).collect();
    let results: Vec<(String, Result<xtask::host::report::MachineReport, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = all
            .chunks(6)
            .map(|chunk| {
                let config = &config;
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|variant| {
                            let outcome = TestHost::start(HostVariant::Os(variant), false)
                                .map_err(|e| format!("{e:#}"))
                                .and_then(|host| {
                                    let transport = ssh_to(&host, "root");
                                    check_connectivity(&transport).map_err(|e| format!("{e:#}"))?;
                                    let report = machine_report(config, &transport, variant.to_string(), None, false);
                                    transport.close();
                                    report.map_err(|e| format!("{e:#}"))
                                });
                            (variant.to_string(), outcome)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    for (variant, outcome) in results {
        let report = outcome.unwrap_or_else(|e| panic!("{variant}: {e}"));
        match VARIANTS.iter().find(|(v, _, _)| *v == variant) {
            Some((_, id, manager)) => {
                let os = report.os.as_ref().unwrap_or_else(|| panic!("{variant}: not detected: {:?}", report.missing));
                assert_eq!((os.id.as_str(), os.package_manager, os.os), (*id, *manager, TargetOs::Linux), "{variant}");
                assert!(
                    report.missing.iter().any(|m| m.contains("docker is not installed")),
                    "{variant}: {:?}",
                    report.missing
                );
            }
            None => {
                assert!(report.os.is_none(), "{variant} was detected as {:?}", report.os);
                let message = report.missing.join("\n");
                assert!(message.contains(SUPPORTED), "{variant}: {message}");
            }
        }
    }
}

// Property 20: dependency installation — on a host without docker, --install runs the
// detected package manager's install (through sudo when not root) and verifies.
#[test]
fn property_20_install_uses_the_package_manager_with_sudo_when_not_root() {
    require_engine();
    let config = config();
    for (variant, user, expected) in [
        ("ubuntu", "deploy", "apt-get install -y -q --no-install-recommends docker.io docker-compose"),
        ("amzn2", "root", "yum install -y docker"),
        ("alpine", "deploy", "apk add --no-cache docker docker-cli-compose"),
    ] {
        let host = TestHost::start(HostVariant::Os(variant), false).unwrap();
        let transport = ssh_to(&host, user);
        check_connectivity(&transport).unwrap();
        let report = machine_report(&config, &transport, variant.into(), None, true).unwrap();
        transport.close();
        assert!(report.missing.is_empty(), "{variant}: still missing {:?}", report.missing);
        let calls = host.package_calls();
        let install = calls.lines().find(|l| l.contains(expected)).unwrap_or_else(|| panic!("{variant}: {calls}"));
        // The fake records the uid it ran as: root, directly or through sudo.
        assert!(install.starts_with("0 "), "{variant}: ran as {install}");
        assert!(
            report.actions.iter().any(|a| a.contains(expected) && (user == "root" || a.starts_with("sudo -n"))),
            "{:?}",
            report.actions
        );
    }
    // A user whose sudo wants a password: stop and say so, nothing installed.
    let host = TestHost::start(HostVariant::Os("debian"), false).unwrap();
    let transport = ssh_to(&host, "nosudo");
    let error = format!("{:#}", machine_report(&config, &transport, "debian".into(), None, true).unwrap_err());
    assert!(error.contains("sudo asks for a password"), "{error}");
    assert!(!host.package_calls().contains("install"), "{}", host.package_calls());
}

// Property 20 for Podman: a host whose table says `engine = "podman"` gets Podman and
// podman-compose from its package manager (apt, dnf), not Docker; no daemon is started.
#[test]
fn property_20_install_gets_podman_where_the_host_asks_for_it() {
    require_engine();
    let config = config();
    for (variant, user, expected) in [
        ("debian", "root", "apt-get install -y -q --no-install-recommends podman podman-compose nftables aardvark-dns"),
        ("rocky", "root", "dnf install -y podman podman-compose"),
    ] {
        let host = TestHost::start(HostVariant::Os(variant), false).unwrap();
        let transport = ssh_to(&host, user);
        check_connectivity(&transport).unwrap();
        let table = Host {
            address: "127.0.0.1".into(),
            user: user.into(),
            port: Some(host.ssh_port),
            identity_file: None,
            os: None,
            engine: Some(LinuxEngine::Podman),
            deployment_path: None,
            log_path: None,
        };
        let report = machine_report(&config, &transport, variant.into(), Some(&table), true).unwrap();
        transport.close();
        assert!(report.missing.is_empty(), "{variant}: still missing {:?}", report.missing);
        let runtime = report.runtime.as_ref().unwrap();
        assert_eq!(runtime.runtime, RuntimeKind::Podman, "{variant}");
        assert_eq!(runtime.compose.as_ref().map(ToString::to_string).as_deref(), Some("podman-compose 1.3.0"));
        let calls = host.package_calls();
        let install = calls.lines().find(|l| l.contains(expected)).unwrap_or_else(|| panic!("{variant}: {calls}"));
        assert!(install.starts_with("0 "), "{variant}: ran as {install}");
        assert!(!calls.contains("docker"), "{variant}: Docker installed too: {calls}");
        assert!(
            report.actions.iter().all(|a| !a.contains("dockerd") && !a.contains("systemctl")),
            "{:?}",
            report.actions
        );
    }
}

// Property 22: an old docker and docker-compose are reported with required and found.
#[test]
fn property_22_old_docker_is_reported() {
    require_engine();
    let host = TestHost::start(HostVariant::Os("ubuntu"), true).unwrap();
    let transport = ssh_to(&host, "root");
    let report = machine_report(&config(), &transport, "old".into(), None, false).unwrap();
    let missing = report.missing.join("\n");
    assert!(missing.contains("docker 19.3.0 is too old: 20.10 or newer is required"), "{missing}");
    assert!(missing.contains("docker-compose 1.20.0 is too old: 1.27 or newer is required"), "{missing}");
}

// Finch on a (simulated) macOS host: Nonexistent → vm init, Stopped → vm start,
// absent → the installation instructions.
#[test]
fn finch_vm_is_brought_up_or_explained() {
    require_engine();
    let config = config();
    for (state, expected) in [(FinchVm::Nonexistent, "finch vm init"), (FinchVm::Stopped, "finch vm start")] {
        let host = TestHost::start(HostVariant::Macos { finch_vm: state, finch: true }, false).unwrap();
        let transport = ssh_to(&host, "ada");
        let before = machine_report(&config, &transport, "mac".into(), None, false).unwrap();
        assert!(before.missing.iter().any(|m| m.contains(expected)), "{state:?}: {:?}", before.missing);
        let after = machine_report(&config, &transport, "mac".into(), None, true).unwrap();
        transport.close();
        assert!(after.missing.is_empty(), "{state:?}: {:?}", after.missing);
        assert_eq!(after.actions, vec![expected.to_string()]);
        assert!(host.finch_calls().contains(&expected.replace("finch ", "")), "{}", host.finch_calls());
        let paths = after.paths.unwrap();
        assert_eq!(paths.base, "/Users/ada/cultivate");
    }
    let host = TestHost::start(HostVariant::Macos { finch_vm: FinchVm::Running, finch: false }, false).unwrap();
    let transport = ssh_to(&host, "ada");
    let report = machine_report(&config, &transport, "mac".into(), None, false).unwrap();
    assert!(report.missing.iter().any(|m| m.contains("brew install --cask finch")), "{:?}", report.missing);
}

// Remote quoting: hostile paths and contents arrive intact over real ssh.
#[test]
fn hostile_paths_round_trip_over_ssh() {
    require_engine();
    let host = TestHost::docker();
    let transport = ssh_to(host, "root");
    let path = "/tmp/cultivate test/it's \"quoted\" $HOME `id`; x\nline";
    let content = b"a'b\"c $d `e` \\f\n";
    transport.upload(content, path, 0o600).unwrap();
    let back = transport.output(&Cmd::new("cat").arg(path)).unwrap();
    assert_eq!(back.as_bytes(), content.strip_suffix(b"\n").unwrap());
    let mode = transport.output(&Cmd::new("stat").args(["-c", "%a"]).arg(path)).unwrap();
    assert_eq!(mode, "600");
    transport.output(&Cmd::new("rm").args(["-rf", "/tmp/cultivate test"])).unwrap();
    transport.close();
}

#[test]
fn streams_cross_ssh_intact() {
    require_engine();
    let host = TestHost::docker();
    let transport = ssh_to(host, "root");
    let data: Vec<u8> = (0..8_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut back = Vec::new();
    let copied = transport.stream(&Cmd::new("cat"), Some(&mut &data[..]), &mut back).unwrap();
    assert_eq!((copied, back == data), (data.len() as u64, true));
    transport.close();
}

/// `xtask --config FILE doctor --host target …` as a user runs it, with the test host's
/// address, port and key in `[hosts.target]`.
fn doctor_cli(host: &TestHost, user: &str, extra: &[&str]) -> Output {
    let table = format!(
        "address = \"127.0.0.1\"\nuser = \"{user}\"\nport = {}\nidentity_file = {:?}\n",
        host.ssh_port,
        host.key.display().to_string()
    );
    doctor_with(host, &table, extra, None)
}

/// The xtask's doctor with `table` as `[hosts.target]`. With `fake_home`, it runs in a
/// mount namespace of its own where that directory stands for this user's home (OpenSSH
/// reads ~/.ssh from the passwd entry, whatever $HOME says), without an agent: the real
/// home is never touched.
fn doctor_with(host: &TestHost, table: &str, extra: &[&str], fake_home: Option<&Path>) -> Output {
    let config = std::env::temp_dir().join(cultivate_tests::unique("doctor-config"));
    std::fs::write(&config, format!("[app]\nname = \"cultivate\"\n[hosts.target]\n{table}")).unwrap();
    let binary = xtask_binary();
    let mut command = match fake_home {
        None => Command::new(binary),
        Some(fake_home) => {
            let mut command = Command::new("unshare");
            command
                .args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg("mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"")
                .arg("sh")
                .arg(fake_home)
                .arg(passwd_home())
                .arg(binary)
                .env_remove("SSH_AUTH_SOCK");
            command
        }
    };
    let output = command
        .arg("--config")
        .arg(&config)
        .args(["doctor", "--host", "target"])
        .args(extra)
        .env("CULTIVATE_KNOWN_HOSTS", &host.known_hosts)
        .current_dir(&project().root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&config);
    output
}

/// This user's home as OpenSSH finds it: the passwd entry's, not $HOME.
fn passwd_home() -> PathBuf {
    // SAFETY: getpwuid's record is read at once, on this thread, and copied out.
    let home = unsafe {
        let entry = libc::getpwuid(libc::getuid());
        assert!(!entry.is_null(), "no passwd entry for this user");
        std::ffi::CStr::from_ptr((*entry).pw_dir).to_string_lossy().into_owned()
    };
    PathBuf::from(home)
}

/// A directory to stand for the home: `.ssh/` (0700) holding `config` (0600) when
/// given, and no key.
fn fake_home(ssh_config: Option<&str>) -> PathBuf {
    let home = std::env::temp_dir().join(cultivate_tests::unique("fake-home"));
    std::fs::DirBuilder::new().mode(0o700).recursive(true).create(home.join(".ssh")).unwrap();
    if let Some(text) = ssh_config {
        let path = home.join(".ssh/config");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    home
}

fn json_report(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn doctor_command_line_reports_and_sets_its_exit_status() {
    require_engine();
    let host = TestHost::docker();
    let ok = doctor_cli(host, "root", &["--json"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["host"]["os"]["id"], "debian");
    assert_eq!(report["host"]["paths"]["base"], "/opt/cultivate");
    assert!(report["host"]["runtime"]["engine"].as_str().is_some_and(|v| v.starts_with("20.")), "{report}");
    assert!(report["host"]["free_disk_bytes"].as_u64().is_some_and(|b| b > 0), "{report}");

    let bare = TestHost::start(HostVariant::Os("rocky"), false).unwrap();
    let missing = doctor_cli(&bare, "root", &[]);
    let stdout = String::from_utf8_lossy(&missing.stdout);
    assert!(!missing.status.success(), "exit 0 with docker missing: {stdout}");
    assert!(stdout.contains("docker is not installed: dnf install -y docker"), "{stdout}");
}

// Issue 9 (3, 4): a host that is an alias in ~/.ssh/config, with its own HostName, Port
// and IdentityFile there, is reached the way plain `ssh cultivate-alias` reaches it: no
// `-p 22` forced, no refusal for want of ~/.ssh/id_* or an agent.
#[test]
fn an_ssh_config_alias_with_its_own_port_and_key_is_reached() {
    require_engine();
    let host = &TestHost::start(HostVariant::Os("debian"), false).unwrap();
    let home = fake_home(Some(&format!(
        "Host cultivate-alias\n    HostName 127.0.0.1\n    Port {}\n    User root\n    IdentityFile {}\n    IdentitiesOnly yes\n",
        host.ssh_port,
        host.key.display()
    )));
    let output = doctor_with(host, "address = \"cultivate-alias\"\nuser = \"root\"\n", &["--json"], Some(&home));
    let report = json_report(&output);
    assert_eq!(report["host"]["machine"], "root@cultivate-alias", "{report}");
    assert_eq!(report["host"]["os"]["id"], "debian", "{report}");
    assert_eq!(report["host"]["user"], "root", "{report}");
    let log = host.command_log();
    assert!(log.lines().next().is_some_and(|l| l.ends_with(&connectivity_cmd().to_string())), "{log}");
    let _ = std::fs::remove_dir_all(&home);
}

// Issue 9 (3): `address = "host:port"` without `port` uses that port.
#[test]
fn an_address_with_its_port_reaches_the_host() {
    require_engine();
    let host = &TestHost::start(HostVariant::Os("debian"), false).unwrap();
    let table = format!(
        "address = \"127.0.0.1:{}\"\nuser = \"root\"\nidentity_file = {:?}\n",
        host.ssh_port,
        host.key.display().to_string()
    );
    let report = json_report(&doctor_with(host, &table, &["--json"], None));
    assert_eq!(report["host"]["machine"], format!("root@127.0.0.1:{}", host.ssh_port), "{report}");
    assert_eq!(report["host"]["os"]["id"], "debian", "{report}");

    // A different `port` as well: refused before any connection, naming both keys.
    let before = host.command_log().lines().count();
    let output = doctor_with(host, &format!("{table}port = 22\n"), &[], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("hosts.target.address") && stderr.contains("hosts.target.port"), "{stderr}");
    assert_eq!(host.command_log().lines().count(), before, "a command reached the host");
}

// Issue 9 (4): with no key anywhere (no ~/.ssh/id_*, no agent, no identity_file) the
// login fails, and the error names the fixes; nothing runs on the host.
#[test]
fn doctor_without_any_key_names_the_fix() {
    require_engine();
    // A host of its own: the shared one sees the other tests' connections.
    let host = &TestHost::start(HostVariant::Os("debian"), false).unwrap();
    let home = fake_home(None);
    let before = host.command_log().lines().count();
    let accepted = host.accepted_connections();
    let table = format!("address = \"127.0.0.1\"\nuser = \"root\"\nport = {}\n", host.ssh_port);
    let output = doctor_with(host, &table, &[], Some(&home));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    for fix in ["authentication failed", "no SSH key", "ssh-keygen -t ed25519", "ssh-add", "identity_file"] {
        assert!(stderr.contains(fix), "{fix} missing from {stderr}");
    }
    assert_eq!(host.command_log().lines().count(), before, "a command reached the host");
    assert_eq!(host.accepted_connections(), accepted, "a login was accepted");
    let _ = std::fs::remove_dir_all(&home);
}

// Issue 9 (6): `~` in the paths is the home the target reports ($HOME), not a guess
// from the user's name.
#[test]
fn tilde_paths_use_the_home_the_target_reports() {
    require_engine();
    let host = &TestHost::start(HostVariant::Os("debian"), false).unwrap();
    let moved = host.exec(&["usermod", "--move-home", "--home", "/srv/deploy-home", "deploy"]).unwrap();
    assert!(moved.status.success(), "{}", String::from_utf8_lossy(&moved.stderr));
    let config = Config::parse(
        "[app]\nname = \"cultivate\"\n[paths]\ndeployment = \"~/cultivate\"\nlogs = \"~/logs\"\n",
        "test",
        &|_| None,
    )
    .unwrap();
    let transport = ssh_to(host, "deploy");
    let report = machine_report(&config, &transport, "moved home".into(), None, false).unwrap();
    transport.close();
    let paths = report.paths.unwrap_or_else(|| panic!("no paths: {:?}", report.missing));
    assert_eq!((paths.base.as_str(), paths.logs.as_str()), ("/srv/deploy-home/cultivate", "/srv/deploy-home/logs"));
}
