//! `loadtest conform`: a named suite of protocol checks (PROTOCOL.md) against any server that
//! speaks it — courier, the Django seed under Daphne, a deployment — with PASS/FAIL/SKIP per check
//! and the observed frame on failure.

mod checks;
mod client;
mod publish;
mod recovery;

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

pub use checks::CHECKS;
use checks::{Ctx, Miss};
use client::Dial;
use publish::EventSender;

pub use crate::cli::ConformOpts;
use crate::cli::PublisherKind;
use crate::error::{Error, Result, EXIT_FAIL, EXIT_PASS};
use crate::plan::{parse_target, publisher_layer, tls_client};
use crate::report::render::escape;
use crate::session::tokens;

/// Default wait for one expected frame or close.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(2);
/// A check's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// The server behaved as the protocol says.
    Pass,
    /// It did not; `detail` says what was expected and observed.
    Fail,
    /// The check could not run with the given options; `detail` says why.
    Skip,
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: &'static str,
    /// The rule it checks.
    pub rule: &'static str,
    /// Pass, fail or skip.
    pub status: Status,
    /// Expected and observed (fail), or why it was skipped.
    pub detail: String,
}

/// The whole suite's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Suite {
    /// The target.
    pub target: String,
    /// One entry per check, in suite order.
    pub checks: Vec<CheckResult>,
    /// No check failed.
    pub passed: bool,
}

/// Builds the context from the options: a usage error for a bad target, token source or publisher.
async fn context(o: &ConformOpts) -> Result<Ctx> {
    let t = &o.target;
    let target = t
        .url
        .as_deref()
        .ok_or_else(|| Error::Usage("conform needs --target ws://…".into()))?;
    let ep = parse_target(target, t.allow_remote)?;
    let tls = tls_client(t, ep.is_tls())?;
    let dial = Dial {
        url: format!(
            "{}://{}{}",
            if ep.is_tls() { "wss" } else { "ws" },
            ep.host,
            ep.path
        ),
        peer: ep.peer(tls.as_ref()),
    };
    if dial.peer.tls.is_some() {
        // A certificate the suite does not trust fails it once, clearly, not in every check.
        if let Err(e) = dial.peer.open().await {
            if e.starts_with("tls:") {
                return Err(Error::Setup(format!("--target {target}: {e}")));
            }
        }
    }
    let wait = match &o.wait {
        None => DEFAULT_WAIT,
        Some(w) => {
            humantime::parse_duration(w).map_err(|e| Error::Usage(format!("--wait {w:?}: {e}")))?
        }
    };
    let expiry_wait = o
        .expiry_wait
        .as_deref()
        .map(|w| {
            humantime::parse_duration(w)
                .map_err(|e| Error::Usage(format!("--expiry-wait {w:?}: {e}")))
        })
        .transpose()?;
    let tokens = match (&t.jwt_secret, &t.tokens_file) {
        (Some(s), None) => tokens::mint(s, 0, 3)?,
        (None, Some(f)) => tokens::from_file(f, 0, 3)?,
        _ => {
            return Err(Error::Usage(
                "conform needs exactly one of --jwt-secret or --tokens-file".into(),
            ))
        }
    };
    let sender = match (o.publisher, &t.api_key) {
        (None | Some(PublisherKind::Http), Some(key)) => EventSender::Http {
            peer: dial.peer.clone(),
            api_key: key.clone(),
        },
        (Some(PublisherKind::Http), None) => {
            return Err(Error::Usage("--publisher http needs --api-key".into()))
        }
        (None, None) => EventSender::None,
        (Some(kind), _) => {
            let layer = publisher_layer(kind).ok_or_else(|| {
                Error::Usage(format!(
                    "conform publishes with http, redis-pubsub or redis-core, not {}",
                    kind.name()
                ))
            })?;
            let mut redis = courier::config::RedisConfig::default();
            if let Some(url) = &o.redis_url {
                redis.urls = vec![url.clone()];
            }
            if let Some(prefix) = &o.redis_prefix {
                redis.prefix = prefix.clone();
            }
            EventSender::redis(layer, &redis).map_err(Error::Setup)?
        }
    };
    Ok(Ctx {
        url: dial,
        wait,
        users: tokens.user_ids.into_iter().zip(tokens.tokens).collect(),
        secret: t.jwt_secret.clone(),
        sender,
        max_frame_bytes: o.max_frame_bytes,
        expiry_wait,
    })
}

