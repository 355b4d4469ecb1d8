//! Which targets a host task works on: `--host NAME` (repeatable), `--group NAME`
//! (a `[groups]` table of deploy.toml), or `--local`; and running one piece of work
//! on each of them, a bounded number at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Result, bail};

use crate::model::config::{CONFIG_FILE, Config};

/// `--host NAME …`, `--group NAME` or `--local`, shared by every task that works on
/// targets.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HostArgs {
    /// A name from [hosts] in deploy/deploy.toml, or [user@]host[:port]. Repeat it to
    /// work on several hosts.
    #[arg(long = "host", value_name = "HOST", required_unless_present_any = ["local", "group", "cluster"], conflicts_with = "local")]
    pub hosts: Vec<String>,
    /// Every host of a [groups] entry in deploy/deploy.toml (with any --host given).
    #[arg(long, value_name = "NAME", conflicts_with = "local")]
    pub group: Option<String>,
    /// A [clusters.NAME] swarm of deploy/deploy.toml.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["hosts", "group", "local"])]
    pub cluster: Option<String>,
    /// Work on this machine's engine, without SSH.
    #[arg(long)]
    pub local: bool,
}

/// One target: this machine, or a host as given to `--host` (a `[hosts]` name or an
/// SSH address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Local,
    Host(String),
}

impl Target {
    /// The name the target goes by in logs and the history.
    pub fn name(&self) -> &str {
        match self {
            Target::Local => "local",
            Target::Host(host) => host,
        }
    }

    pub fn host(&self) -> Option<&str> {
        match self {
            Target::Local => None,
            Target::Host(host) => Some(host),
        }
    }
}

impl HostArgs {
    /// One host (`--host NAME`), as the tests and single-host callers build it.
    pub fn host(name: &str) -> HostArgs {
        HostArgs { hosts: vec![name.to_string()], ..HostArgs::default() }
    }

    /// The targets, in the order given (the group's in its order), each once.
    pub fn targets(&self, config: &Config) -> Result<Vec<Target>> {
        if let Some(cluster) = &self.cluster {
            bail!(
                "--cluster {cluster} is not for this task, which works on hosts: pass a cluster's nodes with --host to \
                 work on them one by one"
            );
        }
        if self.local {
            return Ok(vec![Target::Local]);
        }
        let mut names: Vec<String> = self.hosts.clone();
        if let Some(group) = &self.group {
            let Some(members) = config.groups.get(group) else {
                let known: Vec<&str> = config.groups.keys().map(String::as_str).collect();
                if known.is_empty() {
                    bail!(
                        "no group `{group}`: {CONFIG_FILE} has no [groups] table; add `{group} = [\"host\", …]` there"
                    );
                }
                bail!("no group `{group}` in {CONFIG_FILE}; configured: {}", known.join(", "));
            };
            names.extend(members.iter().cloned());
        }
        let mut targets: Vec<Target> = Vec::new();
        for name in names {
            let target = Target::Host(name);
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        if targets.is_empty() {
            bail!("no target: pass --host NAME, --group NAME or --local");
        }
        Ok(targets)
    }

    /// The targets whose history and lock a task reads: a cluster's are its manager's
    /// (where its releases are recorded and its deploys locked), else [`Self::targets`].
    pub fn history_targets(&self, config: &Config) -> Result<Vec<Target>> {
        match &self.cluster {
            Some(name) => {
                let cluster = config.cluster(name)?;
                Ok(vec![Target::Host(cluster.manager.clone())])
            }
            None => self.targets(config),
        }
    }

    /// The one target of a task that works on one at a time.
    pub fn single(&self, config: &Config, task: &str) -> Result<Target> {
        let mut targets = self.targets(config)?;
        if targets.len() > 1 {
            let names: Vec<&str> = targets.iter().map(Target::name).collect();
            bail!("`{task}` works on one host at a time; {} were given: {}", names.len(), names.join(", "));
        }
        Ok(targets.remove(0))
    }
}

/// Runs `work` on each target (or each open session to one), at most `parallel` at
/// once, each on its own thread; the results in the targets' order. One target runs
/// on this thread.
pub fn each<I: Sync, T: Send>(targets: &[I], parallel: usize, work: impl Fn(&I) -> T + Sync) -> Vec<T> {
    match targets {
        [] => return Vec::new(),
        [one] => return vec![work(one)],
        _ => {}
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new(targets.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..parallel.clamp(1, targets.len()) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(target) = targets.get(index) else { break };
                    let result = work(target);
                    results.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(result);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().flatten().collect()
}

#[cfg(test)]
mod tests;
