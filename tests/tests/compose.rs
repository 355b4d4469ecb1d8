//! Every rendered compose file is accepted by the real Compose: `docker-compose` (v1)
//! always, `docker compose` (v2) where this machine has it. Both OSes, HTTPS on and
//! off, secrets, and deployment paths with spaces and quotes.

use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::model::compose::{self, RenderInput};
use xtask::model::config::Config;
use xtask::model::paths::DeploymentPaths;
use xtask::model::platform::{LinuxEngine, TargetOs};

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cases() -> Vec<(String, TargetOs, String)> {
    let https = "[http]\nhttps = true\ncert_path = \"/etc/cultivate/my certs\"\n";
    let mut cases = Vec::new();
    for os in [TargetOs::Linux, TargetOs::Macos] {
        let home = if os == TargetOs::Linux { "/srv" } else { "/Users/ada" };
        let odd_path = format!("[paths]\ndeployment = \"{home}/my app/it's \\\"quoted\\\"\"\n");
        for (label, extra) in [
            ("http", String::new()),
            ("https", https.to_string()),
            ("odd-path", odd_path.clone()),
            ("https-odd-path", format!("{https}{odd_path}")),
        ] {
            cases.push((format!("{os}-{label}"), os, format!("[app]\nname = \"cultivate\"\n{extra}")));
        }
    }
    cases
}

fn write_release(dir: &Path, os: TargetOs, text: &str) -> DeploymentPaths {
    let config = Config::parse(text, "case", &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let paths = DeploymentPaths::resolve(os, "ada", &config, None).unwrap();
    let secrets = vec!["api_token".to_string()];
    let mut rendered = compose::render(RenderInput {
        config: &config,
        paths: &paths,
        engine: LinuxEngine::Docker,
        version: "0ca9c96",
        images: &[],
        secrets: &secrets,
        start_interval: false,
    });
    // A deploy names the directory holding the secrets' content; here, the scratch one.
    for (key, value) in rendered.env.vars.iter_mut() {
        if key == "SECRETS_PATH" {
            *value = dir.join("secrets").to_string_lossy().into_owned();
        }
    }
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/api_token"), "not-a-real-token\n").unwrap();
    std::fs::write(dir.join("docker-compose.yml"), rendered.compose_yaml()).unwrap();
    std::fs::write(dir.join(".env"), rendered.env.render()).unwrap();
    paths
}

fn compose_v2_available() -> bool {
    Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn real_compose_accepts_every_render() {
    let v1 = Command::new("docker-compose").arg("version").output();
    assert!(
        v1.as_ref().is_ok_and(|o| o.status.success()),
        "docker-compose (v1) is needed to check the rendered files: install it (`apt-get install docker-compose`, \
         or `cargo xtask verify --install`): {v1:?}"
    );
    let v2 = compose_v2_available();
    if !v2 {
        eprintln!("note: `docker compose` (v2) is not installed here; checking with docker-compose v1 only");
    }
    for (label, os, text) in cases() {
        let scratch = Scratch(std::env::temp_dir().join(format!("cultivate-compose-{}-{label}", std::process::id())));
        let paths = write_release(&scratch.0, os, &text);
        let deployment = &paths.base;

        let v1 = Command::new("docker-compose")
            .args(["--project-name", "cultivate", "config"])
            .current_dir(&scratch.0)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .unwrap();
        let resolved = String::from_utf8_lossy(&v1.stdout);
        assert!(
            v1.status.success(),
            "{label}: docker-compose rejected the render:\n{}",
            String::from_utf8_lossy(&v1.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&v1.stderr).contains("WARNING"),
            "{label}: {}",
            String::from_utf8_lossy(&v1.stderr)
        );
        // Interpolation went through with the env file's values, quotes and spaces intact.
        assert!(!resolved.contains("${"), "{label}: uninterpolated variables:\n{resolved}");
        if os == TargetOs::Linux {
            assert!(resolved.contains(&format!("source: {deployment}/volumes/db_data")), "{label}:\n{resolved}");
        }
        // The host's certificates directory (where a deploy installs `[http] cert_path`'s
        // pair), under the odd deployment path too.
        if label.contains("https") {
            assert!(resolved.contains(&format!("source: {}", paths.certs())), "{label}:\n{resolved}");
        }

        if v2 {
            let output = Command::new("docker")
                .args(["compose", "--project-name", "cultivate", "config", "-q"])
                .current_dir(&scratch.0)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{label}: docker compose v2 rejected it:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
