//! Where results go: stdout or a file, buffered (a closed pipe comes back as an
//! [`miascan::Error::OutputIo`] of kind `BrokenPipe`, which `main` turns into a quiet exit 0,
//! as ripgrep does). Progress bars on stderr, only on a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

pub struct Output {
    name: PathBuf,
    w: Box<dyn Write>,
}

impl Output {
    /// `path`, or stdout when `None`.
    pub fn open(path: Option<&Path>) -> anyhow::Result<Output> {
        let name = path.map_or_else(|| PathBuf::from("<stdout>"), Path::to_path_buf);
        let w: Box<dyn Write> = match path {
            Some(p) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(p).map_err(miascan::Error::output(p))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout())),
        };
        Ok(Output { name, w })
    }

    fn check(&self, r: std::io::Result<()>) -> miascan::Result<()> {
        r.map_err(miascan::Error::output(&self.name))
    }

    /// One line, passed on at once: a reader in a pipe sees each result as it is made,
    /// not after a buffer fills (a flush per passage costs nothing beside its forward).
    pub fn line(&mut self, line: &str) -> miascan::Result<()> {
        let r = writeln!(self.w, "{line}").and_then(|()| self.w.flush());
        self.check(r)
    }

    pub fn text(&mut self, text: &str) -> miascan::Result<()> {
        let r = self.w.write_all(text.as_bytes());
        self.check(r)
    }

    pub fn finish(mut self) -> anyhow::Result<()> {
        let r = self.w.flush();
        Ok(self.check(r)?)
    }
}

/// A progress bar on stderr: count, rate and (with a total) ETA. Hidden when stderr is not
/// a terminal or when quiet.
pub struct Progress {
    bar: ProgressBar,
    unit: &'static str,
    started: std::time::Instant,
}

impl Progress {
    pub fn new(total: Option<u64>, unit: &'static str) -> Self {
        Progress::with(total, unit, false)
    }

    pub fn with(total: Option<u64>, unit: &'static str, quiet: bool) -> Self {
        let show = !quiet && std::io::stderr().is_terminal();
        let bar = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        bar.set_draw_target(if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let template = match total {
            Some(_) => format!(
                "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}}) {{msg}}"
            ),
            None => format!("{{spinner}} [{{elapsed_precise}}] {{pos}} {unit} ({{per_sec}}) {{msg}}"),
        };
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        Progress {
            bar,
            unit,
            started: std::time::Instant::now(),
        }
    }

    /// A bar over bytes read (its length set later, when known), for `scan`.
    pub fn bytes(quiet: bool) -> Self {
        let p = Progress::with(Some(0), "passages", quiet);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {msg}",
        ) {
            p.bar.set_style(style);
        }
        p
    }

    pub fn shown(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// A handle to the bar for another thread.
    pub fn handle(&self) -> ProgressBar {
        self.bar.clone()
    }

    /// Clears the bar and prints `line` (on a terminal only).
    pub fn done_with(&self, line: &str) {
        if !self.bar.is_hidden() {
            self.bar.finish_and_clear();
            eprintln!("{line}");
        }
    }

    pub fn tick(&self, done: usize) {
        self.bar.set_position(done as u64);
    }

    pub fn message(&self, m: String) {
        self.bar.set_message(m);
    }

    pub fn done(&self, n: usize) {
        self.done_with(&format!(
            "scored {n} {} in {:.1} s",
            self.unit,
            self.started.elapsed().as_secs_f64()
        ));
    }
}
