//! The database: socket-only, peer authentication, data that outlives its container.

use std::time::Duration;

use cultivate_tests::{Resource, Stack, exec, listening_tcp_ports, require_engine, run_database, wait_healthy};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

const SOCKET: &str = "/var/run/postgresql/.s.PGSQL.5432";

fn psql_as(container: &str, user: &str, sql: &str) -> std::process::Output {
    exec(
        container,
        Some(user),
        &["psql", "-h", "/var/run/postgresql", "-U", "apiuser", "-d", "cultivate", "-XAtc", sql],
    )
    .expect("docker exec psql")
}

// Property 9: socket file creation — and the database listens on no TCP port.
#[test]
fn property_9_socket_in_shared_volume_and_no_tcp_listener() {
    require_engine();
    let stack = Stack::shared();
    let socket = exec(&stack.database, None, &["test", "-S", SOCKET]).unwrap();
    assert!(socket.status.success(), "no socket file {SOCKET} in the database container");
    let ports = listening_tcp_ports(&stack.database).unwrap();
    assert!(ports.is_empty(), "the database listens on TCP ports {ports:?}");
}

// Property 5: Unix socket connectivity — the backend reaches the database only through
// the socket file in the shared volume.
#[test]
fn property_5_backend_reaches_database_through_the_socket_volume() {
    require_engine();
    let stack = Stack::shared();
    let socket = exec(&stack.backend, None, &["test", "-S", SOCKET]).unwrap();
    assert!(socket.status.success(), "the backend does not see {SOCKET} in the shared volume");

    let ready = cultivate_tests::get(&stack.url("/health/ready")).unwrap();
    assert_eq!(ready.status, 200, "backend not ready: {}", ready.text());
    // With no TCP listener in the database (Property 9), readiness can only have come
    // through the socket; and the backend holds no TCP connection to port 5432.
    let tcp = exec(&stack.backend, None, &["cat", "/proc/net/tcp", "/proc/net/tcp6"]).unwrap();
    let to_postgres_port = String::from_utf8_lossy(&tcp.stdout)
        .lines()
        .filter(|line| line.split_whitespace().nth(2).is_some_and(|remote| remote.ends_with(":1538")))
        .count();
    assert_eq!(to_postgres_port, 0, "the backend has TCP connections to port 5432");
    let env = cultivate_tests::docker(["inspect", "--format", "{{json .Config.Env}}", &stack.backend]).unwrap();
    assert!(env.contains("host=/var/run/postgresql"), "DATABASE_URL is not a socket URL: {env}");
}

// Property 7: peer authentication mapping — a connection succeeds if and only if the
// OS user is apiuser (uid 1001). Every other uid gets group 1001, so it can reach the
// socket and it is peer authentication itself that refuses it.
#[test]
fn property_7_only_uid_1001_connects_as_apiuser() {
    require_engine();
    let stack = Stack::shared();
    let mut runner = TestRunner::new(Config { cases: 100, failure_persistence: None, ..Config::default() });
    let uids = prop_oneof![Just(1001u32), Just(0u32), Just(999u32), 0u32..70_000];
    runner
        .run(&uids, |uid| {
            let output = psql_as(&stack.database, &format!("{uid}:1001"), "select current_user");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            if uid == 1001 {
                prop_assert!(output.status.success(), "uid 1001 was refused: {stderr}");
                prop_assert_eq!(stdout.trim(), "apiuser");
            } else {
                prop_assert!(!output.status.success(), "uid {uid} connected as apiuser: {stdout}");
                prop_assert!(stderr.contains("authentication failed"), "uid {uid}: unexpected error {stderr}");
            }
            Ok(())
        })
        .unwrap();
}

// Property 8: password authentication rejection — over the socket as a user other than
// apiuser, and over TCP, any password is refused.
#[test]
fn property_8_passwords_are_never_accepted() {
    require_engine();
    let stack = Stack::shared();
    let mut runner = TestRunner::new(Config { cases: 100, failure_persistence: None, ..Config::default() });
    runner
        .run(&"[a-zA-Z0-9!#%+,.:=?@^_~-]{0,24}", |password| {
            let script = format!(
                "PGPASSWORD='{password}' psql -h /var/run/postgresql -U apiuser -d cultivate -w -XAtc 'select 1' 2>&1; \
                 echo \"socket=$?\"; \
                 PGPASSWORD='{password}' psql -h 127.0.0.1 -U apiuser -d cultivate -w -XAtc 'select 1' 2>&1; \
                 echo \"tcp=$?\""
            );
            let output = exec(&stack.database, Some("0"), &["sh", "-c", &script]).unwrap();
            let text = String::from_utf8_lossy(&output.stdout);
            prop_assert!(text.contains("socket=2"), "socket login with a password did not fail: {text}");
            prop_assert!(text.contains("Peer authentication failed"), "{text}");
            prop_assert!(text.contains("tcp=2"), "TCP login did not fail: {text}");
            prop_assert!(text.contains("Connection refused"), "{text}");
            Ok(())
        })
        .unwrap();
}

