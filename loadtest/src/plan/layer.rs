//! The channel layer (as courier names it): Redis settings shared by the Redis publishers and the embedded server's channel layer: flags
//! over the scenario over defaults, and the rule that both sides speak the same wire format.

use courier::config::{LayerKind, RedisConfig, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_URL};

use super::{Scenario, Target};
use crate::cli::{Opts, PublisherKind, ServerLayer};
use crate::error::{Error, Result};

/// Where the Redis publishers write and which layer the embedded server runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// channels_redis `hosts`, in Django's order (`--redis-url a,b,c`): `redis://…` each.
    pub urls: Vec<String>,
    /// channels_redis `prefix`.
    pub prefix: String,
    /// The embedded server's channel layer (ignored for an external target).
    pub server_layer: LayerKind,
}

impl Layer {
    /// Resolves the settings and checks that the embedded server can hear the publisher: a Redis
    /// publisher needs the matching Redis layer, or every event would be lost by construction.
    pub fn resolve(
        opts: &Opts,
        s: &Scenario,
        publisher: PublisherKind,
        target: &Target,
    ) -> Result<Self> {
        let url = opts
            .redis_url
            .clone()
            .or_else(|| s.publish.redis_url.clone())
            .unwrap_or_else(|| DEFAULT_REDIS_URL.into());
        let urls: Vec<String> = url.split(',').map(|u| u.trim().to_owned()).collect();
        if urls.iter().any(String::is_empty) {
            return Err(Error::Usage(format!(
                "--redis-url {url:?}: expected redis://… or a comma-separated list of them"
            )));
        }
        let prefix = opts
            .redis_prefix
            .clone()
            .or_else(|| s.publish.redis_prefix.clone())
            .unwrap_or_else(|| DEFAULT_REDIS_PREFIX.into());
        if prefix.is_empty() {
            return Err(Error::Usage("--redis-prefix must not be empty".into()));
        }
        let from_file = match s.server.layer.as_deref() {
            None => None,
            Some(text) => Some(clap::ValueEnum::from_str(text, false).map_err(|_| {
                Error::Usage(format!(
                    "server.layer {text:?}: expected \"memory\", \"redis-pubsub\" or \"redis-core\""
                ))
            })?),
        };
        let wanted = publisher_layer(publisher);
        let server_layer = match opts.server_layer.or(from_file) {
            Some(ServerLayer::Memory) => LayerKind::Memory,
            Some(ServerLayer::RedisPubsub) => LayerKind::RedisPubsub,
            Some(ServerLayer::RedisCore) => LayerKind::RedisCore,
            None => wanted.unwrap_or(LayerKind::Memory),
        };
        if let (Target::Embedded { .. }, Some(wanted)) = (target, wanted) {
            if server_layer != wanted {
                return Err(Error::Usage(format!(
                    "the {} publisher needs the embedded server on the same layer: --server-layer {}",
                    layer_name(wanted),
                    layer_name(wanted)
                )));
            }
        }
        Ok(Self {
            urls,
            prefix,
            server_layer,
        })
    }

    /// courier's Redis settings for these.
    pub fn redis_config(&self) -> RedisConfig {
        RedisConfig {
            urls: self.urls.clone(),
            prefix: self.prefix.clone(),
            ..RedisConfig::default()
        }
    }
}

/// The layer a publisher writes for (`None`: not a Redis publisher).
pub(crate) fn publisher_layer(p: PublisherKind) -> Option<LayerKind> {
    match p {
        PublisherKind::RedisPubsub => Some(LayerKind::RedisPubsub),
        PublisherKind::RedisCore => Some(LayerKind::RedisCore),
        PublisherKind::Embedded | PublisherKind::Http => None,
    }
}

/// The flag spelling of a layer.
pub(crate) fn layer_name(l: LayerKind) -> &'static str {
    match l {
        LayerKind::Memory => "memory",
        LayerKind::RedisPubsub => "redis-pubsub",
        LayerKind::RedisCore => "redis-core",
        LayerKind::RedisCluster => "redis-cluster",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(opts: &Opts, toml: &str, p: PublisherKind) -> Result<Layer> {
        let s = Scenario::parse(toml, "test").expect("scenario");
        let target = Target::Embedded {
            queue_messages: None,
            queue_bytes: None,
        };
        Layer::resolve(opts, &s, p, &target)
    }

    #[test]
    fn defaults_follow_the_publisher() {
        let b = resolve(&Opts::default(), "", PublisherKind::RedisCore).expect("ok");
        assert_eq!(b.server_layer, LayerKind::RedisCore);
        assert_eq!(b.prefix, "asgi");
        assert_eq!(b.urls, [DEFAULT_REDIS_URL]);
        let b = resolve(&Opts::default(), "", PublisherKind::Embedded).expect("ok");
        assert_eq!(b.server_layer, LayerKind::Memory);
    }

    #[test]
    fn flags_beat_the_scenario_and_mismatches_are_refused() {
        let toml = "[publish]\nredis_prefix = \"file\"\n[server]\nlayer = \"redis-pubsub\"\n";
        let opts = Opts {
            redis_prefix: Some("flag".into()),
            ..Opts::default()
        };
        let b = resolve(&opts, toml, PublisherKind::RedisPubsub).expect("ok");
        assert_eq!(
            (b.prefix.as_str(), b.server_layer),
            ("flag", LayerKind::RedisPubsub)
        );
        assert!(resolve(&opts, toml, PublisherKind::RedisCore).is_err());
        let hosts = Opts {
            redis_url: Some("redis://127.0.0.1:7001, redis://127.0.0.1:7002".into()),
            ..Opts::default()
        };
        let b = resolve(&hosts, "", PublisherKind::RedisCore).expect("ok");
        assert_eq!(
            b.urls,
            ["redis://127.0.0.1:7001", "redis://127.0.0.1:7002"],
            "Django's hosts order is kept"
        );
        let empty = Opts {
            redis_url: Some("redis://127.0.0.1:7001,".into()),
            ..Opts::default()
        };
        assert!(resolve(&empty, "", PublisherKind::RedisCore).is_err());
        assert!(resolve(
            &Opts::default(),
            "[server]\nlayer = \"x\"\n",
            PublisherKind::Http
        )
        .is_err());
    }
}
