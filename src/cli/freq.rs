//! `miascan freq build`: DC-PDD's token frequency table over a reference corpus of any size,
//! read as `scan` reads a collection (every format, streamed, a file that cannot be read
//! skipped and listed), tokenised on every core; `miascan freq show`: what a table holds.

use super::common::{model_cache, DEFAULT_MODEL};
use super::common::{InputArgs, WalkArgs};
use super::output::{Output, Progress};
use miascan::input::{read_collection, Event};
use miascan::model::Tokenizer;
use miascan::score::freq::{Counter, FreqTable};
use rayon::prelude::*;
use std::path::PathBuf;

/// Exit code of a build that skipped some files or rows (as `scan`'s).
const EXIT_SKIPPED: i32 = 5;
/// Text handed to the tokenizer threads at once.
const BATCH_BYTES: usize = 8 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: FreqCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum FreqCommand {
    /// Count every token of a reference corpus in a model's vocabulary: the table DC-PDD
    /// calibrates token probabilities with (`--freq-table FILE` of score, scan, eval…).
    Build(Box<BuildArgs>),
    /// Describe a table: its vocabulary, counts, and most frequent tokens.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The model whose vocabulary the table counts in (a .gguf, vocabulary-only files too, a
    /// tokenizer.json, a checkpoint folder or a hub id): only its tokenizer is read. Default:
    /// the default model.
    #[arg(long, short = 'm', env = "MIASCAN_MODEL")]
    pub model: Option<String>,
    /// Never download (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub walk: WalkArgs,
    /// The reference corpus: files and folders of any format scan reads, or - for stdin.
    /// Text the model was not trained on is not needed: DC-PDD wants the language's general
    /// token frequencies (its authors use a slice of C4).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where to write the table.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Worker threads (default: RAYON_NUM_THREADS, else all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar and no closing lines.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The table (made by `miascan freq build`).
    pub table: PathBuf,
    /// Also the model, to show the most frequent tokens as text.
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// How many of the most frequent tokens to list.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    match args.command {
        FreqCommand::Build(a) => build(*a),
        FreqCommand::Show(a) => show(a).map(|()| 0),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<i32> {
    if let Some(n) = args.threads {
        // a pool already built (a second call in one process) keeps its size
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
    let spec = match &args.model {
        Some(m) if miascan::engine::is_url(m) => anyhow::bail!(miascan::Error::Usage(format!(
            "--model {m}: freq build counts in a local vocabulary; give the model's tokenizer (a .gguf, tokenizer.json, folder or hub id)"
        ))),
        Some(m) => m.clone(),
        None => model_cache().join(DEFAULT_MODEL).display().to_string(),
    };
    let tok = Tokenizer::open(&spec, args.offline)?;
    let inputs = args.input.inputs_or_stdin(&args.inputs)?;
    let opts = args.walk.collect_options(args.input.options(None))?;
    let progress = Progress::with(None, "documents", args.quiet);
    let mut counter = Counter::new(tok.vocab_size());
    let mut batch: Vec<(String, String)> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut skipped: Vec<(String, String)> = Vec::new();
    let mut cut_short = 0usize;
    let flush = |batch: &mut Vec<(String, String)>, counter: &mut Counter| {
        let part = batch
            .par_iter()
            .try_fold(
                || Counter::new(tok.vocab_size()),
                |mut c, (id, text)| {
                    let ids = tok.encode(id, text)?;
                    c.add(&ids[usize::from(tok.bos().is_some())..])?;
                    Ok::<_, miascan::Error>(c)
                },
            )
            .try_reduce(|| Counter::new(tok.vocab_size()), |a, b| Ok(a.merge(b)))?;
        batch.clear();
        *counter = std::mem::replace(counter, Counter::new(0)).merge(part);
        Ok::<_, miascan::Error>(())
    };
    read_collection(&inputs, &opts, &|_| true, &mut |e| {
        match e {
            Event::Segment { doc, text, .. } => {
                batch_bytes += text.len();
                batch.push((doc.id.clone(), text.to_string()));
                if batch_bytes >= BATCH_BYTES {
                    flush(&mut batch, &mut counter)?;
                    batch_bytes = 0;
                }
            }
            Event::End { doc, problem, .. } => {
                counter.documents += 1;
                progress.tick(counter.documents as usize);
                if let Some(p) = problem {
                    cut_short += 1;
                    skipped.push((doc.source.clone(), format!("read in part: {p}")));
                }
            }
            Event::Skipped { source, reason } => skipped.push((source, reason)),
        }
        Ok(())
    })?;
    flush(&mut batch, &mut counter)?;
    let table = counter.finish(tok.vocab_hash(), tok.kind(), skipped.len() as u64);
    if table.header.total == 0 {
        anyhow::bail!(miascan::Error::EmptyInput(
            "the reference corpus has no text tokens: no table written".into()
        ));
    }
    table.save(&args.out)?;
    progress.done_with("");
    if !args.quiet {
        eprintln!(
            "miascan: {} tokens of {} documents counted in {} ({} tokens, vocabulary {}): {}",
            table.header.total,
            table.header.documents,
            tok.kind(),
            tok.vocab_size(),
            &table.header.vocab_hash[..16.min(table.header.vocab_hash.len())],
            args.out.display()
        );
        for (source, reason) in skipped.iter().take(20) {
            eprintln!("miascan: skipped {source}: {reason}");
        }
        if skipped.len() > 20 {
            eprintln!("miascan: … and {} more skipped", skipped.len() - 20);
        }
    }
    if skipped.is_empty() {
        Ok(0)
    } else {
        if !args.quiet {
            eprintln!(
                "miascan: {} file(s) or row(s) skipped ({cut_short} read in part): exit {EXIT_SKIPPED}",
                skipped.len()
            );
        }
        Ok(EXIT_SKIPPED)
    }
}

fn show(args: ShowArgs) -> anyhow::Result<()> {
    let t = FreqTable::load(&args.table)?;
    let tok = args
        .model
        .as_deref()
        .map(|m| Tokenizer::open(m, false))
        .transpose()?;
    if let Some(tok) = &tok {
        if tok.vocab_hash() != t.header.vocab_hash {
            anyhow::bail!(miascan::Error::Usage(format!(
                "--model {}: another vocabulary than the table's",
                args.model.as_deref().unwrap_or_default()
            )));
        }
    }
    let h = &t.header;
    let mut out = Output::open(None)?;
    out.text(&format!(
        "table      {}\nsha256     {}\nvocabulary {} ({}, {} tokens)\ntokens     {}\ndocuments  {} ({} skipped while building)\nsmoothing  {}: (count + 1) / (tokens + vocabulary)\nbuilt by   {}\n",
        args.table.display(),
        t.sha256(),
        h.vocab_hash,
        h.tokenizer,
        h.vocab_size,
        h.total,
        h.documents,
        h.skipped,
        h.smoothing,
        h.built_by
    ))?;
    let mut order: Vec<u32> = (0..h.vocab_size as u32).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(t.count(i).unwrap_or(0)));
    let unseen = order.iter().filter(|&&i| t.count(i) == Some(0)).count();
    out.text(&format!("unseen     {unseen} tokens\n"))?;
    for &i in order.iter().take(args.top) {
        let text = tok
            .as_ref()
            .map(|k| format!(" {:?}", k.token_strings(&[i])[0]))
            .unwrap_or_default();
        out.text(&format!(
            "{i:>8} {:>12} {:.3e}{text}\n",
            t.count(i).unwrap_or(0),
            t.frequency(i).unwrap_or(0.0)
        ))?;
    }
    out.finish()?;
    Ok(())
}
