//! The one table model: a report section built once as data (title, columns, rows, notes), which
//! text, Markdown and HTML only lay out. What differs between them is layout alone: how a verdict
//! reads (`ok`, ✅, `PASS`), the text's column widths and separators, whether a column that only
//! explains (a note) earns room in a Markdown table, and whether a range is one cell or two.

use std::fmt::Write;

use super::{escape, num};

/// A row's verdict; each layout has its own word for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// A threshold held.
    Pass,
    /// A threshold failed.
    Fail,
    /// Two sides of a cross-check agree.
    Agree,
    /// They disagree.
    Differ,
}

impl Mark {
    /// A threshold's verdict.
    pub(crate) fn passed(passed: bool) -> Self {
        if passed {
            Self::Pass
        } else {
            Self::Fail
        }
    }

    /// A cross-check's verdict.
    pub(crate) fn agrees(agrees: bool) -> Self {
        if agrees {
            Self::Agree
        } else {
            Self::Differ
        }
    }

    /// The text's word (four columns wide at most).
    pub(crate) fn text(self) -> &'static str {
        match self {
            Self::Pass | Self::Agree => "ok",
            Self::Fail => "FAIL",
            Self::Differ => "DIFF",
        }
    }

    fn markdown(self) -> &'static str {
        match self {
            Self::Pass | Self::Agree => "✅",
            Self::Fail | Self::Differ => "❌",
        }
    }

    fn html(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Agree => "ok",
            Self::Differ => "DIFF",
        }
    }
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    /// Text as it reads.
    Text(String),
    /// A verdict.
    Mark(Mark),
    /// An expression the reader may copy (Markdown sets it as code).
    Code(String),
    /// Low and high ends, `low..high` (HTML gives each end a column, so either sorts).
    Range(String, String),
    /// A measured figure: the text gives it three decimals (`not measured` when absent), the
    /// others read it as every figure ([`num`]).
    Measured(Option<f64>),
    /// A threshold's bound, and the baseline it was derived from: the text says it only when a
    /// baseline makes it worth saying (`   bound 1.2 (baseline 1)`), the others show the bound.
    Bound {
        /// The bound compared against.
        bound: Option<f64>,
        /// The baseline figure it came from, if any.
        baseline: Option<f64>,
    },
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Self::Text(t) | Self::Code(t) => t.clone(),
            Self::Mark(m) => m.text().into(),
            Self::Range(lo, hi) => format!("{lo}..{hi}"),
            Self::Measured(v) => v.map_or("not measured".into(), |a| format!("{a:.3}")),
            Self::Bound {
                bound: Some(b),
                baseline: Some(base),
            } => format!("   bound {} (baseline {})", num(Some(*b)), num(Some(*base))),
            Self::Bound { .. } => String::new(),
        }
    }

    /// How Markdown and HTML read it.
    fn value(&self) -> String {
        match self {
            Self::Measured(v) => num(*v),
            Self::Bound { bound, .. } => num(*bound),
            other => other.text(),
        }
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

/// How the text layout fits a column's cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    /// Padded to this width, left-aligned.
    Left(usize),
    /// Padded to this width, right-aligned.
    Right(usize),
    /// As it is (the last column).
    Free,
    /// `   (text)` after the row, nothing when empty: an explanation, not a figure.
    Aside,
}

/// One column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Column {
    /// Its heading.
    pub head: &'static str,
    /// Text layout: what goes before the cell (the row's indent, for the first column).
    pub sep: &'static str,
    /// Text layout: how the cell is fitted.
    pub fit: Fit,
    /// Markdown shows it (a summary for a CI page drops the explanations).
    pub markdown: bool,
}

impl Column {
    /// A column in every layout.
    pub(crate) const fn new(head: &'static str, sep: &'static str, fit: Fit) -> Self {
        Self {
            head,
            sep,
            fit,
            markdown: true,
        }
    }
}

/// A report section as data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Table {
    /// What the section is; each layout sets it as its heading.
    pub title: String,
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows, one cell per column.
    pub rows: Vec<Vec<Cell>>,
    /// Sentences about the whole table (HTML sets them before it).
    pub notes: Vec<String>,
}

impl Table {
    /// The rows as text, under a heading line of the column names when `header`.
    pub(crate) fn text(&self, header: bool) -> String {
        let mut s = String::new();
        let line = |s: &mut String, cells: &mut dyn Iterator<Item = String>| {
            for (col, c) in self.columns.iter().zip(cells) {
                let _ = match col.fit {
                    Fit::Left(w) => write!(s, "{}{c:<w$}", col.sep),
                    Fit::Right(w) => write!(s, "{}{c:>w$}", col.sep),
                    Fit::Free => write!(s, "{}{c}", col.sep),
                    Fit::Aside if c.is_empty() => Ok(()),
                    Fit::Aside => write!(s, "{}   ({c})", col.sep),
                };
            }
            s.push('\n');
        };
        if header {
            line(&mut s, &mut self.columns.iter().map(|c| c.head.to_owned()));
        }
        for row in &self.rows {
            line(&mut s, &mut row.iter().map(Cell::text));
        }
        s
    }

    /// A Markdown table (without a heading).
    pub(crate) fn markdown(&self) -> String {
        // `|` would end a cell and a newline the row.
        let escape = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let shown: Vec<usize> = (0..self.columns.len())
            .filter(|&i| self.columns[i].markdown)
            .collect();
        let mut s = String::from("|");
        for &i in &shown {
            let _ = match self.columns[i].head {
                "" => write!(s, " |"),
                head => write!(s, " {head} |"),
            };
        }
        let _ = writeln!(s, "\n|{}", "---|".repeat(shown.len()));
        for row in &self.rows {
            let cells: Vec<String> = shown
                .iter()
                .filter_map(|&i| row.get(i))
                .map(|c| match c {
                    Cell::Mark(m) => m.markdown().into(),
                    Cell::Code(t) => format!("`{}`", escape(t)),
                    other => escape(&other.value()),
                })
                .collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        s
    }

    /// An HTML table (without a heading), after its notes.
    pub(crate) fn html(&self) -> String {
        let mut s = String::new();
        for n in &self.notes {
            let _ = writeln!(s, "<p>{}</p>", escape(n));
        }
        s.push_str("<table><tr>");
        for col in &self.columns {
            // A range's heading (`min..max`) heads its two columns.
            let _ = match col.head.split_once("..") {
                Some((lo, hi)) => write!(s, "<th>{}</th><th>{}</th>", escape(lo), escape(hi)),
                None => write!(s, "<th>{}</th>", escape(col.head)),
            };
        }
        s.push_str("</tr>\n");
        for row in &self.rows {
            s.push_str("<tr>");
            for c in row {
                let _ = match c {
                    Cell::Mark(m) => write!(s, "<td>{}</td>", m.html()),
                    Cell::Range(lo, hi) => {
                        write!(s, "<td>{}</td><td>{}</td>", escape(lo), escape(hi))
                    }
                    other => write!(s, "<td>{}</td>", escape(&other.value())),
                };
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table>\n");
        s
    }
}
