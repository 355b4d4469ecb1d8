use proptest::prelude::*;

use super::*;

fn probe(sections: &[(&str, &str)]) -> Probe {
    let text: String = sections.iter().map(|(name, body)| format!("=={name}\n{body}\n")).collect();
    Probe::parse(&text)
}

fn os_release(id: &str, version: &str) -> String {
    format!("NAME=\"Some Linux\"\nID={id}\nVERSION_ID=\"{version}\"\nPRETTY_NAME=\"Some Linux {version}\"\n")
}

#[test]
fn probe_sections_are_split() {
    let probe = Probe::parse("==uname\nLinux\n==commands\ndnf\ndocker\n==empty\n");
    assert_eq!(probe.get("uname"), "Linux");
    assert!(probe.has_command("dnf") && probe.has_command("docker") && !probe.has_command("yum"));
    assert_eq!(probe.get("empty"), "");
    assert_eq!(probe.get("absent"), "");
}

#[test]
fn macos_is_detected_from_uname_with_its_version() {
    let info = detect_os(&probe(&[("uname", "Darwin"), ("sw_vers", "14.4.1")])).unwrap();
    assert_eq!((info.os, info.id.as_str(), info.version.as_deref()), (TargetOs::Macos, "macos", Some("14.4.1")));
    assert_eq!(info.package_manager, PackageManager::Brew);
}

#[test]
fn fallbacks_when_os_release_is_missing() {
    let rhel =
        detect_os(&probe(&[("uname", "Linux"), ("redhat-release", "Red Hat Enterprise Linux release 8.9 (Ootpa)")]))
            .unwrap();
    assert_eq!(
        (rhel.id.as_str(), rhel.version.as_deref(), rhel.package_manager),
        ("rhel", Some("8.9"), PackageManager::Yum)
    );
    let debian = detect_os(&probe(&[("uname", "Linux"), ("debian_version", "12.5")])).unwrap();
    assert_eq!((debian.id.as_str(), debian.package_manager), ("debian", PackageManager::AptGet));
    let message = detect_os(&probe(&[("uname", "Linux")])).unwrap_err().to_string();
    assert!(
        message.contains("cannot tell") && message.contains("Amazon Linux") && message.contains("macOS"),
        "{message}"
    );
}

#[test]
fn amazon_linux_2_uses_yum_and_2023_uses_dnf() {
    let al2 = detect_os(&probe(&[("uname", "Linux"), ("os-release", &os_release("amzn", "2")), ("commands", "yum")]))
        .unwrap();
    assert_eq!(al2.package_manager, PackageManager::Yum);
    let al2023 =
        detect_os(&probe(&[("uname", "Linux"), ("os-release", &os_release("amzn", "2023")), ("commands", "dnf\nyum")]))
            .unwrap();
    assert_eq!(al2023.package_manager, PackageManager::Dnf);
}

const SUPPORTED_IDS: [(&str, Option<PackageManager>); 12] = [
    ("ubuntu", Some(PackageManager::AptGet)),
    ("debian", Some(PackageManager::AptGet)),
    ("rhel", None),
    ("centos", None),
    ("fedora", None),
    ("rocky", None),
    ("almalinux", None),
    ("amzn", None),
    ("sles", Some(PackageManager::Zypper)),
    ("opensuse-leap", Some(PackageManager::Zypper)),
    ("opensuse-tumbleweed", Some(PackageManager::Zypper)),
    ("alpine", Some(PackageManager::Apk)),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    // Property 18: OS distribution detection, and Property 19: package manager selection
    // (dnf where it exists, else yum, for the Red Hat family and Amazon Linux).
    #[test]
    fn property_18_19_supported_distributions_get_their_package_manager(
        (id, fixed) in proptest::sample::select(SUPPORTED_IDS.to_vec()),
        version in "[0-9]{1,2}(\\.[0-9]{1,2})?",
        has_dnf in any::<bool>(),
    ) {
        let commands = if has_dnf { "dnf\nyum" } else { "yum" };
        let info = detect_os(&probe(&[("uname", "Linux"), ("os-release", &os_release(id, &version)), ("commands", commands)])).unwrap();
        prop_assert_eq!(info.os, TargetOs::Linux);
        prop_assert_eq!(info.id.as_str(), id);
        prop_assert_eq!(info.version.as_deref(), Some(version.as_str()));
        let expected = fixed.unwrap_or(if has_dnf { PackageManager::Dnf } else { PackageManager::Yum });
        prop_assert_eq!(info.package_manager, expected);
    }

    // Property 21: unsupported OS error handling — the error lists every supported
    // distribution, Amazon Linux and macOS included.
    #[test]
    fn property_21_unsupported_distributions_list_what_is_supported(id in "[a-z][a-z0-9]{1,10}") {
        prop_assume!(!SUPPORTED_IDS.iter().any(|(known, _)| *known == id) && !id.starts_with("opensuse") && id != "alma" && id != "sled");
        let message = detect_os(&probe(&[("uname", "Linux"), ("os-release", &os_release(&id, "1"))])).unwrap_err().to_string();
        prop_assert!(message.contains(&format!("{id:?}")), "{}", message);
        for name in ["Ubuntu", "Debian", "RHEL", "CentOS", "Fedora", "Rocky", "AlmaLinux", "Amazon Linux", "SLES", "openSUSE", "Alpine", "macOS"] {
            prop_assert!(message.contains(name), "{} missing from {}", name, message);
        }
    }

    // Property 22: version requirement enforcement — a version below the minimum is
    // reported with the required and the found version; at or above is accepted.
    #[test]
    fn property_22_versions_below_the_minimum_are_reported(major in 17u32..30, minor in 0u32..15, patch in 0u32..10) {
        let version = format!("{major}.{minor:02}.{patch}");
        let linux = OsInfo { os: TargetOs::Linux, id: "debian".into(), version: None, package_manager: PackageManager::AptGet };
        let found = probe(&[
            ("commands", "docker\ndocker-compose"),
            ("docker-client", &format!("Docker version {version}, build abc")),
            ("docker-server", &version),
            ("compose-v1", "1.29.2"),
        ]);
        let report = check_runtime(&linux, &found, &Minimums::default(), None);
        let old = (major, minor) < (20, 10);
        let problem = report.problems.iter().find(|p| p.starts_with("docker "));
        if old {
            let problem = problem.expect("an old docker is reported");
            prop_assert!(problem.contains(&Version::find(&version).unwrap().to_string()) && problem.contains("20.10"), "{}", problem);
        } else {
            prop_assert!(problem.is_none(), "{:?}", report.problems);
        }
        prop_assert_eq!(report.compose, Some(ComposeCommand::DockerV1(Version(vec![1, 29, 2]))));
    }
}

