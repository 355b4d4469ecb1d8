//! Benchmark: the other way to ship only what a host lacks, a temporary registry on the
//! host reached over an SSH forward (Kamal 2.8's local registry, unregistry), against
//! the xtask's archives of missing layers, in the same run, each on a fresh Docker 28
//! host (classic store) of its own.
//!
//!     cargo run -p cultivate-tests --example bench_registry
//!
//! Registry path, per deploy: `docker push` of the three images here to
//! `127.0.0.1:PORT`, which a counting proxy relays into `ssh -L` to the host's
//! `docker-registry` (Debian's Distribution 2.8 on loopback, no logins; started once
//! beforehand, not timed),
//! then `docker pull` and `docker tag` on the host. The xtask path: `cargo xtask deploy`,
//! of which the ship phase is shown (the registry path starts nothing). Prints MB over
//! the wire (the proxy's count, both directions; the xtask's compressed bytes) and
//! seconds for a first deploy, a redeploy with nothing changed and a backend-only change
//! (a new 2 MB layer of random bytes). Needs a Docker engine and the images.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cultivate_tests::deploy::{DeployConfig, built_manifest_path, derived_version};
use cultivate_tests::hosts::{Engine, HostVariant, TestHost};
use xtask::images::{Manifest, read_manifest};

/// The registry's port inside the host (Debian's default config).
const REGISTRY_PORT: u16 = 5000;

fn main() {
    cultivate_tests::require_engine();
    let v1 = built_manifest_path();
    let v2 = derived_version("bench-v2", "RUN head -c 2000000 /dev/urandom > /tmp/cultivate-bench-binary\n")
        .expect("v2 images");
    let manifests = [read_manifest(&v1).expect("v1 manifest"), read_manifest(&v2).expect("v2 manifest")];

    let registry_host = TestHost::start(HostVariant::Engine(Engine::Docker28), false).expect("test host");
    let xtask_host = TestHost::start(HostVariant::Engine(Engine::Docker28), false).expect("test host");
    let registry = Registry::start(&registry_host);
    let config = DeployConfig::new(&xtask_host, "").expect("config");

    let steps: [(&str, &Path, &Manifest); 3] = [
        ("first deploy", &v1, &manifests[0]),
        ("redeploy, nothing changed", &v1, &manifests[0]),
        ("deploy, backend changed", &v2, &manifests[1]),
    ];
    let mut rows = Vec::new();
    for (step, path, manifest) in steps {
        eprintln!("== {step}");
        let (registry_seconds, registry_mb) = registry.ship(manifest);
        let ran =
            config.run(&["deploy", "--host", "e2e", "--manifest", &path.to_string_lossy(), "--yes"]).expect("deploy");
        assert!(ran.success, "deploy failed: {}", ran.all());
        let ship_seconds = ship_seconds(&ran.stdout).expect("the ship phase in the summary's time line");
        rows.push((step, registry_seconds, registry_mb, ship_seconds, ran.shipped_mb().expect("shipped bytes")));
    }

    println!("\nShipping images to a Docker 28 host over SSH on loopback (2 cores)\n");
    println!("{:<28} {:>14} {:>12} {:>14} {:>10}", "step", "registry time", "registry MB", "xtask ship", "xtask MB");
    for (step, registry_seconds, registry_mb, ship, xtask_mb) in rows {
        println!("{step:<28} {registry_seconds:>13.1}s {registry_mb:>12.2} {ship:>13.1}s {xtask_mb:>10.2}");
    }
}

/// `ship N s` from the deploy summary's `time:` line.
fn ship_seconds(stdout: &str) -> Option<f64> {
    let line = stdout.lines().find(|l| l.trim_start().starts_with("time:"))?;
    let after = line.split("ship ").nth(1)?;
    after.split(" s").next()?.trim().parse().ok()
}

/// A registry on the host, reached through `ssh -L` behind a proxy that counts bytes.
struct Registry<'a> {
    host: &'a TestHost,
    port: u16,
    bytes: Arc<AtomicU64>,
    forward: Child,
}

impl<'a> Registry<'a> {
    fn start(host: &'a TestHost) -> Registry<'a> {
        let started = host
            .ssh(
                "root",
                // Debian's config asks for htpasswd logins; a registry reached only through
                // the SSH forward needs none (as unregistry's).
                "printf 'version: 0.1\\nstorage:\\n  filesystem:\\n    rootdirectory: /var/lib/docker-registry\\n\
                 http:\\n  addr: 127.0.0.1:5000\\n' >/tmp/registry.yml; \
                 nohup docker-registry serve /tmp/registry.yml >/var/log/registry.log 2>&1 </dev/null & \
                 i=0; until ss -Hltn 'sport = :5000' | grep -q .; do \
                 i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done",
            )
            .expect("ssh");
        assert!(started.status.success(), "docker-registry did not start: {started:?}");

        let forward_port = free_port();
        let mut args = host.ssh_args("root");
        let destination = args.pop().expect("destination");
        args.extend([
            "-N".to_string(),
            "-o".to_string(),
            "ExitOnForwardFailure=yes".to_string(),
            "-L".to_string(),
            format!("127.0.0.1:{forward_port}:127.0.0.1:{REGISTRY_PORT}"),
            destination,
        ]);
        let forward = Command::new(&args[0]).args(&args[1..]).stdin(Stdio::null()).spawn().expect("ssh -L");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", forward_port)).is_err() {
            assert!(Instant::now() < deadline, "the SSH forward never listened");
            std::thread::sleep(Duration::from_millis(100));
        }

        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let bytes = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&bytes);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", forward_port)) else { continue };
                relay(client, upstream, Arc::clone(&counter));
            }
        });
        Registry { host, port, bytes, forward }
    }

    /// Pushes the manifest's images here, pulls and tags them there; (seconds, MB).
    fn ship(&self, manifest: &Manifest) -> (f64, f64) {
        let before = self.bytes.load(Ordering::Relaxed);
        let started = Instant::now();
        for image in &manifest.images {
            let pushed = format!("127.0.0.1:{}/{}", self.port, image.reference);
            let pulled = format!("127.0.0.1:{REGISTRY_PORT}/{}", image.reference);
            run(Command::new("docker").args(["tag", &image.reference, &pushed]));
            run(Command::new("docker").args(["push", &pushed]));
            let output = self
                .host
                .ssh("root", &format!("docker pull -q {pulled} && docker tag {pulled} {}", image.reference))
                .expect("ssh");
            assert!(output.status.success(), "pull on the host failed: {output:?}");
            run(Command::new("docker").args(["rmi", &pushed]));
        }
        let seconds = started.elapsed().as_secs_f64();
        (seconds, (self.bytes.load(Ordering::Relaxed) - before) as f64 / 1e6)
    }
}

impl Drop for Registry<'_> {
    fn drop(&mut self) {
        let _ = self.forward.kill();
        let _ = self.forward.wait();
    }
}

fn run(command: &mut Command) {
    let output = command.output().expect("running docker");
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port()
}

/// Copies both ways between `client` and `upstream`, counting every byte.
fn relay(client: TcpStream, upstream: TcpStream, bytes: Arc<AtomicU64>) {
    let pairs = [(client.try_clone().expect("clone"), upstream.try_clone().expect("clone")), (upstream, client)];
    for (mut from, mut to) in pairs {
        let bytes = Arc::clone(&bytes);
        std::thread::spawn(move || {
            let mut buffer = vec![0; 1 << 16];
            loop {
                match from.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                        bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    }
}
