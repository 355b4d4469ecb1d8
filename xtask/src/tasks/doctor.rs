//! `cargo xtask doctor`: what this machine and a target have and lack. For each: the
//! OS and package manager, the container runtime and compose command against the
//! minimums, the deployment paths the path strategy chose, free disk there, whether
//! the configured ports are free, and every missing piece with its fix. With
//! `--install` it installs Docker and Compose (or brings Finch's VM up) on the target.
//! Several hosts (`--host a --host b`, `--group`) are checked at once. Exit status ≠ 0
//! while anything required is missing.

use std::time::Instant;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::host::report::{MachineReport, connect, machine_report};
use crate::host::selection::{self, HostArgs, Target};
use crate::host::swarm::ClusterReport;
use crate::host::transport::Transport;
use crate::model::certificate::LocalCertificates;
use crate::model::config::Config;
use crate::support::project::Project;

#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// A name from [hosts] in deploy/deploy.toml, or [user@]host[:port]. Repeat it to
    /// check several hosts.
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Every host of a [groups] entry in deploy/deploy.toml.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// Every node of a [clusters.NAME] swarm, and the swarm itself; with --install,
    /// forms it where it is not formed (init on the manager, join the others, label
    /// the data node).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["hosts", "group"])]
    pub cluster: Option<String>,
    /// Install Docker and Compose on the host when missing (as root or with sudo -n),
    /// or initialise/start Finch's VM on macOS.
    #[arg(long)]
    pub install: bool,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct DoctorReport {
    pub local: MachineReport,
    /// The one host checked (`--host NAME`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<MachineReport>,
    /// Each host checked, when there are several (`--host a --host b`, `--group`,
    /// `--cluster`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<MachineReport>,
    /// The swarm of `--cluster`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterReport>,
    /// With HTTPS on: the pair in `[http] cert_path`, checked as a deploy checks it.
    pub certificate: Option<CertificateCheck>,
    pub ok: bool,
    pub seconds: f64,
}

pub fn run(project: &Project, args: &DoctorArgs) -> Result<()> {
    let started = Instant::now();
    let config = Config::load(&project.config_file)?;
    let (mut local, mut hosts, cluster) = diagnose(&config, args)?;
    let now = crate::model::certificate::now();
    let certificate = match LocalCertificates::load(&config, now) {
        Ok(pair) => pair.map(|pair| CertificateCheck {
            path: pair.chain_path.display().to_string(),
            serial: pair.summary.serial.clone(),
            names: pair.summary.names.clone(),
            expires: pair.summary.expiry_date(),
            days_left: pair.summary.days_left(now),
            warning: pair.expiry_warning(now, config.http.cert_warn_days),
        }),
        Err(err) => {
            local.missing.push(format!("{err:#}"));
            None
        }
    };
    let ok = local.missing.is_empty()
        && hosts.iter().all(|h| h.missing.is_empty())
        && cluster.as_ref().is_none_or(|c| c.missing.is_empty());
    let host = if hosts.len() == 1 && cluster.is_none() { hosts.pop() } else { None };
    let report =
        DoctorReport { local, host, hosts, cluster, certificate, ok, seconds: started.elapsed().as_secs_f64() };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_machine(&report.local);
        if let Some(cert) = &report.certificate {
            println!(
                "  certificate: {} for {}, expires {} ({} days left)",
                cert.path,
                cert.names.join(", "),
                cert.expires,
                cert.days_left
            );
            if let Some(warning) = &cert.warning {
                println!("  warning:   {warning}");
            }
        }
        for host in report.host.iter().chain(&report.hosts) {
            print_machine(host);
        }
        if let Some(cluster) = &report.cluster {
            print_cluster(cluster);
        }
    }
    if !report.ok {
        bail!("something required is missing (see above)");
    }
    Ok(())
}

/// The local certificate pair, as `doctor` reports it.
#[derive(Debug, Serialize)]
pub struct CertificateCheck {
    pub path: String,
    pub serial: String,
    pub names: Vec<String>,
    /// `YYYY-MM-DD`.
    pub expires: String,
    pub days_left: i64,
    /// Set when it expires within `[http] cert_warn_days`.
    pub warning: Option<String>,
}

type Diagnosis = (MachineReport, Vec<MachineReport>, Option<ClusterReport>);

