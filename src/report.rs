//! The plain-text table `score --table` prints for people (the JSON record is
//! [`crate::record`]; a scan's HTML page is [`crate::scan::report`]).

use crate::record::PassageRecord;

/// The calibrated decision shown in a table: the deciding score, the FPR, and each row's
/// p-value of that score (`None` where it has none).
pub struct TableDecision<'a> {
    pub by: &'a str,
    pub fpr: f64,
    pub p_values: &'a [Option<f64>],
}

/// A fixed-width table: id, tokens, loss, ppl, then every score.
pub fn table(results: &[PassageRecord], decision: Option<&TableDecision>) -> String {
    let Some(first) = results.first() else {
        return String::new();
    };
    let names: Vec<&str> = first.scores.iter().map(|(n, _)| n.as_str()).collect();
    let idw = results
        .iter()
        .map(|r| r.id.chars().count())
        .max()
        .unwrap_or(2)
        .clamp(2, 40);
    let mut out = format!(
        "{:<idw$}  {:>6}  {:>7}  {:>9}",
        "id", "tokens", "loss", "ppl"
    );
    for n in &names {
        out.push_str(&format!("  {:>11}", n));
    }
    if decision.is_some() {
        out.push_str(&format!("  {:>9}  {:>7}", "p-value", "flagged"));
    }
    out.push('\n');
    let f = |x: Option<f64>, prec: usize| match x {
        Some(v) if v.is_finite() => format!("{v:.prec$}"),
        _ => "-".into(),
    };
    for (i, r) in results.iter().enumerate() {
        let id: String = if r.id.chars().count() > idw {
            let tail: String =
                r.id.chars()
                    .rev()
                    .take(idw - 1)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
            format!("…{tail}")
        } else {
            r.id.clone()
        };
        out.push_str(&format!(
            "{:<idw$}  {:>6}  {:>7}  {:>9}",
            id,
            r.n_tokens,
            f(r.stats.loss, 3),
            f(r.stats.ppl, 2)
        ));
        for (_, v) in &r.scores {
            out.push_str(&format!("  {:>11}", f(*v, 4)));
        }
        if let Some(d) = decision {
            let p = d.p_values.get(i).copied().flatten();
            let flagged = match p {
                Some(p) if p <= d.fpr => "yes",
                Some(_) => "no",
                None => "-",
            };
            out.push_str(&format!("  {:>9}  {:>7}", f(p, 4), flagged));
        }
        if let Some(reason) = &r.reason {
            out.push_str(&format!("  ({reason})"));
        }
        out.push('\n');
    }
    out.push_str("scores: higher = more likely a member of the training data\n");
    if let Some(d) = decision {
        let n = d
            .p_values
            .iter()
            .filter(|p| p.is_some_and(|p| p <= d.fpr))
            .count();
        out.push_str(&format!(
            "p-value: of {} against the calibration's non-members; flagged when <= {} (FPR): {n} of {}\n",
            d.by,
            d.fpr,
            results.len()
        ));
    }
    out
}
