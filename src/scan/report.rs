//! `report.html`: one self-contained page (no network, no script) that a reader who was not
//! there can follow: what was tested and how, the verdict in a sentence, score histograms,
//! the ROC curve when labels are known, the top documents, a token heat map for the top
//! passages, and every file that was skipped.
//!
//! The page is built with maud, which escapes every interpolated string (ids, file names,
//! passage text, tokens, model names): markup from the data is impossible unless written on
//! purpose with `PreEscaped`, which only the style sheet and the SVG plots (escaped when
//! built) use.

use super::summary::{DocumentRow, Outputs};
use super::verdict::{fmt_p, COLLECTION_ALPHA};
use crate::eval::plot::roc_svg;
use crate::eval::roc::{auroc, roc_curve};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The page.
pub fn report(o: &Outputs) -> String {
    let s = &o.summary;
    let v = &s.verdict;
    let by = v.score().to_string();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:";
                title { "miascan report" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Membership scan: " (s.header.model.name) }
                p.verdict { (v.sentence) }
                (facts(o))
                @if let Some(n) = &v.note {
                    p.note { b { "Note." } " " (n) }
                }
                (explain())
                (scores(o, &by))
                (top_documents(o, &by))
                h2 { "Top passages, token by token" }
                p { "Each token is coloured by the probability the model gave it (darker = more expected); hover over a token to see it, its probability, its log-probability and its rank among the model's predictions (1 = the model's first guess). Memorised text is often a run of dark tokens where ordinary text would surprise a model." }
                @if o.heatmaps.is_empty() {
                    p.note { "No passage to show." }
                }
                @for rec in &o.heatmaps {
                    (heatmap(rec, &by))
                }
                (skipped(o))
                footer {
                    "miascan " (s.miascan) " · every figure on this page is recomputed from "
                    code { "scan.log.jsonl" }
                }
            }
        }
    }
    .into_string()
        + "\n"
}

