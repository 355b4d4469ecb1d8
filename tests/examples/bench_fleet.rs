//! Benchmark (P-f): one deploy to four hosts against the same deploy to one host, and
//! against the naive path for several hosts (one after the other, as a `for host in …`
//! loop around a single-host deploy does: `[deploy] parallel = 1`), in the same run, on
//! four fresh Docker test hosts over SSH on loopback.
//!
//!     cargo run -p cultivate-tests --example bench_fleet [-- docker20|docker28]
//!
//! The hosts run Docker 20.10 with Compose v1 (Debian 12's, the default) or Docker 28
//! with Compose v2 (Debian sid's). All four share this machine's cores with each other,
//! as real servers would not: what the hosts themselves do (load, start, health checks)
//! competes here, and only the local side (the save stream, ssh) is really shared.
//!
//! Needs a Docker engine and the images (`cargo xtask images`). The change is the same
//! kind each time: only the backend, a new 2 MB layer of random bytes (as a new binary
//! brings), each step its own such layer so every host receives one. Prints one table:
//! wall time of the whole command, and its ratio to the one-host deploy (the goal for
//! four hosts in parallel: at most 1.5×).

use std::time::Instant;

use cultivate_tests::deploy::{DeployConfig, built_manifest_path, derived_version};
use cultivate_tests::hosts::{Engine, HostVariant, TestHost};

const HOSTS: [&str; 4] = ["h1", "h2", "h3", "h4"];

fn changed(version: &str) -> String {
    let lines = format!("RUN head -c 2000000 /dev/urandom > /tmp/cultivate-{version}\n");
    derived_version(version, &lines).expect("a backend-changed version").to_string_lossy().into_owned()
}

/// The command's wall time, and each host's phase times (its log's `time:` line).
fn timed(config: &DeployConfig, args: &[&str]) -> (f64, Vec<String>) {
    let started = Instant::now();
    let ran = config.run(args).expect("running the xtask");
    let seconds = started.elapsed().as_secs_f64();
    assert!(ran.success, "{args:?} failed: {}", ran.all());
    let phases = ran.stderr.lines().filter(|l| l.contains(" time: ")).map(|l| l.to_string()).collect();
    (seconds, phases)
}

fn main() {
    cultivate_tests::require_engine();
    let (variant, engine) = match std::env::args().nth(1).as_deref() {
        None | Some("docker20") => (HostVariant::Docker, "Docker 20.10 + Compose v1"),
        Some("docker28") => (HostVariant::Engine(Engine::Docker28), "Docker 28 + Compose v2"),
        Some(other) => panic!("unknown engine {other:?}: docker20 or docker28"),
    };
    let hosts: Vec<TestHost> = std::thread::scope(|scope| {
        let started: Vec<_> = HOSTS.iter().map(|_| scope.spawn(|| TestHost::start(variant, false))).collect();
        started.into_iter().map(|h| h.join().unwrap().expect("starting a test host")).collect()
    });
    let named: Vec<(&str, Option<&TestHost>)> = HOSTS.iter().copied().zip(hosts.iter().map(Some)).collect();
    let groups = format!("[groups]\nfour = {HOSTS:?}\n");
    let parallel = DeployConfig::for_hosts(&named, &format!("[deploy]\nparallel = 4\n{groups}")).unwrap();
    let one_by_one = DeployConfig::for_hosts(&named, &format!("[deploy]\nparallel = 1\n{groups}")).unwrap();
    let v1 = built_manifest_path().to_string_lossy().into_owned();
    let (b1, b2, b3) = (changed("fleet-b1"), changed("fleet-b2"), changed("fleet-b3"));

    let deploy = |config: &DeployConfig, manifest: &str, selector: [&str; 2]| {
        timed(config, &["deploy", selector[0], selector[1], "--manifest", manifest, "--yes"])
    };
    let (first, _) = deploy(&parallel, &v1, ["--group", "four"]);
    let (one, one_phases) = deploy(&parallel, &b1, ["--host", "h1"]);
    let (four, four_phases) = deploy(&parallel, &b2, ["--group", "four"]);
    let (naive, _) = deploy(&one_by_one, &b3, ["--group", "four"]);

    println!(
        "\nDeploy of a backend-only change (a new 2 MB layer) over SSH on loopback, {engine} test hosts, 2 cores \
         shared by the four\n"
    );
    println!("{:<58} {:>7} {:>9} {:>8}", "step", "hosts", "wall", "vs 1");
    let line = |step: &str, hosts: usize, seconds: f64| {
        println!("{step:<58} {hosts:>7} {seconds:>8.1}s {:>7.2}×", seconds / one);
    };
    line("backend change, one host (--host h1)", 1, one);
    line("backend change, four hosts in parallel (--group, parallel = 4)", 4, four);
    line("naive: four hosts one after the other (parallel = 1)", 4, naive);
    println!("\n(setup, not compared: the first deploy to the four hosts in parallel took {first:.1} s)");
    println!("\nwhere each host's time went, one host, then four in parallel:");
    for line in one_phases.iter().chain(&four_phases) {
        println!("  {}", line.split_once(" INFO ").map_or(line.as_str(), |(_, text)| text.trim()));
    }
}
