//! Download progress on stderr: a bar with bytes, speed and time left on a terminal, a line
//! per file otherwise (logs stay readable).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use super::Progress;

/// The display `agent` uses.
pub fn stderr_progress() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Bar(None))
    } else {
        Box::new(Lines)
    }
}

struct Bar(Option<ProgressBar>);

impl Progress for Bar {
    fn start(&mut self, file: &str, total: Option<u64>, done: u64) {
        if let Some(old) = self.0.take() {
            old.finish_and_clear();
        }
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::no_length(),
        };
        let style = ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(file.to_string());
        bar.set_position(done);
        bar.reset_eta();
        self.0 = Some(bar);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(b) = &self.0 {
            b.inc(bytes);
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.0.take() {
            b.finish_and_clear();
        }
    }
}

struct Lines;

impl Progress for Lines {
    fn start(&mut self, file: &str, total: Option<u64>, done: u64) {
        let size = total
            .map(|t| format!(" ({:.1} MB)", t as f64 / 1e6))
            .unwrap_or_default();
        let resume = if done > 0 {
            format!(", resuming at {:.1} MB", done as f64 / 1e6)
        } else {
            String::new()
        };
        eprintln!("agent: downloading {file}{size}{resume}");
    }

    fn advance(&mut self, _: u64) {}

    fn finish(&mut self) {}
}
