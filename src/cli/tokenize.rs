//! `miascan tokenize`: the model's own tokenisation of each input, for checking what a
//! passage looks like to the model (and, in the tests, against llama.cpp's ids).

use super::common::InputArgs;
use super::common::{model_cache, DEFAULT_MODEL};
use super::output::Output;
use miascan::input::collection::{read_collection, CollectOptions, Event};
use miascan::input::walk::WalkOptions;
use miascan::model::Tokenizer;
use std::path::PathBuf;

/// Whether the BOS goes in front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Bos {
    /// As the model's tokenizer does (and as `score` scores).
    Auto,
    /// Never: the text's tokens only (llama.cpp's `add_special = false`).
    Never,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model or tokenizer: a .gguf file (vocabulary-only files too), a tokenizer.json, a
    /// checkpoint folder, a hub id org/name[@revision], or a server's http(s)://…/v1 (its
    /// own tokens, from a scoring request). Default: the default model.
    #[arg(long, short = 'm', env = "MIASCAN_MODEL")]
    pub model: Option<String>,
    #[command(flatten)]
    pub server: super::common::ServerArgs,
    /// Never download (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// BOS policy: auto (the model's) or never.
    #[arg(long, value_enum, default_value = "auto")]
    pub bos: Bos,
    #[command(flatten)]
    pub input: InputArgs,
    /// Text files (one document each), JSONL/CSV/Parquet (one per row), directories, or -
    /// for stdin. Default: stdin.
    pub inputs: Vec<PathBuf>,
    /// Write JSONL here instead of stdout.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
}

/// One output line: the document's id and its tokens.
#[derive(serde::Serialize)]
struct Line<'a> {
    id: &'a str,
    #[serde(flatten)]
    rec: &'a Record,
}

/// The tokens of one text.
#[derive(serde::Serialize)]
struct Record {
    ids: Vec<u32>,
    tokens: Vec<String>,
    /// Byte span `[start, end)` of the input each token covers (none for a BOS).
    spans: Vec<Option<(usize, usize)>>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let spec = match &args.model {
        Some(m) => m.clone(),
        None => model_cache().join(DEFAULT_MODEL).display().to_string(),
    };
    if miascan::engine::is_url(&spec) {
        let engine = miascan::engine::RemoteEngine::open(&args.server.options(&spec, None))?;
        return each_segment(&args, |id, text| remote_record(&engine, args.bos, id, text));
    }
    let tok = Tokenizer::open(&spec, args.offline)?;
    each_segment(&args, |id, text| {
        let pieces = tok.pieces(id, text)?;
        let bos = if args.bos == Bos::Auto {
            tok.bos()
        } else {
            None
        };
        let ids: Vec<u32> = bos.into_iter().chain(pieces.iter().map(|p| p.0)).collect();
        let spans = bos
            .map(|_| None)
            .into_iter()
            .chain(pieces.iter().map(|&(_, a, b)| Some((a, b))))
            .collect();
        Ok(Record {
            tokens: tok.token_strings(&ids),
            ids,
            spans,
        })
    })
}

/// Reads every input as `tokenize` does (hidden files and links included) and writes one
/// line per document or row: `record`'s tokens of its text.
fn each_segment(
    args: &Args,
    record: impl Fn(&str, &str) -> miascan::Result<Record>,
) -> anyhow::Result<()> {
    let inputs = args.input.inputs_or_stdin(&args.inputs)?;
    let opts = CollectOptions {
        read: args.input.options(None),
        walk: WalkOptions {
            hidden: true,
            follow_links: true,
            ..WalkOptions::default()
        },
        ..CollectOptions::default()
    };
    let mut out = Output::open(args.out.as_deref())?;
    read_collection(&inputs, &opts, &|_| true, &mut |e| {
        if let Event::Segment { doc, text, .. } = e {
            let rec = record(&doc.id, text)?;
            let line = serde_json::to_string(&Line {
                id: &doc.id,
                rec: &rec,
            })
            .map_err(|e| miascan::Error::Internal(e.to_string()))?;
            out.line(&line)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// A server's tokens of a text: what one scoring request returns (ids where the server
/// gives them, its rendering of each token, the byte spans located in the text).
fn remote_record(
    engine: &miascan::engine::RemoteEngine,
    bos: Bos,
    _id: &str,
    text: &str,
) -> miascan::Result<Record> {
    use miascan::engine::{Engine, Seq};
    let s = engine
        .score(vec![Seq::Text(text.to_string())])?
        .pop()
        .transpose()?
        .unwrap_or_default();
    let skip = if bos == Bos::Never { s.text_from } else { 0 };
    let known = s.spans.len() + s.text_from == s.ids.len();
    let spans = (0..s.ids.len())
        .map(|i| (known && i >= s.text_from).then(|| s.spans[i - s.text_from]))
        .skip(skip)
        .collect();
    Ok(Record {
        ids: s.ids[skip..].to_vec(),
        tokens: s
            .tokens
            .unwrap_or_default()
            .into_iter()
            .skip(skip)
            .collect(),
        spans,
    })
}
