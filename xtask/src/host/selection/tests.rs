use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

fn config() -> Config {
    let text = "[app]\nname = \"x\"\n[hosts.a]\naddress = \"a\"\nuser = \"u\"\n[hosts.b]\naddress = \"b\"\nuser = \"u\"\n\
                [hosts.c]\naddress = \"c\"\nuser = \"u\"\n[groups]\nprod = [\"b\", \"c\"]\n\
                [clusters.web]\nengine = \"swarm\"\nmanager = \"c\"\nnodes = [\"a\"]\n";
    Config::parse(text, "deploy.toml", &|_| None).unwrap()
}

fn names(targets: &[Target]) -> Vec<&str> {
    targets.iter().map(Target::name).collect()
}

#[test]
fn hosts_and_a_group_give_each_target_once_in_order() {
    let config = config();
    let args = HostArgs { hosts: vec!["a".into(), "c".into()], group: Some("prod".into()), ..HostArgs::default() };
    assert_eq!(names(&args.targets(&config).unwrap()), ["a", "c", "b"]);
    let group = HostArgs { group: Some("prod".into()), ..HostArgs::default() };
    assert_eq!(names(&group.targets(&config).unwrap()), ["b", "c"]);
    let local = HostArgs { local: true, ..HostArgs::default() };
    assert_eq!(local.targets(&config).unwrap(), [Target::Local]);
}

#[test]
fn an_unknown_group_names_the_configured_ones() {
    let args = HostArgs { group: Some("staging".into()), ..HostArgs::default() };
    let message = args.targets(&config()).unwrap_err().to_string();
    assert_eq!(message, "no group `staging` in deploy/deploy.toml; configured: prod");
    let bare = Config::parse("[app]\nname = \"x\"\n", "deploy.toml", &|_| None).unwrap();
    let message = args.targets(&bare).unwrap_err().to_string();
    assert!(message.contains("has no [groups] table"), "{message}");
}

#[test]
fn a_one_host_task_refuses_several() {
    let args = HostArgs { group: Some("prod".into()), ..HostArgs::default() };
    let message = args.single(&config(), "restore").unwrap_err().to_string();
    assert_eq!(message, "`restore` works on one host at a time; 2 were given: b, c");
    assert_eq!(HostArgs::host("a").single(&config(), "restore").unwrap(), Target::Host("a".into()));
}

#[test]
fn each_runs_every_target_at_most_parallel_at_once_and_keeps_the_order() {
    let targets: Vec<Target> = (0..7).map(|i| Target::Host(format!("h{i}"))).collect();
    let running = AtomicUsize::new(0);
    let most = AtomicUsize::new(0);
    let results = each(&targets, 3, |target| {
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        running.fetch_sub(1, Ordering::SeqCst);
        target.name().to_uppercase()
    });
    assert_eq!(results, ["H0", "H1", "H2", "H3", "H4", "H5", "H6"]);
    assert_eq!(most.load(Ordering::SeqCst), 3, "three at once, never more");
    assert!(each(&[], 3, |t: &Target| t.name().len()).is_empty(), "no target, no work (and no panic)");
    let one = each(&targets[..1], 3, |_| std::thread::current().id());
    assert_eq!(one, [std::thread::current().id()], "a single target runs on the caller's thread");
}

#[test]
fn a_clusters_history_is_its_managers() {
    let config = config();
    let cluster = HostArgs { cluster: Some("web".into()), ..HostArgs::default() };
    assert_eq!(names(&cluster.history_targets(&config).unwrap()), ["c"]);
    let message = cluster.targets(&config).unwrap_err().to_string();
    assert!(message.contains("--cluster web is not for this task") && message.contains("--host"), "{message}");
    let unknown = HostArgs { cluster: Some("db".into()), ..HostArgs::default() };
    assert!(unknown.history_targets(&config).unwrap_err().to_string().contains("no cluster `db`"));
}