#[test]
fn compose_v2_is_preferred_over_v1() {
    let linux =
        OsInfo { os: TargetOs::Linux, id: "ubuntu".into(), version: None, package_manager: PackageManager::AptGet };
    let both = probe(&[
        ("commands", "docker\ndocker-compose"),
        ("docker-server", "24.0.7"),
        ("compose-v2", "v2.21.0"),
        ("compose-v1", "1.29.2"),
    ]);
    let report = check_runtime(&linux, &both, &Minimums::default(), None);
    assert_eq!(report.compose, Some(ComposeCommand::DockerV2(Version(vec![2, 21, 0]))));
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn missing_docker_says_how_to_install_it() {
    let rhel = OsInfo { os: TargetOs::Linux, id: "rhel".into(), version: None, package_manager: PackageManager::Dnf };
    let report = check_runtime(&rhel, &probe(&[("commands", "dnf")]), &Minimums::default(), None);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("docker is not installed") && p.contains("sudo -n dnf install -y docker")),
        "{:?}",
        report.problems
    );
}

#[test]
fn finch_states_and_absence_on_macos() {
    let macos =
        OsInfo { os: TargetOs::Macos, id: "macos".into(), version: None, package_manager: PackageManager::Brew };
    let absent = check_runtime(&macos, &probe(&[("commands", "brew")]), &Minimums::default(), None);
    assert!(absent.problems[0].contains("brew install --cask finch") && absent.problems[0].contains("finch vm init"));
    let stopped = check_runtime(
        &macos,
        &probe(&[("commands", "finch"), ("finch", "finch version v1.2.0"), ("finch-vm", "Stopped")]),
        &Minimums::default(),
        None,
    );
    assert_eq!(stopped.finch_vm, Some(FinchVm::Stopped));
    assert!(stopped.problems.iter().any(|p| p.contains("finch vm start")));
    assert_eq!(stopped.compose, Some(ComposeCommand::Finch(Version(vec![1, 2, 0]))));
}

#[test]
fn versions_are_found_and_compared() {
    assert_eq!(Version::find("Docker version 20.10.24+dfsg1, build 297e128"), Some(Version(vec![20, 10, 24])));
    assert_eq!(Version::find("v2.21.0"), Some(Version(vec![2, 21, 0])));
    assert_eq!(Version::find("none"), None);
    assert!(Version(vec![20, 10]).at_least(&Version(vec![20, 10, 0])));
    assert!(!Version(vec![19, 3, 15]).at_least(&Version(vec![20, 10])));
}

#[test]
fn install_commands_per_package_manager() {
    let line = |m, root| install_cmds(m, LinuxEngine::Docker, root).iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(line(PackageManager::Yum, true), ["yum install -y docker"]);
    assert_eq!(line(PackageManager::Apk, false), ["sudo -n apk add --no-cache docker docker-cli-compose"]);
    assert_eq!(line(PackageManager::Zypper, true), ["zypper --non-interactive install docker docker-compose"]);
    assert_eq!(
        line(PackageManager::AptGet, true)[1],
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io docker-compose"
    );
}

