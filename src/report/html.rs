//! `report.html`: one self-contained page (no network, no script) that a reader who was not
//! there can follow: what was tested and how, the verdict in a sentence, score histograms,
//! the ROC curve when labels are known, the top documents, a token heat map for the top
//! passages, and every file that was skipped. Everything taken from the data (ids, file
//! names, passage text, tokens) is escaped.

use crate::eval::plot::{escape, roc_svg};
use crate::eval::roc::{auroc, roc_curve};
use crate::scan::finish::{fmt_p, Outputs};

/// The page.
pub fn report(o: &Outputs) -> String {
    let s = &o.summary;
    let h = &s.header;
    let v = &s.verdict;
    let by = v.score().to_string();
    let mut page = String::with_capacity(64 << 10);
    page.push_str(HEAD);
    page.push_str(&format!(
        "<h1>Membership scan: {}</h1>\n<p class=\"verdict\">{}</p>\n",
        escape(&h.model.name),
        escape(&v.sentence)
    ));

    // what was tested and how
    page.push_str("<h2>What was tested</h2>\n<table class=\"facts\">\n");
    let mut fact = |k: &str, val: String| {
        page.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            escape(k),
            escape(&val)
        ))
    };
    fact(
        "Model",
        format!("{} (sha256 {})", h.model.name, h.model.sha256),
    );
    if let Some(r) = &h.reference {
        fact(
            "Reference model",
            format!("{} (sha256 {})", r.name, r.sha256),
        );
    }
    fact("Documents scored", s.documents.to_string());
    fact(
        "Passages scored",
        format!("{} ({} tokens)", s.passages, s.tokens),
    );
    if let Some(pt) = h.settings.get("passage_tokens") {
        fact("Passage length", format!("{pt} tokens"));
    }
    fact(
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
    );
    match (&v.decided_by, v.fpr, v.calibration_n) {
        (Some(b), Some(f), Some(n)) => fact(
            "Decision",
            format!(
                "score {b}, compared with {n} passages known not to be training data; a passage is flagged when its p-value is at most {f}, a document when its false-discovery-adjusted p-value is at most {}",
                v.fdr
            ),
        ),
        _ => fact(
            "Decision",
            "none: no calibration was given, so scores are shown without p-values".into(),
        ),
    }
    if v.decided_by.is_some() {
        fact(
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
        );
    }
    if let Some(t) = &v.collection_test {
        fact(
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
        );
    }
    page.push_str("</table>\n");
    if let Some(n) = &v.note {
        page.push_str(&format!(
            "<p class=\"note\"><b>Note.</b> {}</p>\n",
            escape(n)
        ));
    }
    page.push_str(EXPLAIN);

    // histograms
    page.push_str(&format!(
        "<h2>Scores</h2>\n<p>Distribution of <code>{}</code> over the scanned passages{}.</p>\n",
        escape(&by),
        if o.calibration_values.is_empty() {
            ""
        } else {
            " and over the calibration's known non-members"
        }
    ));
    let labelled = o.values.iter().any(|x| x.1.is_some());
    let mut series: Vec<(String, Vec<f64>)> = Vec::new();
    if labelled {
        for (name, want) in [
            ("members (labelled)", true),
            ("non-members (labelled)", false),
        ] {
            series.push((
                name.into(),
                o.values
                    .iter()
                    .filter(|x| x.1 == Some(want))
                    .map(|x| x.0)
                    .collect(),
            ));
        }
    } else {
        series.push((
            "scanned passages".into(),
            o.values.iter().map(|x| x.0).collect(),
        ));
    }
    if !o.calibration_values.is_empty() {
        series.push((
            "calibration non-members".into(),
            o.calibration_values.clone(),
        ));
    }
    page.push_str(&histogram_svg(&by, &series));

    if labelled {
        let pos: Vec<f64> = o
            .values
            .iter()
            .filter(|x| x.1 == Some(true))
            .map(|x| x.0)
            .collect();
        let neg: Vec<f64> = o
            .values
            .iter()
            .filter(|x| x.1 == Some(false))
            .map(|x| x.0)
            .collect();
        if let Some(a) = auroc(&pos, &neg) {
            page.push_str(&format!(
                "<h2>ROC</h2>\n<p>The collection carries labels: {} members, {} non-members. AUROC of <code>{}</code>: {a:.3}.</p>\n",
                pos.len(),
                neg.len(),
                escape(&by)
            ));
            page.push_str(&roc_svg(
                &format!("ROC: {by}"),
                &[(by.clone(), roc_curve(&pos, &neg))],
            ));
        }
    }

    // top documents
    page.push_str("<h2>Top documents</h2>\n");
    let bi = s.scores.iter().position(|n| *n == by);
    let mut docs: Vec<&crate::scan::finish::DocumentRow> = o.documents.iter().collect();
    docs.sort_by(|a, b| match (a.p_value, b.p_value) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => {
            let m = |d: &crate::scan::finish::DocumentRow| {
                bi.and_then(|i| d.max.get(i).copied().flatten())
                    .unwrap_or(f64::NEG_INFINITY)
            };
            m(b).total_cmp(&m(a))
        }
    });
    page.push_str(&format!(
        "<table class=\"docs\"><tr><th>document</th><th>passages</th><th>mean {0}</th><th>max {0}</th><th>p-value</th><th>adjusted (BH)</th><th>flagged</th><th>label</th></tr>\n",
        escape(&by)
    ));
    let f = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.4}"));
    for d in docs.iter().take(25) {
        page.push_str(&format!(
            "<tr><td class=\"id\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&d.id),
            d.passages,
            f(bi.and_then(|i| d.mean.get(i).copied().flatten())),
            f(bi.and_then(|i| d.max.get(i).copied().flatten())),
            d.p_value.map_or("–".into(), fmt_p),
            d.q_value.map_or("–".into(), fmt_p),
            match d.flagged {
                Some(true) => "<b>yes</b>",
                Some(false) => "no",
                None => "–",
            },
            d.label.map_or("–".into(), |l| if l { "member".to_string() } else { "non-member".into() }),
        ));
    }
    page.push_str(&format!(
        "</table>\n<p class=\"note\">{} documents in all; every one is in <code>documents.csv</code>.</p>\n",
        o.documents.len()
    ));

    // heat maps
    page.push_str("<h2>Top passages, token by token</h2>\n<p>Each token is coloured by the probability the model gave it (darker = more expected); hover over a token to see it, its probability, its log-probability and its rank among the model's predictions (1 = the model's first guess). Memorised text is often a run of dark tokens where ordinary text would surprise a model.</p>\n");
    if o.heatmaps.is_empty() {
        page.push_str("<p class=\"note\">No passage to show.</p>\n");
    }
    for rec in &o.heatmaps {
        page.push_str(&heatmap(rec, &by));
    }

    // skipped
    page.push_str(&format!(
        "<h2>Skipped</h2>\n<p>{} files or rows were not scanned{}.</p>\n",
        s.skipped.len(),
        if s.skipped.is_empty() {
            ""
        } else {
            ", each with the reason"
        }
    ));
    if !s.skipped.is_empty() || !s.partial.is_empty() {
        page.push_str("<table class=\"skipped\"><tr><th>file</th><th>reason</th></tr>\n");
        let all = s.skipped.iter().chain(&s.partial);
        for k in all.clone().take(500) {
            page.push_str(&format!(
                "<tr><td class=\"id\">{}</td><td>{}</td></tr>\n",
                escape(&k.source),
                escape(&k.reason)
            ));
        }
        page.push_str("</table>\n");
        let n = all.count();
        if n > 500 {
            page.push_str(&format!(
                "<p class=\"note\">… and {} more: see <code>summary.json</code>.</p>\n",
                n - 500
            ));
        }
    }
    page.push_str(&format!(
        "<footer>miascan {} · every figure on this page is recomputed from <code>scan.log.jsonl</code></footer>\n</body>\n</html>\n",
        escape(&s.miascan)
    ));
    page
}

