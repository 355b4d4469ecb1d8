//! The JSON record of what `images` built: one file per version plus `latest.json`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::backend::BackendPath;
use super::base::BaseImage;
use crate::host::runtime::RuntimeKind;
use crate::model::service::Service;
use crate::support::log::now_rfc3339;
use crate::support::project::{Project, host_name};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: String,
    pub revision: String,
    pub runtime: RuntimeKind,
    pub build_host: String,
    pub built_at: String,
    pub base: BaseImage,
    pub images: Vec<ImageRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub service: Service,
    pub image: String,
    pub tag: String,
    /// `image:tag`
    pub reference: String,
    /// Image id (the config digest in the classic image store).
    pub id: String,
    /// Layer diff_ids, base first.
    pub layers: Vec<String>,
    pub size_bytes: u64,
    pub build_seconds: f64,
    /// The build produced the image the tag already pointed at (every layer cached).
    pub unchanged: bool,
    pub built_at: String,
    pub build_host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_build: Option<BackendPath>,
    pub log: String,
}

/// `sha256:` and 64 lowercase hex digits.
pub fn is_sha256_digest(text: &str) -> bool {
    text.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

pub fn path(project: &Project, version: &str) -> PathBuf {
    project.state_dir().join("images").join(format!("{version}.json"))
}

pub fn latest_path(project: &Project) -> PathBuf {
    project.state_dir().join("images").join("latest.json")
}

impl Manifest {
    pub fn new(
        version: &str,
        revision: &str,
        runtime: RuntimeKind,
        base: &BaseImage,
        images: Vec<ImageRecord>,
    ) -> Self {
        Manifest {
            version: version.to_string(),
            revision: revision.to_string(),
            runtime,
            build_host: host_name(),
            built_at: now_rfc3339(),
            base: base.clone(),
            images,
        }
    }

    /// With `--only`, keeps the records of the services this run did not rebuild.
    pub fn merged_with_previous(mut self, previous: &Path) -> Manifest {
        if let Ok(previous) = Manifest::read(previous) {
            for record in previous.images {
                if !self.images.iter().any(|image| image.service == record.service) {
                    self.images.push(record);
                }
            }
            self.images.sort_by_key(|image| image.service);
        }
        self
    }

    pub fn image(&self, service: Service) -> Option<&ImageRecord> {
        self.images.iter().find(|image| image.service == service)
    }

    pub fn read(path: &Path) -> Result<Manifest> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("no image manifest at {} (run `cargo xtask images` first)", path.display()))?;
        let manifest: Manifest =
            serde_json::from_str(&text).with_context(|| format!("reading the image manifest {}", path.display()))?;
        manifest.validate().with_context(|| {
            format!(
                "the image manifest {} cannot be deployed: pass a manifest written by `cargo xtask images`, or \
                 rebuild with `cargo xtask images`",
                path.display()
            )
        })?;
        Ok(manifest)
    }

    /// Everything a manifest hands to a deploy becomes a path on a host, a tag or an
    /// argument of a remote command: it is checked like the same value given on the
    /// command line (the version like `--version`).
    pub fn validate(&self) -> Result<()> {
        crate::model::image::validate_tag(&self.version).context("its `version`")?;
        for record in &self.images {
            let service = record.service;
            crate::model::config::check_image_repository(&record.image)
                .map_err(|why| anyhow::anyhow!("{service}: `image` {:?} {why}", record.image))?;
            crate::model::image::validate_tag(&record.tag).with_context(|| format!("{service}: its `tag`"))?;
            let expected = format!("{}:{}", record.image, record.tag);
            if record.reference != expected {
                anyhow::bail!("{service}: `reference` {:?} is not `image:tag` ({expected:?})", record.reference);
            }
            for (field, digest) in
                std::iter::once(("id", &record.id)).chain(record.layers.iter().map(|l| ("layers", l)))
            {
                if !is_sha256_digest(digest) {
                    anyhow::bail!("{service}: `{field}` {digest:?} is not a sha256:<64 hex digits> digest");
                }
            }
        }
        Ok(())
    }

    /// Writes `<version>.json` and `latest.json`; returns the first path.
    pub fn write(&self, project: &Project) -> Result<PathBuf> {
        let json = serde_json::to_string_pretty(self)?;
        let versioned = path(project, &self.version);
        if let Some(dir) = versioned.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        fs::write(&versioned, &json).with_context(|| format!("writing {}", versioned.display()))?;
        let latest = latest_path(project);
        fs::write(&latest, &json).with_context(|| format!("writing {}", latest.display()))?;
        Ok(versioned)
    }

    /// A table of the images: reference, size, build time, and whether the cache
    /// made the build a no-op.
    pub fn summary_table(&self) -> String {
        let mut table = format!("{:<14} {:<44} {:>9} {:>8}  {}\n", "service", "image", "size", "time", "result");
        for image in &self.images {
            table.push_str(&format!(
                "{:<14} {:<44} {:>6.1} MB {:>7.1}s  {}\n",
                image.service.name(),
                image.reference,
                image.size_bytes as f64 / 1_000_000.0,
                image.build_seconds,
                if image.unchanged { "unchanged (cache)" } else { "built" },
            ));
        }
        table.push_str(&format!("base: {} ({:?})", self.base.reference, self.base.origin));
        table
    }
}
