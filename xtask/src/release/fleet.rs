//! A host task on several targets at once: each target on its own thread (at most
//! `[deploy] parallel` at once) with its own log, so its lock, history and log on the
//! host are its own; one progress line per host on a terminal; then a table of what
//! each host did.

use std::time::Instant;

use anyhow::Result;

use crate::host::selection::{self, Target};
use crate::support::log::Log;

/// What one target's work came to.
pub struct HostOutcome<T> {
    pub target: Target,
    pub result: Result<T>,
    pub seconds: f64,
}

impl<T> HostOutcome<T> {
    pub fn name(&self) -> &str {
        self.target.name()
    }
}

/// Runs `work` on each target with the log it should use: `log` itself for a single
/// target (the task's usual output), else one log per host.
pub fn run_each<T: Send>(
    targets: &[Target],
    parallel: u32,
    log: &Log,
    work: impl Fn(&Target, &Log) -> Result<T> + Sync,
) -> Vec<HostOutcome<T>> {
    if let [target] = targets {
        let started = Instant::now();
        let result = work(target, log);
        return vec![HostOutcome { target: target.clone(), result, seconds: started.elapsed().as_secs_f64() }];
    }
    let progress = indicatif::MultiProgress::new();
    selection::each(targets, parallel as usize, |target| {
        let started = Instant::now();
        let host_log = Log::for_host(log.verbose(), target.name(), &progress);
        let result = work(target, &host_log);
        let seconds = started.elapsed().as_secs_f64();
        host_log.finish(&match &result {
            Ok(_) => format!("done in {seconds:.1} s"),
            Err(err) => format!("FAILED after {seconds:.1} s: {}", first_line(&format!("{err:#}"))),
        });
        HostOutcome { target: target.clone(), result, seconds }
    })
}

/// Runs `work` on each target in turn, on this thread: for tasks whose output is
/// printed host by host.
pub fn run_in_turn<T>(targets: &[Target], mut work: impl FnMut(&Target) -> Result<T>) -> Vec<HostOutcome<T>> {
    targets
        .iter()
        .map(|target| {
            let started = Instant::now();
            let result = work(target);
            HostOutcome { target: target.clone(), result, seconds: started.elapsed().as_secs_f64() }
        })
        .collect()
}

/// The first line of an error, for a table cell.
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// A table cell for a host's result: `ok`, or `FAILED: ` and the error's first line.
pub fn result_cell<T>(result: &Result<T>) -> String {
    match result {
        Ok(_) => "ok".to_string(),
        Err(err) => format!("FAILED: {}", first_line(&format!("{err:#}"))),
    }
}

/// A plain text table: a header row, then one row per entry, columns padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, width))| if i + 1 == cells.len() { cell.to_string() } else { format!("{cell:<width$}") })
            .collect();
        format!("  {}\n", padded.join("  ").trim_end())
    };
    let mut text = line(header.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

/// How a task with several targets ends: `Ok` when every host succeeded, else an
/// error naming each failed host and why. A single target's error is returned whole.
pub fn conclude<T>(task: &str, mut outcomes: Vec<HostOutcome<T>>) -> Result<()> {
    if outcomes.len() == 1 {
        return outcomes.remove(0).result.map(|_| ());
    }
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(|err| format!("{}: {}", o.name(), first_line(&format!("{err:#}")))))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    anyhow::bail!("{task} failed on {} of {} hosts:\n  {}", failed.len(), outcomes.len(), failed.join("\n  "))
}

#[cfg(test)]
mod tests;
