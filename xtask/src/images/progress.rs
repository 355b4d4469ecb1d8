//! One spinner per build step (indicatif) and a plain line when it ends, so logs
//! without a terminal still say what happened and how long it took.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Step {
    bar: ProgressBar,
    label: String,
    started: Instant,
}

impl Step {
    pub fn start(label: String) -> Step {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
            bar.set_style(style);
        }
        bar.set_message(label.clone());
        bar.enable_steady_tick(Duration::from_millis(120));
        if bar.is_hidden() {
            crate::support::log::say(format!("… {label}"));
        }
        Step { bar, label, started: Instant::now() }
    }

    pub fn elapsed_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn finish(self, outcome: &str) {
        self.bar.finish_and_clear();
        crate::support::log::say(format!("✓ {}: {outcome} ({:.1}s)", self.label, self.elapsed_seconds()));
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        // A step dropped unfinished failed: clear the spinner so the error reads cleanly.
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}
