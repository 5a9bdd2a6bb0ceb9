//! BPE pre-tokenizers of GGUF files, named by `tokenizer.ggml.pre`: the regular expressions
//! llama.cpp (`llama-vocab.cpp`, `llm_tokenizer_bpe`) applies one after another, each
//! splitting every piece left by the previous one into its matches and the text between
//! them, and the per-name rules that go with them.
//!
//! One entry per family; every name of a family behaves identically in llama.cpp. Only the
//! families whose behaviour the tokenizer suite (`tests/tokenizer_suite.rs`) checks token for
//! token are listed; any other name is refused rather than guessed.

/// `'s|'t|…` spelled without case-insensitive groups (as llama.cpp adapts it).
const CONTRACTIONS: &str = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";

/// GPT-2's own expression.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";

/// How one family pre-tokenizes and encodes.
#[derive(Debug)]
pub struct PreTokenizer {
    /// The `tokenizer.ggml.pre` values of the family.
    pub names: &'static [&'static str],
    /// Expressions applied in order.
    pub regexes: Vec<String>,
    /// A piece that is itself a token is taken whole, without merges (Llama 3's
    /// `ignore_merges`).
    pub ignore_merges: bool,
    /// Default of `tokenizer.ggml.add_bos_token` when the file does not say.
    pub add_bos: bool,
    /// GPT-2 byte-to-character encoding of every piece (false: raw UTF-8 with spaces as
    /// `▁`, as Gemma 4 stores its vocabulary).
    pub byte_encode: bool,
    /// Runs of newlines that are a token are taken whole (Gemma 4).
    pub whole_newlines: bool,
}

fn family(names: &'static [&'static str], regexes: &[&str]) -> PreTokenizer {
    PreTokenizer {
        names,
        regexes: regexes.iter().map(|s| s.to_string()).collect(),
        ignore_merges: false,
        add_bos: false,
        byte_encode: true,
        whole_newlines: false,
    }
}

/// Every family, in llama.cpp's order.
pub fn families() -> Vec<PreTokenizer> {
    let llama3 = format!(
        r"{CONTRACTIONS}|[^\r\n\p{{L}}\p{{N}}]?\p{{L}}+|\p{{N}}{{1,3}}| ?[^\s\p{{L}}\p{{N}}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    );
    let qwen2 = format!(
        r"{CONTRACTIONS}|[^\r\n\p{{L}}\p{{N}}]?\p{{L}}+|\p{{N}}| ?[^\s\p{{L}}\p{{N}}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    );
    let qwen35 = format!(
        r"{CONTRACTIONS}|[^\r\n\p{{L}}\p{{N}}]?[\p{{L}}\p{{M}}]+|\p{{N}}| ?[^\s\p{{L}}\p{{M}}\p{{N}}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    );
    vec![
        PreTokenizer {
            ignore_merges: true,
            add_bos: true,
            ..family(
                &[
                    "llama3",
                    "llama-v3",
                    "llama-bpe",
                    "falcon3",
                    "falcon-h1",
                    "pixtral",
                    "midm-2.0",
                    "lfm2",
                    "jina-v5-nano",
                ],
                &[&llama3],
            )
        },
        family(&["dbrx", "smaug-bpe"], &[&llama3]),
        family(
            &["deepseek-llm"],
            &[
                r"[\r\n]",
                r"\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+",
                r"\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+",
                r"\s+$",
                r"[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+",
                r"\p{N}+",
            ],
        ),
        family(
            &["deepseek-coder"],
            &[
                r"[\r\n]",
                r"\s?\p{L}+",
                r"\s?\p{P}+",
                r"[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+",
                r"\p{N}",
            ],
        ),
        family(
            &["falcon"],
            &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
        ),
        family(
            &[
                "starcoder",
                "refact",
                "command-r",
                "smollm",
                "codeshell",
                "exaone",
                "minerva-7b",
                "mellum2",
            ],
            &[r"\p{N}", GPT2],
        ),
        family(
            &[
                "gpt-2",
                "phi-2",
                "gigachat",
                "a.x-4.0",
                "mellum",
                "exaone4",
                "mpt",
                "olmo",
                "jais",
                "trillion",
                "granite-docling",
            ],
            &[GPT2],
        ),
        family(
            &[
                "qwen2",
                "deepseek-r1-qwen",
                "kormo",
                "f2llmv2",
                "megrez",
                "stablelm2",
                "hunyuan",
                "solar-open",
            ],
            &[&qwen2],
        ),
        family(&["qwen35"], &[&qwen35]),
        PreTokenizer {
            add_bos: true,
            byte_encode: false,
            whole_newlines: true,
            ..family(&["gemma4"], &["[^\\n]+|[\\n]+"])
        },
        family(
            &["default"],
            &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
        ),
    ]
}

/// The family of `pre` (`None` when it is not supported).
pub fn find(pre: &str) -> Option<PreTokenizer> {
    families().into_iter().find(|f| f.names.contains(&pre))
}

/// Every supported `pre` value, for messages and `inspect`.
pub fn supported() -> Vec<&'static str> {
    families()
        .iter()
        .flat_map(|f| f.names.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_expression_compiles_and_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for f in families() {
            for n in f.names {
                assert!(seen.insert(*n), "{n} listed twice");
            }
            for r in &f.regexes {
                if let Err(e) = fancy_regex::Regex::new(r) {
                    panic!("{:?}: {r:?}: {e:?}", f.names);
                }
            }
        }
    }
}