/// What was tested and how.
fn facts(o: &Outputs) -> Markup {
    let s = &o.summary;
    let h = &s.header;
    let v = &s.verdict;
    let mut rows: Vec<(&str, String)> = vec![(
        "Model",
        format!("{} (sha256 {})", h.model.name, h.model.sha256),
    )];
    if let Some(r) = &h.reference {
        rows.push((
            "Reference model",
            format!("{} (sha256 {})", r.name, r.sha256),
        ));
    }
    rows.push(("Documents scored", s.documents.to_string()));
    rows.push((
        "Passages scored",
        format!("{} ({} tokens)", s.passages, s.tokens),
    ));
    if let Some(pt) = h.settings.get("passage_tokens") {
        rows.push(("Passage length", format!("{pt} tokens")));
    }
    rows.push((
        "Files or rows skipped",
        format!(
            "{} (listed below){}",
            s.skipped.len(),
            if s.partial.is_empty() {
                String::new()
            } else {
                format!("; {} documents read only in part", s.partial.len())
            }
        ),
    ));
    if !s.failed.is_empty() {
        rows.push((
            "Passages that failed",
            format!("{} (listed below; --resume scores them)", s.failed.len()),
        ));
    }
    if !s.excluded.is_empty() {
        rows.push((
            "Left out by ignore files",
            format!(
                "{} files or folders (.gitignore, .ignore, .git/info/exclude; listed below)",
                s.excluded.len()
            ),
        ));
    }
    let run = &s.run;
    if run.type_left_out + run.glob_left_out > 0 {
        rows.push((
            "Left out by --type / --glob",
            format!(
                "{} / {} files or folders",
                run.type_left_out, run.glob_left_out
            ),
        ));
    }
    rows.push((
        "Decision",
        match (&v.decided_by, v.fpr, v.calibration_n) {
            (Some(b), Some(f), Some(n)) => format!(
                "score {b}, compared with {n} passages known not to be training data; a passage is flagged when its p-value is at most {f}, a document when its false-discovery-adjusted p-value is at most {}",
                v.fdr
            ),
            _ => "none: no calibration was given, so scores are shown without p-values".into(),
        },
    ));
    if v.decided_by.is_some() {
        rows.push((
            "Flagged",
            format!(
                "{} of {} passages (p-value at most {}); {} of {} documents (adjusted p-value at most {})",
                v.passages_flagged,
                s.passages,
                v.fpr.unwrap_or(0.0),
                v.documents_flagged,
                v.documents_tested,
                v.fdr
            ),
        ));
    }
    if let Some(t) = &v.collection_test {
        rows.push((
            "Collection test",
            format!(
                "{}: {} documents (mean {:.4}) vs {} calibration passages (mean {:.4}), t = {:.2}, df = {:.1}, p = {}",
                t.method,
                t.documents,
                t.mean_documents,
                t.calibration_passages,
                t.mean_calibration,
                t.t,
                t.df,
                v.collection_p_value.map_or("–".into(), fmt_p)
            ),
        ));
    }
    if v.collection_test.is_some() {
        rows.push((
            "Negative control",
            format!(
                "the same collection test of one random half of the {} calibration passages against the other half (neither half is training data, so it must not reject): p = {} beside the collection's p = {}; {}",
                v.calibration_n.unwrap_or(0),
                v.control_p_value.map_or("– (too few calibration passages to split)".into(), fmt_p),
                v.collection_p_value.map_or("–".into(), fmt_p),
                match v.control_p_value {
                    Some(c) if c > COLLECTION_ALPHA => "it does not reject, so the verdict stands",
                    _ => "it rejects or could not run, so there is no verdict",
                }
            ),
        ));
        rows.push((
            "Blind baseline",
            match v.blind_auroc {
                Some(a) => {
                    let bound = v.blind_bound.unwrap_or(crate::eval::baseline::WARN_AUROC);
                    format!(
                        "a classifier that never sees the model tells a sample of the scanned passages from the non-members' with AUROC {a:.3} ({} {bound:.3}{}): {}",
                        if a >= bound { "at or above" } else { "below" },
                        if bound > crate::eval::baseline::WARN_AUROC { ", what chance alone reaches on sets this small" } else { "" },
                        if a >= bound {
                            "the sets differ as texts (time, topic, format), so no verdict is given"
                        } else {
                            "the sets do not differ much as texts, so a difference in scores is not explained by them"
                        }
                    )
                }
                None => "not run: the calibration holds no sample of the non-members' texts (made by an earlier version), so whether the collection and the non-members differ as texts (time, topic, format) is unchecked here; calibrate again, or scan with --nonmembers FILES".into(),
            },
        ));
    }
    html! {
        h2 { "What was tested" }
        table.facts {
            @for (k, val) in &rows {
                tr { th { (k) } td { (val) } }
            }
        }
    }
}

fn explain() -> Markup {
    html! {
        h2 { "How to read this" }
        p {
            "A language model is run over each passage of each document and gives every token a probability. Text a model was trained on tends to look more predictable to it than text it never saw. Each score turns those probabilities into one number per passage; "
            b { "higher means more likely to have been in the training data" }
            ". A score alone is not evidence: a p-value compares it with passages known "
            i { "not" }
            " to be training data (the calibration). A p-value of 0.01 means that only 1% of such non-member passages score as high. A document's p-value combines its passages' p-values by a rule that holds however related the passages are; the adjusted p-value controls the expected share of wrongly flagged documents across the whole collection; and the collection test asks whether the documents, taken together, score higher than the non-members on average. The same test is run on two random halves of the non-members (the negative control): if those already differ, the test is not to be trusted on these texts and no verdict is given."
        }
        p {
            b { "A statistical signal is not proof." }
            " Scores and p-values say that the documents look more predictable to the model than comparable text it never saw — evidence consistent with training, which other causes (text the model saw elsewhere, a calibration from another source or period) can also produce. Proof that a model was trained on a text is an exposed canary (a secret planted in the text that the model ranks far above chance: "
            code { "miascan exposure" }
            ") or a verbatim extraction of passages the model could not otherwise know ("
            code { "--extraction" }
            ")."
        }
    }
}

