//! `miascan score`: passages in, one JSON line (or a table row) per passage out.

use super::ModelArgs;
use miascan::input::{read_inputs, Format, ReadOptions, STDIN};
use miascan::report;
use miascan::scorer::{ScoreOptions, Scorer};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Text files (one passage each), JSONL files (one per line), directories (every file
    /// below, sorted), or - for stdin. Default: stdin.
    pub inputs: Vec<PathBuf>,
    /// How to read inputs: auto (by extension: .jsonl/.ndjson are JSONL), text, jsonl.
    #[arg(long, default_value = "auto", value_parser = parse_format)]
    pub format: Format,
    /// JSONL field holding the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// JSONL field holding the passage id.
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// Write JSONL here instead of stdout.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Print a table for people instead of JSONL.
    #[arg(long)]
    pub table: bool,
    /// Fraction(s) k for Min-K% and Min-K%++ (repeat or comma-separate).
    #[arg(long = "k", value_delimiter = ',', default_value = "0.2")]
    pub ks: Vec<f64>,
    /// Skip the lowercase score (saves its second forward pass).
    #[arg(long)]
    pub no_lowercase: bool,
    /// Add per-token arrays: token_ids, tokens, token_logprobs, token_mu, token_sigma.
    #[arg(long)]
    pub token_logprobs: bool,
    /// Window length in tokens for long passages (default and maximum: the model's context).
    #[arg(long)]
    pub max_context: Option<usize>,
    /// Reference model (file, folder or hub id) scoring the same passages: adds `ref`
    /// (same vocabulary), `ref_mink_k` and `ref_bpb`.
    #[arg(long)]
    pub reference: Option<String>,
    /// Tokens packed into one forward pass.
    #[arg(long, default_value_t = 2048)]
    pub batch_tokens: usize,
}

fn parse_format(s: &str) -> Result<Format, String> {
    match s {
        "auto" => Ok(Format::Auto),
        "text" => Ok(Format::Text),
        "jsonl" => Ok(Format::Jsonl),
        _ => Err(format!("unknown format {s} (auto, text, jsonl)")),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    for &k in &args.ks {
        if !(k > 0.0 && k <= 1.0) {
            anyhow::bail!(miascan::Error::Usage(format!("--k {k}: must be in (0, 1]")));
        }
    }
    if args.batch_tokens == 0 || args.max_context.is_some_and(|c| c < 2) {
        anyhow::bail!(miascan::Error::Usage(
            "--batch-tokens must be >= 1 and --max-context >= 2".into()
        ));
    }
    args.model.setup_threads()?;
    let mut inputs = args.inputs.clone();
    if inputs.is_empty() {
        if std::io::stdin().is_terminal() {
            anyhow::bail!(miascan::Error::Usage(
                "no input: give files or directories, or pipe text on stdin".into()
            ));
        }
        inputs.push(PathBuf::from(STDIN));
    }
    let read_opts = ReadOptions {
        format: args.format,
        text_field: args.text_field.clone(),
        id_field: args.id_field.clone(),
    };
    let passages = read_inputs(&inputs, &read_opts)?;
    let model = args.model.load()?;
    let opts = ScoreOptions {
        ks: args.ks.clone(),
        lowercase: !args.no_lowercase,
        max_context: args.max_context,
        batch_tokens: args.batch_tokens,
        token_details: args.token_logprobs,
    };
    let reference = match &args.reference {
        Some(r) => Some(args.model.load_other(r)?),
        None => None,
    };
    let mut scorer = Scorer::new(&model, opts);
    if let Some(r) = &reference {
        scorer = scorer.with_reference(r);
    }
    let ref_identity = reference.as_ref().map(|r| &r.identity);

    let out_name = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("<stdout>"));
    let write_err = |source| miascan::Error::OutputIo {
        path: out_name.clone(),
        source,
    };
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(write_err)?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let total = passages.len();
    let show_progress = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let mut done = 0usize;
    let mut tokens = 0usize;
    let mut rows = Vec::new();
    scorer.score_all(&passages, |r| {
        done += 1;
        tokens += r.n_tokens;
        if show_progress {
            eprint!("\rscored {done}/{total} passages");
        }
        if args.table {
            rows.push(r);
        } else {
            let line = serde_json::to_string(&report::record(&r, &model.identity, ref_identity))
                .expect("JSON values always serialise");
            writeln!(out, "{line}").map_err(write_err)?;
        }
        Ok(())
    })?;
    if show_progress {
        eprintln!(
            "\rscored {total} passages, {tokens} tokens in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    if args.table {
        write!(out, "{}", report::table(&rows)).map_err(write_err)?;
    }
    out.flush().map_err(write_err)?;
    Ok(())
}