/// Runs the checks named by `--only` (all by default) in suite order.
pub async fn suite(o: &ConformOpts) -> Result<Suite> {
    for name in &o.only {
        if !CHECKS.iter().any(|(n, _)| n == name) {
            let known: Vec<&str> = CHECKS.iter().map(|(n, _)| *n).collect();
            return Err(Error::Usage(format!(
                "--only: no check named {name:?}; known: {}",
                known.join(", ")
            )));
        }
    }
    let ctx = context(o).await?;
    let mut results = Vec::new();
    for (name, rule) in CHECKS {
        if !o.only.is_empty() && !o.only.iter().any(|n| n == name) {
            continue;
        }
        // Every check is bounded: a server that hangs mid-check fails it, not the suite.
        let bound = ctx.wait * 8 + recovery::extra_time(name, &ctx);
        let verdict = match tokio::time::timeout(bound, checks::run(name, &ctx)).await {
            Ok(v) => v,
            Err(_) => Err(Miss::Fail(format!(
                "the check did not finish within {}",
                humantime::format_duration(bound)
            ))),
        };
        let (status, detail) = match verdict {
            Ok(()) => (Status::Pass, String::new()),
            Err(Miss::Fail(d)) => (Status::Fail, d),
            Err(Miss::Skip(d)) => (Status::Skip, d),
        };
        results.push(CheckResult {
            name,
            rule,
            status,
            detail,
        });
    }
    Ok(Suite {
        target: o.target.url.clone().unwrap_or_default(),
        passed: results.iter().all(|r| r.status != Status::Fail),
        checks: results,
    })
}

/// The text table.
pub fn render(s: &Suite) -> String {
    let mut out = format!("conform {}\n", s.target);
    let count = |st: Status| s.checks.iter().filter(|c| c.status == st).count();
    for c in &s.checks {
        let status = match c.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        };
        let _ = writeln!(out, "  {status}  {}", c.name);
        if !c.detail.is_empty() {
            let _ = writeln!(out, "        {}", c.detail);
        }
    }
    let _ = writeln!(
        out,
        "{} passed, {} failed, {} skipped",
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Skip)
    );
    out
}

/// JUnit XML: one test case per check (skipped ones marked `<skipped/>`).
pub fn junit(s: &Suite) -> String {
    let failures = s.checks.iter().filter(|c| c.status == Status::Fail).count();
    let skipped = s.checks.iter().filter(|c| c.status == Status::Skip).count();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"loadtest.conform\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">\n",
        s.checks.len()
    );
    for c in &s.checks {
        let _ = write!(
            x,
            "  <testcase classname=\"loadtest.conform\" name=\"{}\">",
            escape(c.name)
        );
        match c.status {
            Status::Pass => {}
            Status::Fail => {
                let _ = write!(x, "<failure message=\"{}\"/>", escape(&c.detail));
            }
            Status::Skip => {
                let _ = write!(x, "<skipped message=\"{}\"/>", escape(&c.detail));
            }
        }
        x.push_str("</testcase>\n");
    }
    x.push_str("</testsuite>\n</testsuites>\n");
    x
}

/// Runs `loadtest conform`: prints the table, writes the files asked for, returns the exit code.
pub async fn run(o: &ConformOpts) -> anyhow::Result<u8> {
    if o.list {
        for (name, rule) in CHECKS {
            println!("{name:<32} {rule}");
        }
        return Ok(EXIT_PASS);
    }
    let s = suite(o).await?;
    print!("{}", render(&s));
    if let Some(p) = &o.junit {
        std::fs::write(p, junit(&s))
            .map_err(|e| Error::Setup(format!("writing {}: {e}", p.display())))?;
    }
    if let Some(p) = &o.json {
        let text = serde_json::to_string_pretty(&s)?;
        std::fs::write(p, text)
            .map_err(|e| Error::Setup(format!("writing {}: {e}", p.display())))?;
    }
    Ok(if s.passed { EXIT_PASS } else { EXIT_FAIL })
}
