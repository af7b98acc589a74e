//! `--baseline`: a previous run's JSON report, read before the run (a relative threshold such as
//! `p99_ms<=1.2*baseline` resolves against it).

use std::path::Path;

use crate::error::{Error, Result};
use crate::schema::Report;

/// A baseline report and where it came from.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// The path as given, for the reader.
    pub source: String,
    /// The report.
    pub report: Report,
}

impl Baseline {
    /// Reads a JSON report written by `--json`; an unreadable or foreign file is a usage error.
    pub fn load(path: &Path) -> Result<Self> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("baseline {source}: {e}")))?;
        let report: Report = serde_json::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "baseline {source}: not a loadtest JSON report ({e})"
            ))
        })?;
        Ok(Self { source, report })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Comparison, Movement};

    #[test]
    fn a_stored_report_loads_as_a_baseline() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report-default.json");
        let b = Baseline::load(&path).expect("fixture loads");
        let c = Comparison::new(&b.source, &b.report, &b.report);
        let p99 = c.figure("p99_ms").expect("p99 row");
        assert_eq!(p99.baseline, b.report.metric("p99_ms"));
        assert_eq!(p99.movement, Movement::Same);
        assert!(Baseline::load(Path::new("Cargo.toml")).is_err(), "not JSON");
        // A version-1 report with the old find_max shape still loads, without its search.
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        v["find_max"] = serde_json::json!({"steps": [{"connections": 5}], "highest_passing": 5});
        let r: Report = serde_json::from_value(v).expect("loads");
        assert!(r.find_max.is_none());
    }
}
