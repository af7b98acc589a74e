//! Pre-flight checks of the machine's limits (open files, ephemeral ports), with what to change.

use super::{Plan, Target};
use crate::error::{Error, Result};

/// File descriptors kept free for the runtime, listeners, HTTP publishers and reports.
const FD_SLACK: u64 = 128;
/// Ports per source address left unused, for TIME_WAIT stragglers from an earlier run.
const PORT_SLACK: usize = 1000;

/// File descriptors the plan needs in this process (both ends count when the server is embedded).
pub fn fds_needed(plan: &Plan) -> u64 {
    let per_conn = if matches!(plan.target, Target::Embedded { .. }) {
        2
    } else {
        1
    };
    plan.connections as u64 * per_conn + FD_SLACK
}

/// Raises the soft open-file limit to the hard limit and checks it covers the plan.
pub(crate) fn check_fds(plan: &Plan) -> Result<u64> {
    let need = fds_needed(plan);
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map_err(|e| Error::Limit(format!("getrlimit: {e}")))?;
    let soft = if soft < hard {
        rlimit::increase_nofile_limit(hard).unwrap_or(soft)
    } else {
        soft
    };
    if soft >= need {
        return Ok(soft);
    }
    let embedded = matches!(plan.target, Target::Embedded { .. });
    let mut msg = format!(
        "{} connections need about {need} open files in this process{}, but the limit is {soft} (hard {hard}).",
        plan.connections,
        if embedded { " (server and client ends both count when the server is embedded)" } else { "" }
    );
    if need <= hard {
        msg.push_str(&format!(" Run `ulimit -n {need}` first."));
    } else {
        msg.push_str(&format!(" Raise the hard limit (limits.conf / systemd LimitNOFILE) to {need}, or lower --connections to {}", (hard.saturating_sub(FD_SLACK)) / if embedded { 2 } else { 1 }));
        if embedded {
            msg.push_str(", or run the server as its own process and use --target");
        }
        msg.push('.');
    }
    Err(Error::Limit(msg))
}

/// The ephemeral port range (`net.ipv4.ip_local_port_range`), if readable.
pub(crate) fn port_range() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}

/// Checks that each source address has enough ephemeral ports for its share of connections.
pub(crate) fn check_ports(plan: &Plan) -> Result<()> {
    let Some((lo, hi)) = port_range() else {
        return Ok(());
    };
    let ports = (hi.saturating_sub(lo) + 1) as usize;
    let sources = plan.sources.len().max(1);
    let per_source = plan.connections.div_ceil(sources);
    if per_source + PORT_SLACK <= ports {
        return Ok(());
    }
    let want = plan
        .connections
        .div_ceil(ports.saturating_sub(PORT_SLACK).max(1));
    Err(Error::Limit(format!(
        "{per_source} connections per source address but only {ports} ephemeral ports ({lo}-{hi}). \
         Use --source-addrs {want} (loopback targets), or widen net.ipv4.ip_local_port_range."
    )))
}
