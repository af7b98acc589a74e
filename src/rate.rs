//! Token buckets: the per-connection client-message limit and the per-IP handshake limit.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;

use tokio::time::Instant;

/// A token bucket: `rate` tokens a second up to `burst`; `rate <= 0` lets everything through.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: f64, burst: usize) -> Self {
        let burst = burst.max(1) as f64;
        Self {
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes a token if there is one.
    pub(crate) fn allow(&mut self) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Buckets in the per-IP table. Addresses that hash to one slot share its budget (a false refusal
/// at worst, never a missed one); 16k slots keep that rare for thousands of distinct clients a
/// second, in a fixed 400 KB whatever the attacker's address space.
const IP_SLOTS: usize = 16 * 1024;

/// Handshakes per client address: a fixed table of token buckets indexed by a keyed hash of the
/// address — an IPv6 client by its /64, since one host routinely owns a whole /64.
pub(crate) struct IpRate {
    hasher: RandomState,
    slots: Mutex<Vec<TokenBucket>>,
}

impl IpRate {
    /// `None` when `rate <= 0` (the limit is off).
    pub(crate) fn new(rate: f64, burst: usize) -> Option<Self> {
        (rate > 0.0).then(|| Self {
            hasher: RandomState::new(),
            slots: Mutex::new(vec![TokenBucket::new(rate, burst); IP_SLOTS]),
        })
    }

    /// Whether `ip` may start another handshake now.
    pub(crate) fn allow(&self, ip: IpAddr) -> bool {
        let slot = self.slot(ip);
        // A poisoned lock only means another handshake panicked mid-update: the buckets are
        // still plain numbers.
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots[slot].allow()
    }

    fn slot(&self, ip: IpAddr) -> usize {
        let key = match ip {
            IpAddr::V4(v4) => u128::from(v4.to_bits()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => u128::from(v4.to_bits()),
                None => v6.to_bits() >> 64 << 64,
            },
        };
        self.hasher.hash_one(key) as usize % IP_SLOTS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_allows_its_burst_then_its_rate() {
        let mut b = TokenBucket::new(10.0, 3);
        assert!((0..3).all(|_| b.allow()));
        assert!(!b.allow());
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(b.allow());
        assert!(!b.allow());
    }

    #[tokio::test(start_paused = true)]
    async fn addresses_have_their_own_budget_and_a_v6_host_is_its_64() {
        let rate = IpRate::new(1.0, 2).expect("on");
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b = (2..100u8)
            .map(|n| IpAddr::from([10, 0, 0, n]))
            .find(|b| rate.slot(*b) != rate.slot(a))
            .expect("a free slot");
        assert!(rate.allow(a) && rate.allow(a));
        assert!(!rate.allow(a));
        // Another address (in another slot) is unaffected.
        assert!(rate.allow(b));
        let h1: IpAddr = "2001:db8::1".parse().unwrap();
        let h2: IpAddr = "2001:db8::ffff:1234".parse().unwrap();
        assert!(rate.allow(h1) && rate.allow(h2));
        assert!(!rate.allow(h1), "one /64 shares one budget");
        assert!(IpRate::new(0.0, 5).is_none());
    }
}