#[test]
fn install_commands_for_podman() {
    let line = |m, root| install_cmds(m, LinuxEngine::Podman, root).iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        line(PackageManager::AptGet, true)[1],
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends podman podman-compose nftables aardvark-dns"
    );
    assert_eq!(line(PackageManager::Dnf, false), ["sudo -n dnf install -y podman podman-compose"]);
}

fn podman_probe(extra: &[(&str, &str)]) -> Probe {
    let mut sections = vec![
        ("commands", "apt-get\npodman\npodman-compose"),
        ("uid", "0"),
        ("user", "root"),
        ("podman", "podman version 5.8.6"),
        ("podman-info", "ok"),
        ("podman-compose", "podman-compose version 1.6.0"),
    ];
    for (name, body) in extra {
        sections.retain(|(n, _)| n != name);
        sections.push((name, body));
    }
    probe(&sections)
}

#[test]
fn podman_runs_the_stack_where_docker_is_absent_or_when_configured() {
    let debian =
        OsInfo { os: TargetOs::Linux, id: "debian".into(), version: None, package_manager: PackageManager::AptGet };
    let report = check_runtime(&debian, &podman_probe(&[]), &Minimums::default(), None);
    assert_eq!(report.runtime, RuntimeKind::Podman);
    assert_eq!(report.engine, Some(Version(vec![5, 8, 6])));
    assert_eq!(report.compose, Some(ComposeCommand::Podman(Version(vec![1, 6, 0]))));
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(ComposeCommand::Podman(Version(vec![1, 6, 0])).argv(), ["podman-compose"]);

    // Both engines there: Docker unless the host's `engine` says podman.
    let both = probe(&[
        ("commands", "docker\npodman\npodman-compose"),
        ("uid", "0"),
        ("docker-server", "28.5.2"),
        ("compose-v2", "2.40.3"),
        ("podman", "podman version 5.8.6"),
        ("podman-info", "ok"),
        ("podman-compose", "podman-compose version 1.6.0"),
    ]);
    assert_eq!(check_runtime(&debian, &both, &Minimums::default(), None).runtime, RuntimeKind::Docker);
    let chosen = check_runtime(&debian, &both, &Minimums::default(), Some(LinuxEngine::Podman));
    assert_eq!(chosen.runtime, RuntimeKind::Podman);
    assert_eq!(chosen.compose, Some(ComposeCommand::Podman(Version(vec![1, 6, 0]))));

    // Nothing there and podman configured: podman's packages are the fix.
    let bare =
        check_runtime(&debian, &probe(&[("commands", "apt-get")]), &Minimums::default(), Some(LinuxEngine::Podman));
    assert!(
        bare.problems.iter().any(|p| p.starts_with("podman is not installed") && p.contains("podman-compose")),
        "{:?}",
        bare.problems
    );
    // Nothing there, nothing configured: Docker, as before.
    let default = check_runtime(&debian, &probe(&[("commands", "apt-get")]), &Minimums::default(), None);
    assert_eq!(default.runtime, RuntimeKind::Docker);
}

#[test]
fn podman_problems_are_named_with_their_fix() {
    let fedora =
        OsInfo { os: TargetOs::Linux, id: "fedora".into(), version: None, package_manager: PackageManager::Dnf };
    let old = check_runtime(
        &fedora,
        &podman_probe(&[("podman", "podman version 4.3.1"), ("podman-compose", "podman-compose version 1.0.3")]),
        &Minimums::default(),
        None,
    );
    assert!(
        old.problems.iter().any(|p| p == "podman 4.3.1 is too old: 5.0 or newer is required"),
        "{:?}",
        old.problems
    );
    assert!(old.problems.iter().any(|p| p.starts_with("podman-compose 1.0.3 is too old")), "{:?}", old.problems);
    let no_compose = check_runtime(&fedora, &podman_probe(&[("podman-compose", "")]), &Minimums::default(), None);
    assert!(
        no_compose.problems.iter().any(
            |p| p.contains("podman-compose is not installed") && p.contains("dnf install -y podman podman-compose")
        ),
        "{:?}",
        no_compose.problems
    );
    let denied = check_runtime(
        &fedora,
        &podman_probe(&[("podman-info", "Error: cannot set up namespace")]),
        &Minimums::default(),
        None,
    );
    assert!(
        denied.problems.iter().any(|p| p.contains("`podman info` fails") && p.contains("cannot set up namespace")),
        "{:?}",
        denied.problems
    );
    let rootless =
        check_runtime(&fedora, &podman_probe(&[("uid", "1000"), ("user", "deploy")]), &Minimums::default(), None);
    assert!(
        rootless.problems.iter().any(|p| p.contains("deploy is not root") && p.contains("user = \"root\"")),
        "{:?}",
        rootless.problems
    );
}