/// One passage's tokens coloured by probability, with a tooltip each.
fn heatmap(rec: &crate::report::PassageRecord, by: &str) -> String {
    let (Some(tokens), Some(logp)) = (&rec.tokens, &rec.token_logprobs) else {
        return String::new();
    };
    let mut s = format!(
        "<div class=\"passage\"><div class=\"ptitle\">{} · passage {} · {} {}{}</div><div class=\"tokens\">",
        escape(rec.document.as_deref().unwrap_or(&rec.id)),
        rec.passage.unwrap_or(0),
        escape(by),
        rec.scores.get(by).map_or("–".into(), |v| format!("{v:.4}")),
        rec.p_values
            .as_ref()
            .and_then(|p| p.get(by))
            .map_or(String::new(), |p| format!(" · p-value {}", fmt_p(p)))
    );
    // the first token (BOS or first text token) is context only: shown plain
    let skip = tokens.len().saturating_sub(logp.len());
    for (i, t) in tokens.iter().enumerate() {
        if i < skip {
            s.push_str(&format!(
                "<span class=\"ctx\" title=\"not scored: the BOS, or the first token (context only)\">{}</span>",
                escape(t)
            ));
            continue;
        }
        let lp = logp[i - skip];
        let p = lp.exp();
        let rank = rec
            .token_ranks
            .as_ref()
            .and_then(|r| r.get(i - skip))
            .map_or(String::new(), |r| format!(" · rank {r}"));
        // opacity by probability: 0 → white, 1 → full colour
        let alpha = if lp.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        };
        s.push_str(&format!(
            "<span style=\"background:rgba(200,30,30,{alpha:.3})\" title=\"{} · p = {:.4} · log p = {:.3}{rank}\">{}</span>",
            escape(&format!("{t:?}")),
            p,
            lp,
            escape(t)
        ));
    }
    s.push_str("</div></div>\n");
    s
}