/// The histograms, and the ROC curve when the collection carries labels.
fn scores(o: &Outputs, by: &str) -> Markup {
    let labelled = o.values.iter().any(|x| x.1.is_some());
    let pick = |want: Option<bool>| -> Vec<f64> {
        o.values
            .iter()
            .filter(|x| want.is_none() || x.1 == want)
            .map(|x| x.0)
            .collect()
    };
    let mut series: Vec<(String, Vec<f64>)> = if labelled {
        vec![
            ("members (labelled)".into(), pick(Some(true))),
            ("non-members (labelled)".into(), pick(Some(false))),
        ]
    } else {
        vec![("scanned passages".into(), pick(None))]
    };
    if !o.calibration_values.is_empty() {
        series.push((
            "calibration non-members".into(),
            o.calibration_values.clone(),
        ));
    }
    let (pos, neg) = (pick(Some(true)), pick(Some(false)));
    let roc = if labelled { auroc(&pos, &neg) } else { None };
    html! {
        h2 { "Scores" }
        p {
            "Distribution of " code { (by) } " over the scanned passages"
            @if !o.calibration_values.is_empty() { " and over the calibration's known non-members" }
            "."
        }
        (histogram_svg(by, &series))
        @if let Some(a) = roc {
            h2 { "ROC" }
            p {
                "The collection carries labels: " (pos.len()) " members, " (neg.len())
                " non-members. AUROC of " code { (by) } ": " (format!("{a:.3}")) "."
            }
            // built by maud too: its labels are escaped
            (PreEscaped(roc_svg(&format!("ROC: {by}"), &[(by.to_string(), roc_curve(&pos, &neg))])))
        }
    }
}

/// The 25 documents with the smallest p-values (or the highest scores, uncalibrated).
fn top_documents(o: &Outputs, by: &str) -> Markup {
    let s = &o.summary;
    let bi = s.scores.iter().position(|n| n == by);
    let mut docs: Vec<&DocumentRow> = o.documents.iter().collect();
    let max_of = |d: &DocumentRow| {
        bi.and_then(|i| d.max.get(i).copied().flatten())
            .unwrap_or(f64::NEG_INFINITY)
    };
    docs.sort_by(|a, b| match (a.p_value, b.p_value) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => max_of(b).total_cmp(&max_of(a)),
    });
    let f = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.4}"));
    html! {
        h2 { "Top documents" }
        table.docs {
            tr {
                th { "document" } th { "passages" } th { "mean " (by) } th { "max " (by) }
                th { "p-value" } th { "adjusted (BH)" } th { "flagged" } th { "label" }
            }
            @for d in docs.iter().take(25) {
                tr {
                    td.id { (d.id) }
                    td { (d.passages) }
                    td { (f(bi.and_then(|i| d.mean.get(i).copied().flatten()))) }
                    td { (f(bi.and_then(|i| d.max.get(i).copied().flatten()))) }
                    td { (d.p_value.map_or("–".into(), fmt_p)) }
                    td { (d.q_value.map_or("–".into(), fmt_p)) }
                    td {
                        @match d.flagged {
                            Some(true) => b { "yes" },
                            Some(false) => "no",
                            None => "–",
                        }
                    }
                    td {
                        @match d.label {
                            Some(true) => "member",
                            Some(false) => "non-member",
                            None => "–",
                        }
                    }
                }
            }
        }
        p.note { (o.documents.len()) " documents in all; every one is in " code { "documents.csv" } "." }
    }
}

