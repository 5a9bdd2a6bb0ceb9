//! The PDF reader against an independent extractor: poppler's `pdftotext` (Debian's
//! poppler-utils, installed by .ci/run). Page by page, the words each gives, compared as
//! sequences (2·LCS / (n + m): 1.0 means the same words in the same order). The fixtures
//! must agree exactly; PDFs named in `MIASCAN_PDF_AGREEMENT` (paths separated by `:`) are
//! measured and printed, for docs/correctness.md. Where `pdftotext` is absent the test says
//! so, and fails when MIASCAN_REQUIRE_PDFTOTEXT is set (CI).

use std::path::{Path, PathBuf};
use std::process::Command;

fn pdftotext_pages(path: &Path) -> Option<Vec<String>> {
    let out = Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(path)
        .arg("-")
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "pdftotext failed on {}",
        path.display()
    );
    let text = String::from_utf8(out.stdout).expect("pdftotext -enc UTF-8 writes UTF-8");
    // a form feed ends every page
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_string).collect();
    pages.pop();
    Some(pages)
}

/// 2·LCS / (n + m) over the two word sequences (1.0 for two empty ones).
fn agreement(a: &[&str], b: &[&str]) -> (usize, f64) {
    if a.is_empty() && b.is_empty() {
        return (0, 1.0);
    }
    let mut prev = vec![0usize; b.len() + 1];
    for x in a {
        let mut cur = vec![0usize; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                cur[j].max(prev[j + 1])
            };
        }
        prev = cur;
    }
    let lcs = prev[b.len()];
    (lcs, 2.0 * lcs as f64 / (a.len() + b.len()) as f64)
}

/// (pages, words by miascan, words by pdftotext, words in common in order, agreement).
fn compare(path: &Path) -> Option<(usize, usize, usize, usize, f64)> {
    let theirs = pdftotext_pages(path)?;
    let ours = miascan::input::pdf::pages(std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(ours.failed.is_none(), "{:?}", ours.failed);
    assert_eq!(ours.pages.len(), theirs.len(), "{}: pages", path.display());
    let (mut n, mut m, mut common) = (0, 0, 0);
    for (o, t) in ours.pages.iter().zip(&theirs) {
        let o: Vec<&str> = o.split_whitespace().collect();
        let t: Vec<&str> = t.split_whitespace().collect();
        n += o.len();
        m += t.len();
        common += agreement(&o, &t).0;
    }
    let ratio = 2.0 * common as f64 / (n + m).max(1) as f64;
    Some((ours.pages.len(), n, m, common, ratio))
}

#[test]
fn pdf_text_agrees_with_pdftotext() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pdf");
    let mut files: Vec<(PathBuf, bool)> = ["paper.pdf", "owner-only.pdf"]
        .iter()
        .map(|n| (fixtures.join(n), true))
        .collect();
    if let Some(extra) = std::env::var_os("MIASCAN_PDF_AGREEMENT") {
        files.extend(std::env::split_paths(&extra).map(|p| (p, false)));
    }
    for (path, exact) in files {
        let Some((pages, n, m, common, ratio)) = compare(&path) else {
            assert!(
                std::env::var_os("MIASCAN_REQUIRE_PDFTOTEXT").is_none(),
                "no pdftotext, but MIASCAN_REQUIRE_PDFTOTEXT is set"
            );
            eprintln!("NOT RUN: no pdftotext on this machine (apt-get install poppler-utils)");
            return;
        };
        println!(
            "{}: {pages} pages, {n} words (miascan) vs {m} (pdftotext), {common} in common in order: agreement {ratio:.4}",
            path.display()
        );
        if exact {
            assert_eq!(ratio, 1.0, "{}", path.display());
        }
    }
}

#[test]
fn agreement_counts_words_in_order() {
    assert_eq!(agreement(&["a", "b", "c"], &["a", "b", "c"]), (3, 1.0));
    assert_eq!(agreement(&["a", "b", "c"], &["c", "b", "a"]).0, 1);
    assert_eq!(agreement(&["a", "x", "c"], &["a", "c"]), (2, 0.8));
}
