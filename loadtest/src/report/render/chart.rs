//! Inline SVG charts for the HTML report: line charts with several series (gaps where a value is
//! missing, dashed baselines), a bar chart, and axis ticks at 1-2-5 steps whose labels read well
//! at any scale (`0 ms … 80 ms`, `0 s … 2.5 s`, `0:00 … 5:00`).

use std::fmt::Write;

use super::escape;

const W: f64 = 680.0;
const H: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 36.0;

/// Series colours, in order.
pub(crate) const COLORS: [&str; 4] = ["#2a6fdb", "#e07b00", "#c0392b", "#2e8b57"];

/// One line.
pub(crate) struct Series<'a> {
    /// Legend text.
    pub(crate) name: &'a str,
    /// (x, y) points; `None` breaks the line.
    pub(crate) points: Vec<(f64, Option<f64>)>,
    /// Stroke colour.
    pub(crate) color: &'a str,
    /// Dashed (a baseline).
    pub(crate) dashed: bool,
}

/// How the x axis is labelled.
pub(crate) enum XAxis {
    /// Seconds, labelled by [`time_label`] at nice steps.
    Time,
    /// Fixed ticks.
    Fixed(Vec<(f64, String)>),
}

/// A 1-2-5 step giving about `target` ticks over `span`.
pub(crate) fn nice_step(span: f64, target: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / target;
    let mag = 10f64.powf(raw.log10().floor());
    let m = raw / mag;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Time steps that read well as clock times beyond a minute.
const TIME_STEPS: [f64; 11] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// A step for a time axis over `span` seconds (1-2-5 below a second, clock steps above).
pub(crate) fn time_step(span: f64) -> f64 {
    let step = nice_step(span, 5.0);
    if step < 1.0 {
        return step;
    }
    TIME_STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 7.0)
        .unwrap_or(3600.0)
}

