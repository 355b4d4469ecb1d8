//! Docker Swarm membership of a cluster's nodes (`[clusters.NAME]`): what each node is
//! in the swarm, and forming it when it is not formed: `swarm init` on the manager,
//! `swarm join` on the others, the data node labelled. Command lines are values; the
//! transports given run them.

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::host::transport::Transport;
use crate::model::config::Cluster;
use crate::model::stack::DATA_LABEL;
use crate::support::command::Cmd;

/// One node's view of the swarm (`docker info`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeState {
    /// `inactive`, `pending`, `active`, `error` or `locked`.
    pub state: String,
    pub node_id: String,
    /// Whether it is a manager.
    pub manager: bool,
    /// The address it is known by in the swarm.
    pub address: String,
}

impl NodeState {
    pub fn is_member(&self) -> bool {
        self.state == "active"
    }
}

pub fn state_cmd() -> Cmd {
    Cmd::new("docker").args([
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.NodeID}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeAddr}}",
    ])
}

pub fn parse_state(text: &str) -> Result<NodeState> {
    // By position: a node outside any swarm has an empty id (two spaces in a row).
    let words: Vec<&str> = text.trim().split(' ').collect();
    let Some(state) = words.first().filter(|s| !s.is_empty()) else { bail!("`docker info` said nothing of the swarm") };
    Ok(NodeState {
        state: state.to_string(),
        node_id: words.get(1).unwrap_or(&"").to_string(),
        manager: words.get(2) == Some(&"true"),
        address: words.get(3).unwrap_or(&"").to_string(),
    })
}

/// The address other machines reach a node by: the source address of its default
/// route (a node's bridges, docker0 among them, are not reachable from elsewhere).
pub fn advertise_address_cmd() -> Cmd {
    Cmd::new("ip").args(["-4", "route", "get", "1.1.1.1"])
}

pub fn parse_route_source(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.by_ref().find(|w| *w == "src")?;
    words.next().filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok()).map(str::to_string)
}

pub fn init_cmd(address: &str) -> Cmd {
    Cmd::new("docker").args(["swarm", "init", "--advertise-addr", address])
}

pub fn join_token_cmd() -> Cmd {
    Cmd::new("docker").args(["swarm", "join-token", "-q", "worker"])
}

pub fn join_cmd(token: &str, manager_address: &str, address: &str) -> Cmd {
    Cmd::new("docker")
        .args(["swarm", "join", "--token", token, "--advertise-addr", address])
        .arg(format!("{manager_address}:2377"))
}

/// The swarm's nodes as the manager lists them: id, whether labelled for data, state.
pub fn nodes_cmd() -> Cmd {
    let format = format!("{{{{.ID}}}} {{{{index .Spec.Labels \"{DATA_LABEL}\"}}}} {{{{.Status.State}}}}");
    Cmd::new("sh").args(["-c", "docker node ls -q | xargs docker node inspect --format \"$1\"", "nodes", &format])
}

/// (node id, labelled for data, ready) of each node.
pub fn parse_nodes(text: &str) -> Vec<(String, bool, bool)> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let id = words.first()?.to_string();
            let labelled = words.len() == 3 && words[1] == "true";
            Some((id, labelled, words.last() == Some(&"ready")))
        })
        .collect()
}

pub fn label_cmd(node_id: &str, on: bool) -> Cmd {
    let change = if on { format!("{DATA_LABEL}=true") } else { DATA_LABEL.to_string() };
    let flag = if on { "--label-add" } else { "--label-rm" };
    Cmd::new("docker").args(["node", "update", flag, &change, node_id])
}

/// A cluster as its nodes report it.
#[derive(Debug, Serialize)]
pub struct ClusterReport {
    pub name: String,
    pub nodes: Vec<(String, NodeState)>,
    /// The data node carries the label, and no other does.
    pub data_labelled: bool,
    /// What `--install` did.
    pub actions: Vec<String>,
    /// What is missing, each with its fix.
    pub missing: Vec<String>,
}

