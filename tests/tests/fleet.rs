//! Many hosts in one command (issue 14): `--host a --host b` and `--group NAME` on two
//! fresh Docker test hosts over real SSH, and a third name whose address answers
//! nothing (a host that is down). One build, the hosts deployed in parallel, each with
//! its own lock, history and log; a summary table; a failed host leaves the others
//! deployed, or, with `[deploy] all_or_nothing`, rolled back; status and rollback take
//! the same selectors; without `--manifest`, the checkout's images built once for all.

use cultivate_tests::deploy::{DeployConfig, built_manifest_path, derived_version, status_of, wait_bounded};
use cultivate_tests::hosts::{HostVariant, TestHost};
use cultivate_tests::{get, manifest, require_engine};
use std::process::{Command, Stdio};

fn host_sh(host: &TestHost, script: &str) -> String {
    let output = host.exec(&["sh", "-c", script]).unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The summary table's row for `host` (its first cell the host's name).
fn row<'a>(stdout: &'a str, host: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(host))
        .unwrap_or_else(|| panic!("no row for {host} in:\n{stdout}"))
}

fn current(config: &DeployConfig, name: &str) -> String {
    let status = status_of(config, name);
    assert_eq!(status["healthy"], true, "{name}: {status:#}");
    status["current"]["version"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_deploy_to_several_hosts_runs_them_in_parallel_and_a_failed_host_leaves_the_others_or_undoes_them() {
    require_engine();
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| TestHost::start(HostVariant::Docker, false));
        let b = scope.spawn(|| TestHost::start(HostVariant::Docker, false));
        (a.join().unwrap().expect("starting host a"), b.join().unwrap().expect("starting host b"))
    });
    let groups = "[groups]\npair = [\"a\", \"b\"]\nall = [\"a\", \"gone\", \"b\"]\n";
    let hosts = [("a", Some(&a)), ("b", Some(&b)), ("gone", None)];
    let config = DeployConfig::for_hosts(&hosts, groups).unwrap();
    let v1 = built_manifest_path();
    let v1_version = manifest().version.clone();
    let v1_arg = v1.to_string_lossy().into_owned();

    // 1. Two hosts by name: both deployed, each its own log and history, one table;
    // the one secret on each, for the backend's user only.
    config.write_secret("api_token", "fleet-token-1\n").unwrap();
    let ran = config.run(&["deploy", "--host", "a", "--host", "b", "--manifest", &v1_arg, "--yes"]).unwrap();
    assert!(ran.success, "{}", ran.all());
    for name in ["a", "b"] {
        let line = row(&ran.stdout, name);
        assert!(line.contains(&v1_version) && line.contains(" ok: http://127.0.0.1"), "{line}");
        assert!(line.contains(" MB"), "bytes shipped: {line}");
    }
    // In parallel: each host's lines are marked with its name, and b had begun before
    // a was done.
    let b_begins = ran.stderr.find("b | connected to").unwrap_or_else(|| panic!("{}", ran.all()));
    let a_done = ran.stderr.find(&format!("a | deploy of {v1_version} to a done")).expect("a's last line");
    assert!(b_begins < a_done, "the hosts ran one after the other:\n{}", ran.stderr);
    for (name, host) in [("a", &a), ("b", &b)] {
        assert_eq!(current(&config, name), v1_version);
        let logs = host_sh(host, "ls /var/log/cultivate/");
        assert_eq!(logs.lines().filter(|l| l.starts_with("deploy-")).count(), 1, "{name}: {logs}");
        // Its own log only: the other host's lines are not in it.
        let other = if name == "a" { "b" } else { "a" };
        let text = host_sh(host, "cat /var/log/cultivate/deploy-*");
        assert!(text.contains(&format!("to {name} done")) && !text.contains(&format!("to {other} done")), "{text}");
        let health = get(&format!("http://127.0.0.1:{}/health", host.http_port)).unwrap();
        assert_eq!(health.status, 200, "{name}: {}", health.text());
        let backend = "$(docker ps -q --filter label=com.docker.compose.service=backend | head -n 1)";
        host.assert_secret_is_the_backends_alone("docker", backend, "600", "fleet-token-1");
    }

    // 2. A group with a host that is down: the others finish, exit ≠ 0, the table
    // says which failed.
    let v2 = derived_version("fleet-v2", "RUN echo fleet-v2 > /tmp/cultivate-fleet\n").unwrap();
    let v2_arg = v2.to_string_lossy().into_owned();
    let ran = config.run(&["deploy", "--group", "all", "--manifest", &v2_arg, "--yes"]).unwrap();
    assert!(!ran.success, "a host that is down must fail the deploy: {}", ran.all());
    assert!(row(&ran.stdout, "gone").contains("FAILED"), "{}", ran.stdout);
    assert!(row(&ran.stdout, "a").contains(" ok: "), "{}", ran.stdout);
    assert!(row(&ran.stdout, "b").contains(" ok: "), "{}", ran.stdout);
    assert!(ran.stderr.contains("deploy failed on 1 of 3 hosts:\n  gone: "), "{}", ran.stderr);
    assert!(ran.stdout.contains("all_or_nothing = true"), "the default is explained: {}", ran.stdout);
    assert_eq!(current(&config, "a"), "fleet-v2");
    assert_eq!(current(&config, "b"), "fleet-v2");
    // One archive of the changed backend, made for the first host, sent to both.
    let shared = ran.stderr.matches("backend-api: the archive made for another host is sent").count();
    assert_eq!(shared, 1, "{}", ran.stderr);
    let shipped = |name: &str| row(&ran.stdout, name).split_whitespace().nth(2).unwrap().to_string();
    assert_eq!(shipped("a"), shipped("b"), "{}", ran.stdout);

    // 3. all_or_nothing: the hosts that took the new version go back to what they ran.
    let strict = DeployConfig::for_hosts(&hosts, &format!("[deploy]\nall_or_nothing = true\n{groups}")).unwrap();
    let v3 = derived_version("fleet-v3", "RUN echo fleet-v3 > /tmp/cultivate-fleet\n").unwrap();
    let v3_arg = v3.to_string_lossy().into_owned();
    let ran = strict.run(&["deploy", "--group", "all", "--manifest", &v3_arg, "--yes"]).unwrap();
    assert!(!ran.success, "{}", ran.all());
    for name in ["a", "b"] {
        assert!(row(&ran.stdout, name).contains("ok, then rolled back to fleet-v2"), "{}", ran.stdout);
        assert_eq!(current(&config, name), "fleet-v2");
    }
    assert!(row(&ran.stdout, "gone").contains("FAILED"), "{}", ran.stdout);

    // 4. Status and rollback take the same selectors.
    let ran = config.run(&["status", "--group", "pair", "--json"]).unwrap();
    assert!(ran.success, "{}", ran.all());
    let statuses: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let hosts_seen: Vec<&str> = statuses.as_array().unwrap().iter().map(|s| s["host"].as_str().unwrap()).collect();
    assert_eq!(hosts_seen, ["a", "b"]);
    let ran = config.run(&["rollback", "--group", "pair", "--to", &v1_version, "--yes"]).unwrap();
    assert!(ran.success, "{}", ran.all());
    for name in ["a", "b"] {
        assert!(ran.stdout.contains(&format!("Rolled back {name} to {v1_version}")), "{}", ran.stdout);
        assert_eq!(current(&config, name), v1_version);
    }
    // 5. No --manifest: the images of this checkout built once here, before any host
    // is reached, then shipped to both; also when cargo's output goes elsewhere (the
    // backend binary must still land in the workspace, the prebuilt Dockerfile's context).
    let elsewhere = std::env::temp_dir().join(format!("cultivate-fleet-target-{}", std::process::id()));
    std::fs::create_dir_all(&elsewhere).unwrap();
    // A copy of the release build (mtimes kept), so that cargo finds it fresh there
    // rather than compiling the backend again.
    let release = cultivate_tests::project().path("target/release");
    if release.is_dir() {
        let copied = Command::new("cp").arg("-a").arg(&release).arg(&elsewhere).status().unwrap();
        assert!(copied.success(), "cp -a {} {}", release.display(), elsewhere.display());
    }
    let mut command = config.command(&["deploy", "--group", "pair", "--yes"]);
    command.env("CARGO_TARGET_DIR", &elsewhere).stdout(Stdio::piped()).stderr(Stdio::piped());
    let ran = wait_bounded(command.spawn().unwrap(), 900).unwrap();
    let _ = std::fs::remove_dir_all(&elsewhere);
    assert!(ran.success, "{}", ran.all());
    // The backend packaged is the one cargo built elsewhere (unless a builder image
    // was at hand, which compiles it in the image instead).
    if ran.stderr.contains("binary built on this machine by cargo") {
        let built = format!("compiled {}", elsewhere.join("release/backend-api").display());
        assert!(ran.stderr.contains(&built), "expected `{built}` in: {}", ran.stderr);
    } else {
        assert!(ran.stderr.contains("multi-stage build in the builder image"), "{}", ran.stderr);
    }
    let built: Vec<&str> = ran.stderr.lines().filter(|l| l.contains(" once for 2 hosts in ")).collect();
    assert_eq!(built.len(), 1, "one build for both hosts: {}", ran.stderr);
    let version = built[0].split("built ").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap();
    let first_host = ran.stderr.find("a | connected to").or(ran.stderr.find("b | connected to")).unwrap();
    assert!(ran.stderr.find(built[0]).unwrap() < first_host, "built after a host was reached: {}", ran.stderr);
    for name in ["a", "b"] {
        assert!(row(&ran.stdout, name).contains(" ok: "), "{}", ran.stdout);
        assert_eq!(current(&config, name), version);
    }

    // A task that works on one host at a time says so, and touches none.
    let ran = config.run(&["restore", "--group", "pair", "--yes"]).unwrap();
    assert!(
        !ran.success && ran.stderr.contains("`restore` works on one host at a time; 2 were given: a, b"),
        "{}",
        ran.all()
    );
}