// Property 10: volume persistence after container removal — rows written through the
// socket survive removing the database container and starting a new one on the same
// volumes.
#[test]
fn property_10_rows_survive_recreating_the_database_container() {
    require_engine();
    let network = Resource::network("p10-net").unwrap();
    let socket = Resource::volume("p10-socket").unwrap();
    let data = Resource::volume("p10-data").unwrap();

    let mut runner = TestRunner::new(Config { cases: 100, ..Config::default() });
    let rows: Vec<String> =
        proptest::collection::vec("[a-zA-Z0-9 ]{0,40}", 100).new_tree(&mut runner).unwrap().current();

    let first = run_database(&network.name, &socket.name, &data.name).unwrap();
    wait_healthy(&first.name, Duration::from_secs(120)).unwrap();
    let values: Vec<String> = rows.iter().enumerate().map(|(i, row)| format!("({i}, '{row}')")).collect();
    let setup = format!(
        "create table probe (n int primary key, v text not null); insert into probe values {};",
        values.join(",")
    );
    let created = psql_as(&first.name, "1001:1001", &setup);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    drop(first); // docker rm -f -v: removes the container and anonymous volumes only

    let second = run_database(&network.name, &socket.name, &data.name).unwrap();
    wait_healthy(&second.name, Duration::from_secs(120)).unwrap();
    let read = psql_as(&second.name, "1001:1001", "select v from probe order by n");
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let stored: Vec<String> = String::from_utf8_lossy(&read.stdout).lines().map(str::to_string).collect();
    assert_eq!(stored, rows, "rows changed after recreating the database container");
}

#[test]
fn database_runs_as_postgres_not_root() {
    require_engine();
    let stack = Stack::shared();
    let status = exec(&stack.database, None, &["cat", "/proc/1/status"]).unwrap();
    let uid_line =
        String::from_utf8_lossy(&status.stdout).lines().find(|l| l.starts_with("Uid:")).unwrap_or("").to_string();
    assert!(uid_line.split_whitespace().skip(1).all(|uid| uid == "999"), "database process ids: {uid_line}");
}

// POSTGRES_USER and POSTGRES_DB name the role and database; OS user apiuser (uid 1001)
// reaches that role by peer authentication, and still nobody else does.
#[test]
fn configured_role_and_database_are_created_and_mapped_to_apiuser() {
    require_engine();
    let socket = Resource::volume("role-socket").unwrap();
    let data = Resource::volume("role-data").unwrap();
    let database = Resource::container(
        "role-db",
        &cultivate_tests::strings(&[
            "-e",
            "POSTGRES_USER=cultivator",
            "-e",
            "POSTGRES_DB=garden",
            "-v",
            &format!("{}:/var/run/postgresql", socket.name),
            "-v",
            &format!("{}:/var/lib/postgresql/data", data.name),
            &cultivate_tests::image(xtask::images::Service::Database),
        ]),
    )
    .unwrap();
    wait_healthy(&database.name, Duration::from_secs(120)).unwrap();
    let query = [
        "psql",
        "-h",
        "/var/run/postgresql",
        "-U",
        "cultivator",
        "-d",
        "garden",
        "-XAtc",
        "select current_user || '@' || current_database()",
    ];
    let as_apiuser = exec(&database.name, Some("1001:1001"), &query).unwrap();
    assert!(as_apiuser.status.success(), "{}", String::from_utf8_lossy(&as_apiuser.stderr));
    assert_eq!(String::from_utf8_lossy(&as_apiuser.stdout).trim(), "cultivator@garden");
    let as_root = exec(&database.name, Some("0"), &query).unwrap();
    assert!(!as_root.status.success());
    assert!(String::from_utf8_lossy(&as_root.stderr).contains("Peer authentication failed"));
}
