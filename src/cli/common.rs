//! Argument groups shared by the commands that read passages and score them.

use super::ModelArgs;
use miascan::input::{read_inputs, Format, Passage, ReadOptions, STDIN};
use miascan::model::Model;
use miascan::scorer::{PassageResult, ScoreOptions, Scorer};
use std::io::IsTerminal;
use std::path::PathBuf;

/// How inputs are read.
#[derive(Debug, clap::Args)]
pub struct InputArgs {
    /// How to read inputs: auto (by extension: .jsonl/.ndjson are JSONL), text, jsonl.
    #[arg(long, default_value = "auto", value_parser = parse_format)]
    pub format: Format,
    /// JSONL field holding the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// JSONL field holding the passage id.
    #[arg(long, default_value = "id")]
    pub id_field: String,
}

fn parse_format(s: &str) -> Result<Format, String> {
    match s {
        "auto" => Ok(Format::Auto),
        "text" => Ok(Format::Text),
        "jsonl" => Ok(Format::Jsonl),
        _ => Err(format!("unknown format {s} (auto, text, jsonl)")),
    }
}

impl InputArgs {
    pub fn options(&self, label_field: Option<String>) -> ReadOptions {
        ReadOptions {
            format: self.format,
            text_field: self.text_field.clone(),
            id_field: self.id_field.clone(),
            label_field,
        }
    }

    /// Reads `inputs`, or stdin when none are given and stdin is not a terminal.
    pub fn read(
        &self,
        inputs: &[PathBuf],
        label_field: Option<String>,
    ) -> anyhow::Result<Vec<Passage>> {
        let mut inputs = inputs.to_vec();
        if inputs.is_empty() {
            if std::io::stdin().is_terminal() {
                anyhow::bail!(miascan::Error::Usage(
                    "no input: give files or directories, or pipe text on stdin".into()
                ));
            }
            inputs.push(PathBuf::from(STDIN));
        }
        Ok(read_inputs(&inputs, &self.options(label_field))?)
    }
}

/// Which scores to compute and how.
#[derive(Debug, clap::Args)]
pub struct ScoringArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Reference model (file, folder or hub id) scoring the same passages: adds `ref`
    /// (same vocabulary), `ref_mink_k` and `ref_bpb`.
    #[arg(long)]
    pub reference: Option<String>,
    /// Fraction(s) k for Min-K% and Min-K%++ (repeat or comma-separate).
    #[arg(long = "k", value_delimiter = ',', default_value = "0.2")]
    pub ks: Vec<f64>,
    /// Skip the lowercase score (saves its second forward pass).
    #[arg(long)]
    pub no_lowercase: bool,
    /// Window length in tokens for long passages (default and maximum: the model's context).
    #[arg(long)]
    pub max_context: Option<usize>,
    /// Tokens packed into one forward pass.
    #[arg(long, default_value_t = 2048)]
    pub batch_tokens: usize,
}

/// The models of a run, loaded once.
pub struct Models {
    pub target: Model,
    pub reference: Option<Model>,
}

impl ScoringArgs {
    /// Checks the options, sizes the thread pools and loads the models.
    pub fn load(&self) -> anyhow::Result<Models> {
        for &k in &self.ks {
            if !(k > 0.0 && k <= 1.0) {
                anyhow::bail!(miascan::Error::Usage(format!("--k {k}: must be in (0, 1]")));
            }
        }
        if self.batch_tokens == 0 || self.max_context.is_some_and(|c| c < 2) {
            anyhow::bail!(miascan::Error::Usage(
                "--batch-tokens must be >= 1 and --max-context >= 2".into()
            ));
        }
        self.model.setup_threads()?;
        let target = self.model.load()?;
        let reference = match &self.reference {
            Some(r) => Some(self.model.load_other(r)?),
            None => None,
        };
        Ok(Models { target, reference })
    }

    pub fn options(&self, token_details: bool) -> ScoreOptions {
        ScoreOptions {
            ks: self.ks.clone(),
            lowercase: !self.no_lowercase,
            max_context: self.max_context,
            batch_tokens: self.batch_tokens,
            token_details,
        }
    }
}

impl Models {
    pub fn scorer(&self, opts: ScoreOptions) -> Scorer<'_> {
        let s = Scorer::new(&self.target, opts);
        match &self.reference {
            Some(r) => s.with_reference(r),
            None => s,
        }
    }

    /// Scores every passage, with a progress line on a terminal.
    pub fn score_collect(
        &self,
        passages: &[Passage],
        opts: ScoreOptions,
    ) -> anyhow::Result<Vec<PassageResult>> {
        let mut out = Vec::with_capacity(passages.len());
        let progress = Progress::new(passages.len());
        self.scorer(opts).score_all(passages, |r| {
            progress.tick(out.len() + 1);
            out.push(r);
            Ok(())
        })?;
        progress.done();
        Ok(out)
    }
}

/// A progress line on stderr, only when stderr is a terminal.
pub struct Progress {
    total: usize,
    show: bool,
    started: std::time::Instant,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        Progress {
            total,
            show: std::io::stderr().is_terminal(),
            started: std::time::Instant::now(),
        }
    }

    pub fn tick(&self, done: usize) {
        if self.show {
            eprint!("\rscored {done}/{} passages", self.total);
        }
    }

    pub fn done(&self) {
        if self.show {
            eprintln!(
                "\rscored {} passages in {:.1} s",
                self.total,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}
