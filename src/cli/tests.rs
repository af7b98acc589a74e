//! The command line: defaults match their consts, flags reach the config.

use super::*;
use crate::config::{
    DEFAULT_PING_INTERVAL, DEFAULT_PONG_TIMEOUT, DEFAULT_REDIS_EXPIRY, DEFAULT_REDIS_GROUP_EXPIRY,
    DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_USER_CACHE_TTL,
};

/// The humantime defaults are strings for `--help`; they must say what the consts say.
#[test]
fn duration_defaults_match_the_consts() {
    let config = Cli::try_parse_from(["courier", "--jwt-secret", "s"])
        .expect("parses")
        .into_config()
        .expect("valid");
    assert_eq!(config.ping_interval, DEFAULT_PING_INTERVAL);
    assert_eq!(config.pong_timeout, DEFAULT_PONG_TIMEOUT);
    assert_eq!(config.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
    assert_eq!(config.redis.group_expiry, DEFAULT_REDIS_GROUP_EXPIRY);
    assert_eq!(config.redis.expiry, DEFAULT_REDIS_EXPIRY);
    assert!(config.user_db.is_none());
    assert_eq!(config.token_grace, crate::config::DEFAULT_TOKEN_GRACE);
    assert_eq!(config.history.ttl, crate::config::DEFAULT_HISTORY_TTL);
    assert_eq!(
        config.history.meta_ttl,
        crate::config::DEFAULT_HISTORY_META_TTL
    );
}

#[test]
fn redis_urls_repeat_or_split_on_commas_in_order() {
    let parse = |args: &[&str]| {
        let mut all = vec!["courier", "--jwt-secret", "s", "--layer", "redis-pubsub"];
        all.extend_from_slice(args);
        let config = Cli::try_parse_from(all).expect("parses").into_config()?;
        config.validate().map(|()| config)
    };
    let one = parse(&[]).expect("valid");
    assert_eq!(one.redis.urls, [DEFAULT_REDIS_URL]);
    let a = "redis://127.0.0.1:7001";
    let b = "redis://127.0.0.1:7002/3";
    let repeated = parse(&["--redis-url", b, "--redis-url", a]).expect("valid");
    assert_eq!(repeated.redis.urls, [b, a], "Django's hosts order is kept");
    let joined = parse(&["--redis-url", &format!("{a},{b}")]).expect("valid");
    assert_eq!(joined.redis.urls, [a, b]);
    assert!(parse(&["--redis-url", &format!("{a},,{b}")]).is_err());
}

#[test]
fn cluster_partitions_reach_the_config_within_bounds() {
    let parse = |n: &str| {
        let args = ["courier", "--jwt-secret", "s", "--layer", "redis-cluster"];
        let mut all = args.to_vec();
        all.extend(["--redis-cluster-partitions", n]);
        let config = Cli::try_parse_from(all).expect("parses").into_config()?;
        config.validate().map(|()| config)
    };
    let config = parse("64").expect("valid");
    assert_eq!(config.layer, LayerKind::RedisCluster);
    assert_eq!(config.redis.cluster_partitions, 64);
    assert!(parse("0").is_err());
    assert!(parse("16384").is_ok());
    assert!(parse("16385").is_err());
    let default = Cli::try_parse_from(["courier", "--jwt-secret", "s"]).expect("parses");
    assert_eq!(
        default
            .into_config()
            .expect("valid")
            .redis
            .cluster_partitions,
        DEFAULT_REDIS_CLUSTER_PARTITIONS
    );
}

/// On by default, like the other Redis layers' history; `=false` (or the env) turns it off, and
/// the bare flag of earlier releases still means on.
#[test]
fn cluster_history_is_on_unless_turned_off() {
    let history = |args: &[&str]| {
        let mut all = vec!["courier", "--jwt-secret", "s", "--layer", "redis-cluster"];
        all.extend_from_slice(args);
        let cli = Cli::try_parse_from(all).expect("parses");
        cli.into_config().expect("valid").redis.cluster_history
    };
    assert!(history(&[]));
    assert!(history(&["--redis-cluster-history"]));
    assert!(history(&["--redis-cluster-history=true"]));
    assert!(!history(&["--redis-cluster-history=false"]));
    assert!(!history(&["--redis-cluster-history", "false"]));
    assert!(Cli::try_parse_from(["courier", "--redis-cluster-history=maybe"]).is_err());
}

#[test]
fn user_db_flags_reach_the_config() {
    let cli = Cli::try_parse_from([
        "courier",
        "--jwt-secret",
        "s",
        "--user-db",
        "sqlite:///srv/app/db.sqlite3",
        "--user-table",
        "accounts_user",
    ])
    .expect("parses");
    let db = cli.into_config().expect("valid").user_db.expect("set");
    assert_eq!(db.url, "sqlite:///srv/app/db.sqlite3");
    assert_eq!(db.table, "accounts_user");
    assert_eq!(db.cache_ttl, DEFAULT_USER_CACHE_TTL);
}

#[test]
fn trusted_proxies_repeat_or_split_on_commas_and_none_is_the_default() {
    let parse = |extra: &[&str]| {
        let mut all = vec!["courier", "--jwt-secret", "s"];
        all.extend_from_slice(extra);
        Cli::try_parse_from(all).map(|c| c.into_config().expect("valid").trusted_proxies)
    };
    assert!(
        parse(&[]).expect("parses").is_empty(),
        "never trusted by default"
    );
    let shown = |v: Vec<crate::config::Cidr>| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let repeated = parse(&["--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1"]);
    assert_eq!(shown(repeated.expect("parses")), ["10.0.0.0/8", "::1/128"]);
    let joined = parse(&["--trusted-proxy", "127.0.0.1,fd00::/8"]);
    assert_eq!(shown(joined.expect("parses")), ["127.0.0.1/32", "fd00::/8"]);
    let err = parse(&["--trusted-proxy", "10.0.0.0/33"]).expect_err("a bad prefix");
    assert!(err.to_string().contains("--trusted-proxy"), "{err}");
}

#[test]
fn tls_takes_a_certificate_and_a_key_together() {
    let parse = |args: &[&str]| {
        let mut all = vec!["courier", "--jwt-secret", "s"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)
    };
    let both = parse(&["--tls-cert", "/c.pem", "--tls-key", "/k.pem"])
        .expect("parses")
        .into_config()
        .expect("valid");
    let tls = both.tls.expect("TLS on");
    assert_eq!(
        (tls.cert.to_str(), tls.key.to_str()),
        (Some("/c.pem"), Some("/k.pem"))
    );
    assert!(parse(&["--tls-cert", "/c.pem"]).is_err(), "a cert alone");
    assert!(parse(&["--tls-key", "/k.pem"]).is_err(), "a key alone");
    let plain = parse(&[]).expect("parses").into_config().expect("valid");
    assert!(plain.tls.is_none());
}