/// Every file or row that was not scanned, with the reason (the first 500).
fn skipped(o: &Outputs) -> Markup {
    let s = &o.summary;
    let all: Vec<_> = s.skipped.iter().chain(&s.partial).collect();
    html! {
        h2 { "Skipped" }
        p {
            (s.skipped.len()) " files or rows were not scanned"
            @if !s.skipped.is_empty() { ", each with the reason" }
            "."
        }
        @if !all.is_empty() {
            table.skipped {
                tr { th { "file" } th { "reason" } }
                @for k in all.iter().take(500) {
                    tr { td.id { (k.source) } td { (k.reason) } }
                }
            }
            @if all.len() > 500 {
                p.note { "… and " (all.len() - 500) " more: see " code { "summary.json" } "." }
            }
        }
        @if !s.failed.is_empty() {
            h2 { "Passages that failed" }
            p {
                (s.failed.len()) " passages could not be scored (the model server kept failing); "
                "they have no numbers here. Run the scan again with " code { "--resume" }
                " to score them."
            }
            table.skipped {
                tr { th { "passage" } th { "error" } }
                @for k in s.failed.iter().take(500) {
                    tr { td.id { (k.source) } td { (k.reason) } }
                }
            }
        }
        @if !s.excluded.is_empty() {
            h2 { "Left out by ignore files" }
            p {
                (s.excluded.len()) " files or folders were left out because the collection's "
                code { ".gitignore" } ", " code { ".ignore" } " or " code { ".git/info/exclude" }
                " excludes them (as git and ripgrep do); " code { "--no-ignore" } " reads them."
            }
            table.skipped {
                tr { th { "file or folder" } }
                @for k in s.excluded.iter().take(500) {
                    tr { td.id { (k.source) } }
                }
            }
            @if s.excluded.len() > 500 {
                p.note { "… and " (s.excluded.len() - 500) " more: see " code { "summary.json" } "." }
            }
        }
    }
}

/// One passage's tokens coloured by probability, with a tooltip each.
fn heatmap(rec: &crate::record::PassageRecord, by: &str) -> Markup {
    let (Some(tokens), Some(logp)) = (&rec.tokens, &rec.token_logprobs) else {
        return html! {};
    };
    let lines = match (rec.lines, rec.pages) {
        (Some([a, b]), _) if a == b => format!(" · line {a}"),
        (Some([a, b]), _) => format!(" · lines {a}–{b}"),
        (None, Some([a, b])) if a == b => format!(" · page {a}"),
        (None, Some([a, b])) => format!(" · pages {a}–{b}"),
        (None, None) => String::new(),
    };
    let title = format!(
        "{} · passage {}{lines} · {} {}{}",
        rec.document.as_deref().unwrap_or(&rec.id),
        rec.passage.unwrap_or(0),
        by,
        rec.scores.get(by).map_or("–".into(), |v| format!("{v:.4}")),
        rec.p_values
            .as_ref()
            .and_then(|p| p.get(by))
            .map_or(String::new(), |p| format!(" · p-value {}", fmt_p(p)))
    );
    // the first token (BOS or first text token) is context only: shown plain
    let skip = tokens.len().saturating_sub(logp.len());
    html! {
        div.passage {
            div.ptitle { (title) }
            div.tokens {
                @for (i, t) in tokens.iter().enumerate() {
                    @if i < skip {
                        span.ctx title="not scored: the BOS, or the first token (context only)" { (t) }
                    } @else {
                        @let lp = logp[i - skip];
                        @let p = lp.exp();
                        @let rank = rec.token_ranks.as_ref().and_then(|r| r.get(i - skip)).map_or(String::new(), |r| format!(" · rank {r}"));
                        // opacity by probability: 0 → white, 1 → full colour
                        @let alpha = if lp.is_finite() { p.clamp(0.0, 1.0) } else { 0.0 };
                        span style=(format!("background:rgba(200,30,30,{alpha:.3})"))
                            title=(format!("{t:?} · p = {p:.4} · log p = {lp:.3}{rank}")) { (t) }
                    }
                }
            }
        }
    }
}

