//! `deploy --build-mode remote`: the images are built on the target by its own
//! runtime. The base image is shipped (the target cannot pull it either), then each
//! service's build context goes over the session's stream as a reproducible tar.gz
//! into `build -`, with the build's output streamed back into the log.

use std::io::Write;

use anyhow::{Context, Result, bail};

use crate::host::runtime::{BuildSpec, ImageDetails, Runtime};
use crate::host::session::{Effect, Session};
use crate::images::context;
use crate::model::config::Config;
use crate::model::image::Image;
use crate::release::ship::{self, Inventory};
use crate::support::project::Project;

/// Builds every image on the target; returns the release's images and the bytes sent
/// (the base image, if shipped, and the contexts).
pub fn run(
    project: &Project,
    config: &Config,
    session: &Session,
    local_runtime: &Runtime,
    version: &str,
) -> Result<(Vec<Image>, u64)> {
    let log = session.log;
    let (base, specs) = crate::images::remote_build_specs(project, local_runtime, config, version)?;
    let mut sent = ship_base(project, session, local_runtime, &base.reference)?;
    let target_runtime = Runtime { kind: session.runtime, program: session.runtime.program().into() };

    let mut images = Vec::new();
    for (service, spec) in specs.into_iter().filter(|(service, _)| session.services().contains(service)) {
        let dockerfile = context::dockerfile_in_context(&spec)?;
        let reference = spec.tags.first().cloned().context("a build spec without a tag")?;
        let remote_spec = BuildSpec { dockerfile: dockerfile.clone().into(), context: "-".into(), ..spec.clone() };
        let cmd = target_runtime.build_cmd(&remote_spec);
        log.info(format!("{service}: building {reference} on {} from {}", session.name, spec.context.display()));
        if session.dry_run {
            session.run(Effect::Change, &cmd)?;
            continue;
        }
        let (mut reader, writer) = std::io::pipe().context("creating a pipe")?;
        let context_dir = spec.context.clone();
        let mut output = LogLines { log, prefix: format!("{service} build: "), pending: Vec::new() };
        let (archived, built) = std::thread::scope(|scope| {
            let archiver = scope.spawn(move || context::write_context(&context_dir, &dockerfile, writer));
            let built = session.stream(&cmd, Some(&mut reader), &mut output);
            drop(reader);
            (archiver.join(), built)
        });
        output.flush().ok();
        // An archive that failed part-way shows on the target as a truncated stream:
        // this machine's error comes first, the target's is a note.
        let summary = match archived {
            Ok(Ok(summary)) => summary,
            Ok(Err(err)) => {
                let note = built.err().map(|e| format!(" (the target said: {e:#})")).unwrap_or_default();
                return Err(err.context(format!("archiving {}{note}", spec.context.display())));
            }
            Err(_) => bail!("the thread archiving {} panicked", spec.context.display()),
        };
        built.with_context(|| format!("building {reference} on {}", session.name))?;
        sent += summary.compressed_bytes;
        let details = inspect(session, &reference)?;
        log.info(format!(
            "{service}: built {reference} on {} ({} files, {:.1} MB context sent)",
            session.name,
            summary.files,
            summary.compressed_bytes as f64 / 1e6
        ));
        images.push(details.to_image(service.name(), &reference));
    }
    Ok((images, sent))
}

/// Ships the base image when the target lacks it.
fn ship_base(project: &Project, session: &Session, local: &Runtime, reference: &str) -> Result<u64> {
    let details = local.inspect_image(reference)?.with_context(|| format!("{reference} is not on this machine"))?;
    let image = details.to_image("base", reference);
    let plan = ship::plan(&image, &Inventory::read(session)?);
    let shipped = ship::deliver(session, local, &image, &plan, &project.state_dir(), None)?;
    if shipped.sent_bytes > 0 {
        session.log.info(format!("base: sent {reference}, {:.1} MB", shipped.sent_bytes as f64 / 1e6));
    }
    Ok(shipped.sent_bytes)
}

fn inspect(session: &Session, reference: &str) -> Result<ImageDetails> {
    let text =
        session.run(Effect::Read, &session.runtime_cmd(["image", "inspect", "--format", "{{json .}}", reference]))?;
    serde_json::from_str(text.trim())
        .with_context(|| format!("reading `image inspect {reference}` on {}", session.name))
}

/// Forwards a stream into the log, line by line.
struct LogLines<'a> {
    log: &'a crate::support::log::Log,
    prefix: String,
    pending: Vec<u8>,
}

impl Write for LogLines<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            if !text.trim().is_empty() {
                self.log.info(format!("{}{}", self.prefix, text.trim_end()));
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            let text = String::from_utf8_lossy(&self.pending).trim_end().to_string();
            self.pending.clear();
            self.log.info(format!("{}{text}", self.prefix));
        }
        Ok(())
    }
}
