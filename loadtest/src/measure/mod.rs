//! Measuring: the run clock, per-worker stats and their histograms, sequence accounting, CPU and
//! RSS from `/proc`, the resource sampler, scrapes of the server's metrics, the statistics
//! that judge repeated runs, and the tester's own live endpoint ([`exposition`]).

mod clock;
pub(crate) mod exposition;
mod histogram;
mod latency_times;
pub(crate) mod probe;
mod recovery;
pub(crate) mod sampler;
mod seq;
pub(crate) mod server_metrics;
pub(crate) mod significance;
mod stats;
pub(crate) mod sysinfo;

pub(crate) use clock::{Clock, TIMELINE_BUCKET};
pub(crate) use exposition::Exposition;
pub use histogram::decode;
pub(crate) use histogram::encode;
pub(crate) use recovery::{Position, Recovery};
pub(crate) use seq::{Receipt, SeqTracker};
pub(crate) use stats::{new_histogram, ConnResult, Live, WorkerStats};
