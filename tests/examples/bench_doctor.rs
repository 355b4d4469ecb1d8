//! Benchmark: `doctor --host` over one multiplexed SSH connection, side by side with
//! the same checks made with one ssh connection per command (the naive path).
//!
//!     cargo run -p cultivate-tests --example bench_doctor
//!
//! Needs a Docker engine and the images (`cargo xtask images`); starts its own test
//! host. Counts the TCP connections the host's sshd accepted, and the wall time.

use std::time::{Duration, Instant};

use cultivate_tests::hosts::TestHost;
use xtask::host::report::{check_connectivity, machine_report};
use xtask::host::transport::{Ssh, Transport};
use xtask::model::config::Config;
use xtask::model::ssh_target::SshTarget;

const RUNS: usize = 5;

fn main() {
    cultivate_tests::require_engine();
    let host = TestHost::docker();
    let config = Config::parse("[app]\nname = \"cultivate\"\n", "bench", &|_| None).expect("config");
    println!("doctor --host against a local test host, {RUNS} runs each (median)\n");
    println!("{:<40} {:>12} {:>14} {:>10}", "path", "connections", "remote cmds", "wall time");
    for (label, multiplex) in [("multiplexed (cargo xtask doctor)", true), ("one ssh per command (naive)", false)] {
        let mut times = Vec::new();
        let mut connections = Vec::new();
        let mut commands = 0;
        for _ in 0..RUNS {
            let log_before = host.command_log().lines().count();
            let accepted_before = host.accepted_connections();
            let started = Instant::now();
            let mut ssh = Ssh::new(SshTarget::parse(&host.target("root")).expect("target")).expect("ssh");
            ssh.identity_file = Some(host.key.clone());
            ssh.known_hosts_file = Some(host.known_hosts.clone());
            ssh.multiplex = multiplex;
            let transport = Transport::Ssh(ssh);
            check_connectivity(&transport).expect("connectivity");
            let report = machine_report(&config, &transport, "bench".into(), None, false).expect("report");
            assert!(report.missing.is_empty(), "{:?}", report.missing);
            transport.close();
            times.push(started.elapsed());
            // sshd logs each accepted connection; give the log a moment to catch up.
            std::thread::sleep(Duration::from_millis(300));
            connections.push(host.accepted_connections() - accepted_before);
            commands = host.command_log().lines().count() - log_before;
        }
        times.sort();
        connections.sort();
        println!(
            "{:<40} {:>12} {:>14} {:>9.0}ms",
            label,
            connections[RUNS / 2],
            commands,
            times[RUNS / 2].as_secs_f64() * 1000.0
        );
    }
}
