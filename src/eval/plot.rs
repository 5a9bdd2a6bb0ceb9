//! Self-contained SVG plots: ROC curves and p-value against sample size. Built with maud,
//! which escapes every interpolated string: a label from the data (a score name, a title)
//! cannot become markup.

use maud::{html, Markup};

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

/// The plot frame with its title and axis labels around `body`.
fn frame(title: &str, xlabel: &str, ylabel: &str, body: Markup) -> String {
    let mid = T + PH / 2.0;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(W) height=(H) font-family="sans-serif" font-size="11" {
            rect width="100%" height="100%" fill="white" {}
            text x=(L + PW / 2.0) y="18" text-anchor="middle" font-size="13" { (title) }
            rect x=(L) y=(T) width=(PW) height=(PH) fill="none" stroke="black" {}
            text x=(L + PW / 2.0) y=(T + PH + 35.0) text-anchor="middle" { (xlabel) }
            text x="15" y=(mid) text-anchor="middle" transform=(format!("rotate(-90 15 {mid})")) { (ylabel) }
            (body)
        }
    }
    .into_string()
        + "\n"
}

fn polyline(points: &[(f64, f64)], color: &str) -> Markup {
    let pts: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{:.1},{:.1}", L + x * PW, T + (1.0 - y) * PH))
        .collect();
    html! { polyline fill="none" stroke=(color) stroke-width="1.5" points=(pts.join(" ")) {} }
}

fn legend(i: usize, label: &str, color: &str) -> Markup {
    let y = T + 12.0 + 16.0 * i as f64;
    html! {
        line x1=(L + PW + 10.0) y1=(y) x2=(L + PW + 30.0) y2=(y) stroke=(color) stroke-width="2" {}
        text x=(L + PW + 35.0) y=(y + 4.0) { (label) }
    }
}

/// ROC curves, one per `(label, points)`, with the chance diagonal; ticks at 0, 0.5, 1.
pub fn roc_svg(title: &str, curves: &[(String, Vec<(f64, f64)>)]) -> String {
    let body = html! {
        line x1=(L) y1=(T + PH) x2=(L + PW) y2=(T) stroke="#bbb" stroke-dasharray="4 3" {}
        @for v in [0.0, 0.5, 1.0] {
            text x=(L + v * PW) y=(T + PH + 14.0) text-anchor="middle" { (v) }
            text x=(L - 4.0) y=(T + (1.0 - v) * PH + 4.0) text-anchor="end" { (v) }
        }
        @for (i, (label, pts)) in curves.iter().enumerate() {
            (polyline(pts, COLORS[i % COLORS.len()]))
            (legend(i, label, COLORS[i % COLORS.len()]))
        }
    };
    frame(title, "false positive rate", "true positive rate", body)
}

/// p-value (log scale, from 1 down to the smallest p-value, at least 1e-10) against the
/// number of passages per set, with the 0.05 and 0.01 levels marked.
pub fn p_by_n_svg(title: &str, points: &[(usize, f64)]) -> String {
    let max_n = points.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let min_p = points.iter().map(|p| p.1).fold(1.0, f64::min).max(1e-300);
    let decades = (-min_p.log10()).ceil().max(10.0);
    let y = |p: f64| (-p.max(1e-300).log10() / decades).clamp(0.0, 1.0);
    let pts: Vec<(f64, f64)> = points
        .iter()
        .map(|&(n, p)| (n as f64 / max_n, y(p)))
        .collect();
    let body = html! {
        @for (lvl, name) in [(0.05, "0.05"), (0.01, "0.01")] {
            @let yy = T + (1.0 - y(lvl)) * PH;
            line x1=(L) y1=(yy) x2=(L + PW) y2=(yy) stroke="#bbb" stroke-dasharray="4 3" {}
            text x=(L + PW + 5.0) y=(yy + 4.0) { "p = " (name) }
        }
        @for e in [0.0, 0.5, 1.0] {
            text x=(L - 4.0) y=(T + (1.0 - e) * PH + 4.0) text-anchor="end" {
                @if e == 0.0 { "1" } @else { "1e-" ((e * decades).round()) }
            }
        }
        text x=(L + PW) y=(T + PH + 14.0) text-anchor="middle" { (max_n) }
        (polyline(&pts, COLORS[0]))
    };
    frame(title, "passages per set", "p-value (log scale)", body)
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
        assert!(svg.contains("a &lt;b&gt; &amp; &quot;c&quot;"), "{svg}");
    }
}