/// Reads each node's swarm state and, with `form`, forms the swarm where it is not:
/// init on the manager, join the other nodes, label the data node. A node in another
/// swarm is reported, never moved. `transports` holds one per node of `cluster`, in
/// its order (the manager first).
pub fn examine(name: &str, cluster: &Cluster, transports: &[&Transport], form: bool) -> Result<ClusterReport> {
    let mut report = ClusterReport {
        name: name.to_string(),
        nodes: Vec::new(),
        data_labelled: false,
        actions: Vec::new(),
        missing: Vec::new(),
    };
    let read = |transport: &Transport| -> Result<NodeState> { parse_state(&transport.output(&state_cmd())?) };
    let manager = transports.first().context("a cluster has a manager")?;
    let mut manager_state = read(manager)?;
    if !manager_state.is_member() && form {
        let address = parse_route_source(&manager.output(&advertise_address_cmd())?)
            .with_context(|| format!("the address of {} (its default route's source)", cluster.manager))?;
        manager.output(&init_cmd(&address)).with_context(|| format!("`docker swarm init` on {}", cluster.manager))?;
        report.actions.push(format!("formed a swarm on {} (advertised at {address})", cluster.manager));
        manager_state = read(manager)?;
    }
    if !manager_state.is_member() || !manager_state.manager {
        report.missing.push(format!(
            "{} is not a swarm manager (state {}): `cargo xtask doctor --cluster {name} --install` forms the swarm",
            cluster.manager, manager_state.state
        ));
        report.nodes.push((cluster.manager.clone(), manager_state));
        return Ok(report);
    }
    let members = parse_nodes(&manager.output(&nodes_cmd())?);
    let mut token = None;
    report.nodes.push((cluster.manager.clone(), manager_state.clone()));
    for (node, transport) in cluster.nodes.iter().zip(transports).skip(1) {
        let mut state = read(transport)?;
        let ours = members.iter().any(|(id, _, _)| *id == state.node_id);
        if state.is_member() && !ours {
            report.missing.push(format!(
                "{node} is in another swarm: leave it there first (`docker swarm leave` on {node}), then run \
                 `cargo xtask doctor --cluster {name} --install`"
            ));
        } else if !state.is_member() && form {
            if token.is_none() {
                token = Some(manager.output(&join_token_cmd())?.trim().to_string());
            }
            let address = parse_route_source(&transport.output(&advertise_address_cmd())?)
                .with_context(|| format!("the address of {node} (its default route's source)"))?;
            let join = join_cmd(token.as_deref().unwrap_or_default(), &manager_state.address, &address);
            transport.output(&join).with_context(|| format!("`docker swarm join` on {node}"))?;
            report.actions.push(format!("{node} joined the swarm of {}", cluster.manager));
            state = read(transport)?;
        } else if !state.is_member() {
            report.missing.push(format!(
                "{node} is not in the swarm of {}: `cargo xtask doctor --cluster {name} --install` joins it",
                cluster.manager
            ));
        }
        report.nodes.push((node.clone(), state));
    }
    // The data label: on the data node, and on no other.
    let data_id = report.nodes.iter().find(|(n, _)| *n == cluster.data_node).map(|(_, s)| s.node_id.clone());
    let members = parse_nodes(&manager.output(&nodes_cmd())?);
    for (id, labelled, _) in &members {
        let wanted = Some(id) == data_id.as_ref();
        if *labelled != wanted {
            if form {
                manager.output(&label_cmd(id, wanted))?;
                if wanted {
                    report.actions.push(format!("labelled {} for data ({DATA_LABEL}=true)", cluster.data_node));
                } else {
                    report.actions.push(format!("removed {DATA_LABEL} from node {id}"));
                }
            } else {
                report.missing.push(format!(
                    "the data label ({DATA_LABEL}=true) is not on {} alone: `cargo xtask doctor --cluster {name} \
                     --install` sets it",
                    cluster.data_node
                ));
            }
        }
    }
    let members = parse_nodes(&manager.output(&nodes_cmd())?);
    report.data_labelled = members.iter().all(|(id, labelled, _)| *labelled == (Some(id) == data_id.as_ref()));
    for (id, _, ready) in &members {
        if !ready {
            report.missing.push(format!("swarm node {id} is not ready (`docker node ls` on {})", cluster.manager));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
