//! Self-contained SVG plots (no dependencies): ROC curves and p-value against sample size.
//! Every label is XML-escaped.

/// Escapes text for XML/HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#17becf", "#bcbd22",
];
const W: f64 = 520.0;
const H: f64 = 420.0;
const L: f64 = 60.0;
const T: f64 = 30.0;
const PW: f64 = 300.0;
const PH: f64 = 320.0;

fn frame(title: &str, xlabel: &str, ylabel: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">{}</text>\n\
         <rect x=\"{L}\" y=\"{T}\" width=\"{PW}\" height=\"{PH}\" fill=\"none\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n\
         <text x=\"15\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 15 {})\">{}</text>\n",
        L + PW / 2.0,
        escape(title),
        L + PW / 2.0,
        T + PH + 35.0,
        escape(xlabel),
        T + PH / 2.0,
        T + PH / 2.0,
        escape(ylabel)
    )
}

fn polyline(points: &[(f64, f64)], color: &str) -> String {
    let pts: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{:.1},{:.1}", L + x * PW, T + (1.0 - y) * PH))
        .collect();
    format!(
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
        pts.join(" ")
    )
}

fn legend(i: usize, label: &str, color: &str) -> String {
    let y = T + 12.0 + 16.0 * i as f64;
    format!(
        "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{color}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
        L + PW + 10.0,
        L + PW + 30.0,
        L + PW + 35.0,
        y + 4.0,
        escape(label)
    )
}

/// ROC curves, one per `(label, points)`, with the chance diagonal; ticks at 0, 0.5, 1.
pub fn roc_svg(title: &str, curves: &[(String, Vec<(f64, f64)>)]) -> String {
    let mut s = frame(title, "false positive rate", "true positive rate");
    s.push_str(&format!(
        "<line x1=\"{L}\" y1=\"{}\" x2=\"{}\" y2=\"{T}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>\n",
        T + PH,
        L + PW
    ));
    for v in [0.0, 0.5, 1.0] {
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{v}</text>\n",
            L + v * PW,
            T + PH + 14.0
        ));
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v}</text>\n",
            L - 4.0,
            T + (1.0 - v) * PH + 4.0
        ));
    }
    for (i, (label, pts)) in curves.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        s.push_str(&polyline(pts, c));
        s.push_str(&legend(i, label, c));
    }
    s.push_str("</svg>\n");
    s
}

/// p-value (log scale, from 1 down to the smallest p-value, at least 1e-10) against the
/// number of passages per set, with the 0.05 and 0.01 levels marked.
pub fn p_by_n_svg(title: &str, points: &[(usize, f64)]) -> String {
    let mut s = frame(title, "passages per set", "p-value (log scale)");
    let max_n = points.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let min_p = points.iter().map(|p| p.1).fold(1.0, f64::min).max(1e-300);
    let decades = (-min_p.log10()).ceil().max(10.0);
    let y = |p: f64| (-p.max(1e-300).log10() / decades).clamp(0.0, 1.0);
    for (lvl, name) in [(0.05, "0.05"), (0.01, "0.01")] {
        let yy = T + (1.0 - y(lvl)) * PH;
        s.push_str(&format!(
            "<line x1=\"{L}\" y1=\"{yy}\" x2=\"{}\" y2=\"{yy}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/><text x=\"{}\" y=\"{}\">p = {name}</text>\n",
            L + PW,
            L + PW + 5.0,
            yy + 4.0
        ));
    }
    for e in [0.0, 0.5, 1.0] {
        let lbl = if e == 0.0 {
            "1".to_string()
        } else {
            format!("1e-{}", (e * decades).round())
        };
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{lbl}</text>\n",
            L - 4.0,
            T + (1.0 - e) * PH + 4.0
        ));
    }
    s.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
        L + PW,
        T + PH + 14.0,
        max_n
    ));
    let pts: Vec<(f64, f64)> = points
        .iter()
        .map(|&(n, p)| (n as f64 / max_n, y(p)))
        .collect();
    s.push_str(&polyline(&pts, COLORS[0]));
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_plot_scales_to_the_smallest_p() {
        let svg = p_by_n_svg("t", &[(10, 2.6e-6), (100, 5.2e-54)]);
        assert!(svg.contains(">1e-54<") && svg.contains(">1e-27<"), "{svg}");
        let svg = p_by_n_svg("t", &[(10, 0.5), (20, 0.2)]);
        assert!(svg.contains(">1e-10<"));
    }

    #[test]
    fn labels_are_escaped() {
        let svg = roc_svg(
            "a <b> & \"c\"",
            &[("<script>".into(), vec![(0.0, 0.0), (1.0, 1.0)])],
        );
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"));
        assert!(svg.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
    }
}