/// A time label with as many decimals as the step needs: `250 ms`, `1.5 s`, `2:30`.
pub(crate) fn time_label(t: f64, step: f64) -> String {
    if step < 0.1 && t < 1.0 {
        let decimals = if step < 0.001 { 1 } else { 0 };
        format!("{:.*} ms", decimals, t * 1000.0)
    } else if step < 60.0 && t < 120.0 {
        let decimals = if step < 1.0 {
            (-step.log10()).ceil() as usize
        } else {
            0
        };
        format!("{t:.decimals$} s")
    } else {
        let secs = t.round() as u64;
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

/// A value label: `12`, `2.5`, `1.2k`, `3.4M`, with enough decimals to tell ticks `step` apart.
pub(crate) fn value_label(v: f64, step: f64) -> String {
    let (scale, unit) = if v.abs() >= 1e6 || step >= 1e6 {
        (1e6, "M")
    } else if v.abs() >= 1e3 || step >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let s = step / scale;
    let decimals = if s >= 1.0 || s <= 0.0 {
        0
    } else {
        (-s.log10()).ceil() as usize
    };
    format!("{:.*}{unit}", decimals, v / scale)
}

fn ticks(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn frame(title: &str, y_label: &str) -> String {
    let mut s = format!(
        "<h2>{}</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\">\n",
        escape(title)
    );
    let _ = writeln!(
        s,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"#fafafa\" stroke=\"#ccc\"/>\n<text x=\"4\" y=\"{}\" font-size=\"11\">{}</text>",
        W - LEFT - RIGHT,
        H - TOP - BOTTOM,
        TOP - 12.0,
        escape(y_label)
    );
    s
}

/// A line chart; the y axis starts at 0.
pub(crate) fn line_chart(title: &str, y_label: &str, x: XAxis, series: &[Series]) -> String {
    debug_assert!(series.len() <= 4, "the legend holds four series");
    let mut s = frame(title, y_label);
    let pts = || series.iter().flat_map(|se| se.points.iter());
    let xs: Vec<f64> = pts().map(|p| p.0).collect();
    let ys: Vec<f64> = pts().filter_map(|p| p.1).collect();
    if xs.is_empty() || ys.is_empty() {
        s.push_str("<text x=\"80\" y=\"80\">no data</text></svg>\n");
        return s;
    }
    let (x0, x1) = xs
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let y_max = ys.iter().copied().fold(0.0, f64::max).max(1e-9);
    let y_step = nice_step(y_max, 4.0);
    let y1 = (y_max / y_step).ceil() * y_step;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let sx = |v: f64| LEFT + (v - x0) / (x1 - x0) * pw;
    let sy = |v: f64| TOP + ph - v / y1 * ph;
    for y in ticks(0.0, y1, y_step) {
        let (py, x2, lx) = (sy(y), W - RIGHT, LEFT - 4.0);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{x2}\" y1=\"{py:.1}\" y2=\"{py:.1}\" stroke=\"#e4e4e4\"/><text x=\"{lx}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            py + 3.0,
            value_label(y, y_step)
        );
    }
    let x_ticks: Vec<(f64, String)> = match x {
        XAxis::Fixed(t) => t,
        XAxis::Time => {
            let step = time_step(x1 - x0);
            ticks(x0, x1, step)
                .into_iter()
                .map(|t| (t, time_label(t, step)))
                .collect()
        }
    };
    for (t, label) in x_ticks
        .iter()
        .filter(|(t, _)| *t >= x0 - 1e-9 && *t <= x1 + 1e-9)
    {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            sx(*t),
            H - BOTTOM + 14.0,
            escape(label)
        );
    }
    // The legend starts after the y label (about 6 px per character at 11 px).
    let legend_x = (4.0 + y_label.chars().count() as f64 * 6.5 + 16.0).max(LEFT + 8.0);
    for (i, se) in series.iter().enumerate() {
        let dash = if se.dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        for run in se.points.split(|p| p.1.is_none()).filter(|r| !r.is_empty()) {
            let path: Vec<String> = run
                .iter()
                .filter_map(|(x, y)| y.map(|y| format!("{:.1},{:.1}", sx(*x), sy(y))))
                .collect();
            if path.len() == 1 {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{}\" r=\"2\" fill=\"{}\"/>",
                    path[0].replace(',', "\" cy=\""),
                    se.color
                );
            } else {
                let _ = writeln!(
                    s,
                    "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
                    se.color,
                    path.join(" ")
                );
            }
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" fill=\"{}\">{}{}</text>",
            legend_x + i as f64 * 150.0,
            TOP - 12.0,
            se.color,
            if se.dashed { "- - " } else { "— " },
            escape(se.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A bar chart of (label, count) bins, labelling about eight of them.
pub(crate) fn bar_chart(title: &str, y_label: &str, bins: &[(String, u64)]) -> String {
    let mut s = frame(title, y_label);
    let max = bins.iter().map(|b| b.1).max().unwrap_or(0);
    if bins.is_empty() || max == 0 {
        s.push_str("<text x=\"80\" y=\"80\">no data</text></svg>\n");
        return s;
    }
    let y_step = nice_step(max as f64, 4.0).max(1.0);
    let y1 = (max as f64 / y_step).ceil() * y_step;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let bw = pw / bins.len() as f64;
    for y in ticks(0.0, y1, y_step) {
        let py = TOP + ph - y / y1 * ph;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            LEFT - 4.0,
            py + 3.0,
            value_label(y, y_step)
        );
    }
    let every = bins.len().div_ceil(8).max(1);
    for (i, (label, n)) in bins.iter().enumerate() {
        let h = *n as f64 / y1 * ph;
        let x = LEFT + i as f64 * bw;
        let _ = writeln!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{} {n}</title></rect>",
            x + 1.0,
            TOP + ph - h,
            (bw - 2.0).max(1.0),
            COLORS[0],
            escape(label)
        );
        if i % every == 0 {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
                x + bw / 2.0,
                H - BOTTOM + 14.0,
                escape(label)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(span: f64) -> Vec<String> {
        let step = time_step(span);
        ticks(0.0, span, step)
            .into_iter()
            .map(|t| time_label(t, step))
            .collect()
    }

    #[test]
    fn time_ticks_read_well_at_any_length() {
        assert_eq!(
            labels(0.1),
            ["0 ms", "20 ms", "40 ms", "60 ms", "80 ms", "100 ms"]
        );
        assert_eq!(
            labels(2.5),
            ["0.0 s", "0.5 s", "1.0 s", "1.5 s", "2.0 s", "2.5 s"]
        );
        assert_eq!(
            labels(30.0),
            ["0 s", "5 s", "10 s", "15 s", "20 s", "25 s", "30 s"]
        );
        assert_eq!(
            labels(300.0),
            ["0:00", "1:00", "2:00", "3:00", "4:00", "5:00"]
        );
        for span in [0.013, 0.1, 0.7, 1.0, 4.3, 59.0, 61.0, 600.0, 3000.0] {
            let l = labels(span);
            let mut d = l.clone();
            d.dedup();
            assert_eq!(l, d, "distinct labels for {span}: {l:?}");
            assert!(l.len() >= 2 && l.len() <= 12, "{span}: {l:?}");
        }
    }

    #[test]
    fn value_labels_tell_ticks_apart() {
        assert_eq!(value_label(2500.0, 500.0), "2.5k");
        assert_eq!(value_label(1_200_000.0, 200_000.0), "1.2M");
        assert_eq!(value_label(0.25, 0.05), "0.25");
        assert_eq!(value_label(40.0, 10.0), "40");
    }
}