fn diagnose(config: &Config, args: &DoctorArgs) -> Result<Diagnosis> {
    if let Some(name) = &args.cluster {
        let cluster = config.cluster(name)?;
        let local = local_report(config, true);
        let transports = cluster.nodes.iter().map(|node| connect(config, node)).collect::<Result<Vec<_>>>()?;
        let reports = selection::each(
            &cluster.nodes.iter().cloned().map(Target::Host).collect::<Vec<_>>(),
            config.deploy.parallel as usize,
            |target| {
                let index = cluster.nodes.iter().position(|n| n == target.name()).unwrap_or(0);
                let transport = &transports[index];
                machine_report(
                    config,
                    transport,
                    target.name().to_string(),
                    config.hosts.get(target.name()),
                    args.install,
                )
                .unwrap_or_else(|err| {
                    MachineReport::undetected(target.name().to_string(), String::new(), format!("{err:#}"))
                })
            },
        );
        // The swarm only over nodes whose engine answers.
        let report = if reports.iter().all(|r| r.missing.is_empty()) {
            let refs: Vec<&Transport> = transports.iter().collect();
            Some(crate::host::swarm::examine(name, cluster, &refs, args.install)?)
        } else {
            None
        };
        for transport in &transports {
            transport.close();
        }
        return Ok((local, reports, report));
    }
    let selection = HostArgs { hosts: args.hosts.clone(), group: args.group.clone(), ..HostArgs::default() };
    let targets = if args.hosts.is_empty() && args.group.is_none() { Vec::new() } else { selection.targets(config)? };
    let local = local_report(config, !targets.is_empty());
    // Local prerequisites first: without ssh, no connection is attempted. Keys are
    // OpenSSH's business (~/.ssh/config, the agent, identity_file): a login that fails
    // for want of one is explained from what ssh would offer (see `transport`).
    let blocking: Vec<&String> = local.missing.iter().filter(|m| m.contains("(ssh)")).collect();
    if !targets.is_empty() && !blocking.is_empty() {
        let list: Vec<&str> = blocking.iter().map(|m| m.as_str()).collect();
        bail!("this machine cannot reach a host yet:\n  - {}", list.join("\n  - "));
    }
    let check = |target: &Target| -> Result<MachineReport> {
        let name = target.name();
        let transport = connect(config, name)?;
        let report = machine_report(config, &transport, transport.to_string(), config.hosts.get(name), args.install);
        transport.close();
        report
    };
    if let [target] = targets.as_slice() {
        return Ok((local, vec![check(target)?], None));
    }
    // Several hosts, checked at once; one that cannot be reached is reported as such.
    let reports = selection::each(&targets, config.deploy.parallel as usize, |target| {
        check(target).unwrap_or_else(|err| {
            MachineReport::undetected(target.name().to_string(), String::new(), format!("{err:#}"))
        })
    });
    Ok((local, reports, None))
}

/// This machine: what a target report says, plus the tools a deploy from here needs
/// (ssh when a host is involved; a runtime to build the images with).
fn local_report(config: &Config, needs_ssh: bool) -> MachineReport {
    let mut report = machine_report(config, &Transport::Local, "this machine".into(), None, false)
        .unwrap_or_else(|err| MachineReport::undetected("this machine".into(), String::new(), format!("{err:#}")));
    if needs_ssh && which::which("ssh").is_err() {
        report.missing.push("the OpenSSH client (ssh) is missing: `sudo apt-get install openssh-client`".to_string());
    }
    if let Err(err) = crate::host::runtime::Runtime::detect_local(None) {
        report.missing.push(format!("{err:#}"));
    }
    report
}

fn print_cluster(report: &ClusterReport) {
    println!("cluster {} (Docker Swarm)", report.name);
    for (node, state) in &report.nodes {
        let role = if state.manager { "manager" } else { "worker" };
        let id = if state.node_id.is_empty() { "-" } else { &state.node_id };
        println!("  {node:<16} {:<9} {role:<8} {id} {}", state.state, state.address);
    }
    println!("  data label: {}", if report.data_labelled { "on the data node only" } else { "not as configured" });
    for action in &report.actions {
        println!("  did:       {action}");
    }
    if report.missing.is_empty() {
        println!("  ok");
    }
    for problem in &report.missing {
        println!("  missing:   {problem}");
    }
}

fn print_machine(report: &MachineReport) {
    println!("{}", report.machine);
    match &report.os {
        Some(os) => println!("  os:        {os}"),
        None => println!("  os:        unknown"),
    }
    if !report.user.is_empty() {
        println!("  user:      {}", report.user);
    }
    if let Some(runtime) = &report.runtime {
        let version = runtime.engine.as_ref().map_or("missing".to_string(), |v| v.to_string());
        let engine = format!("{} {version}", runtime.runtime.program());
        let compose = runtime.compose.as_ref().map_or("missing".to_string(), |c| c.to_string());
        println!("  engine:    {engine}");
        println!("  compose:   {compose}");
    }
    if let Some(paths) = &report.paths {
        println!("  paths:     {} (logs {})", paths.base, paths.logs);
    }
    if let Some(bytes) = report.free_disk_bytes {
        println!("  free disk: {:.1} GB", bytes as f64 / 1e9);
    }
    if !report.ports_in_use.is_empty() {
        println!("  ports in use: {:?} (a deploy needs them free, or already ours)", report.ports_in_use);
    }
    for action in &report.actions {
        println!("  did:       {action}");
    }
    if report.missing.is_empty() {
        println!("  ok");
    }
    for problem in &report.missing {
        println!("  missing:   {}", problem.replace('\n', "\n             "));
    }
}