/// Overlaid histograms (each normalised to its own count) on a shared axis.
fn histogram_svg(title: &str, series: &[(String, Vec<f64>)]) -> Markup {
    const COLORS: [&str; 3] = ["#d62728", "#1f77b4", "#7f7f7f"];
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    if all.is_empty() {
        return html! { p.note { "No scores to show." } };
    }
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let bins = 30;
    let (w, h, l, t, pw, ph) = (640.0, 300.0, 50.0, 20.0, 560.0, 230.0);
    let hists: Vec<Vec<f64>> = series
        .iter()
        .map(|(_, v)| {
            let mut c = vec![0.0; bins];
            let n = v.iter().filter(|x| x.is_finite()).count().max(1) as f64;
            for &x in v.iter().filter(|x| x.is_finite()) {
                let b = (((x - lo) / span) * bins as f64).floor() as usize;
                c[b.min(bins - 1)] += 1.0 / n;
            }
            c
        })
        .collect();
    let top = hists
        .iter()
        .flatten()
        .copied()
        .fold(0.0, f64::max)
        .max(1e-12);
    let bw = pw / bins as f64;
    let f1 = |x: f64| format!("{x:.1}");
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(w) height=(h) font-family="sans-serif" font-size="11" {
            rect width="100%" height="100%" fill="white" {}
            rect x=(l) y=(t) width=(pw) height=(ph) fill="none" stroke="#333" {}
            @for (k, c) in hists.iter().enumerate() {
                @let color = COLORS[k % COLORS.len()];
                @for (i, &v) in c.iter().enumerate() {
                    @if v > 0.0 {
                        @let bh = v / top * ph;
                        rect x=(f1(l + i as f64 * bw)) y=(f1(t + ph - bh)) width=(f1(bw)) height=(f1(bh)) fill=(color) fill-opacity="0.45" {}
                    }
                }
                rect x=(l + 10.0) y=(t + 8.0 + 15.0 * k as f64) width="10" height="10" fill=(color) fill-opacity="0.6" {}
                text x=(l + 25.0) y=(t + 17.0 + 15.0 * k as f64) { (series[k].0) " (" (series[k].1.len()) ")" }
            }
            @for (x, label) in [(l, lo), (l + pw / 2.0, lo + span / 2.0), (l + pw, hi)] {
                text x=(f1(x)) y=(t + ph + 15.0) text-anchor="middle" { (format!("{label:.3}")) }
            }
            text x=(l + pw / 2.0) y=(t + ph + 32.0) text-anchor="middle" { (title) " (higher = more likely in the training data)" }
        }
    }
}

/// The page's style sheet (a constant: the only unescaped text on the page besides the
/// plots).
const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.verdict { font-size: 1.15em; background: #f4f6fa; border-left: 4px solid #345; padding: .8em 1em; }
table { border-collapse: collapse; font-size: .9em; } td, th { padding: .25em .6em; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
.facts th { width: 14em; color: #555; font-weight: normal; }
td.id { font-family: ui-monospace, monospace; word-break: break-all; max-width: 28em; }
.note { color: #666; font-size: .9em; }
.passage { margin: 1em 0; border: 1px solid #ddd; border-radius: 4px; }
.ptitle { background: #f6f6f6; padding: .3em .6em; font-size: .85em; font-family: ui-monospace, monospace; word-break: break-all; }
.tokens { padding: .6em; font-family: ui-monospace, monospace; font-size: .85em; white-space: pre-wrap; word-break: break-word; }
.tokens span { border-radius: 2px; } .tokens .ctx { color: #999; }
footer { margin-top: 3em; color: #888; font-size: .8em; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_escapes_and_handles_constants() {
        let s = histogram_svg("<x>", &[("a\"b".into(), vec![1.0, 1.0])]).into_string();
        assert!(s.contains("&lt;x&gt;") && s.contains("a&quot;b"), "{s}");
        assert!(!s.contains("<x>"));
    }
}
