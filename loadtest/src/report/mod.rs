//! The report of a run: built once from a session's data (`build.rs`), judged against the plan's
//! thresholds and baseline, then laid out by [`render`] and written where the plan says.

mod build;
mod churn;
pub mod pace;
pub mod render;
pub(crate) mod series;

use anyhow::Context;

pub(crate) use build::curve;
pub(crate) use pace::exit_code;

use crate::plan::Outputs;
use crate::schema::{Report, SearchOver};

/// Writes the requested files and prints the summary (or the JSON) of `report`; `baseline` goes
/// beside it in the HTML page.
pub(crate) fn write_outputs(
    o: &Outputs,
    baseline: Option<&Report>,
    report: &Report,
) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report).context("serializing the report")?;
    let write = |path: &std::path::Path, text: &str| -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    };
    if let Some(p) = &o.json {
        write(p, &json)?;
    }
    if let Some(p) = &o.junit {
        write(p, &render::junit::render(report))?;
    }
    if let Some(p) = &o.html {
        write(p, &render::html::render(report, baseline))?;
    }
    if let Some(p) = &o.markdown {
        write(p, &render::markdown::render(report))?;
    }
    if o.print_json {
        println!("{json}");
    } else {
        print!("{}", render::text::render(report));
        if let Some(fm) = &report.find_max {
            let best = match (fm.over, fm.highest_passing) {
                (_, None) => "none".into(),
                (SearchOver::Connections, Some(n)) => format!("{n:.0} connections"),
                (SearchOver::Rate, Some(r)) => {
                    format!("{r:.0} events/s at {} connections", fm.connections)
                }
                (SearchOver::Speed, Some(s)) => {
                    format!("replay speed ×{s:.2} at {} connections", fm.connections)
                }
            };
            // A search the tester capped found a lower bound, not the server's limit.
            let bound = if fm.tester_limited_at.is_some() {
                " — a lower bound: the tester set the pace above it"
            } else {
                ""
            };
            println!(
                "Capacity search: highest passing step {best}{bound} ({}; {} steps)",
                fm.ended_by,
                fm.steps.len()
            );
        }
    }
    Ok(())
}