/// Overlaid histograms (each normalised to its own count) on a shared axis.
fn histogram_svg(title: &str, series: &[(String, Vec<f64>)]) -> String {
    const COLORS: [&str; 3] = ["#d62728", "#1f77b4", "#7f7f7f"];
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    if all.is_empty() {
        return "<p class=\"note\">No scores to show.</p>\n".into();
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
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<rect x=\"{l}\" y=\"{t}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#333\"/>\n"
    );
    let bw = pw / bins as f64;
    for (k, c) in hists.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        for (i, &v) in c.iter().enumerate() {
            if v > 0.0 {
                let bh = v / top * ph;
                s.push_str(&format!(
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\" fill-opacity=\"0.45\"/>\n",
                    l + i as f64 * bw,
                    t + ph - bh,
                    bw,
                    bh
                ));
            }
        }
        s.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{color}\" fill-opacity=\"0.6\"/><text x=\"{}\" y=\"{}\">{} ({})</text>\n",
            l + 10.0,
            t + 8.0 + 15.0 * k as f64,
            l + 25.0,
            t + 17.0 + 15.0 * k as f64,
            escape(&series[k].0),
            series[k].1.len()
        ));
    }
    for (x, label) in [(l, lo), (l + pw / 2.0, lo + span / 2.0), (l + pw, hi)] {
        s.push_str(&format!(
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{label:.3}</text>\n",
            t + ph + 15.0
        ));
    }
    s.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{} (higher = more likely in the training data)</text>\n</svg>\n",
        l + pw / 2.0,
        t + ph + 32.0,
        escape(title)
    ));
    s
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>miascan report</title>
<style>
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
</style>
</head>
<body>
"#;

const EXPLAIN: &str = "<h2>How to read this</h2>\n<p>A language model is run over each passage of each document and gives every token a probability. Text a model was trained on tends to look more predictable to it than text it never saw. Each score turns those probabilities into one number per passage; <b>higher means more likely to have been in the training data</b>. A score alone is not evidence: a p-value compares it with passages known <i>not</i> to be training data (the calibration). A p-value of 0.01 means that only 1% of such non-member passages score as high. A document's p-value combines its passages' p-values by a rule that holds however related the passages are; the adjusted p-value controls the expected share of wrongly flagged documents across the whole collection; and the collection test asks whether the documents, taken together, score higher than the non-members on average.</p>\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_escapes_and_handles_constants() {
        let s = histogram_svg("<x>", &[("a\"b".into(), vec![1.0, 1.0])]);
        assert!(s.contains("&lt;x&gt;") && s.contains("a&quot;b"), "{s}");
        assert!(!s.contains("<x>"));
    }
}
