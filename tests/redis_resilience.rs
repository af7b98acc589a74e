//! Redis-backed servers facing the unexpected: Django-format payloads written by hand as
//! channels_redis would, undecodable payloads, and a Redis killed and restarted under live
//! clients. Both Redis layers. Several servers on one Redis are in `redis_server.rs`.

mod common;
mod services;

use std::time::Duration;

use common::connect_user;
use common::redis_servers::{next_of, server, until_routed, LAYERS};
use common::send_text;
use courier::config::LayerKind;
use courier::metrics::Reason;
use courier::UserId;
use serde_json::json;

/// A minimal msgpack writer, so the Django-format payloads below do not come from our encoder.
fn mp_str(out: &mut Vec<u8>, s: &str) {
    match s.len() {
        n @ 0..=31 => out.push(0xa0 | n as u8),
        n => out.extend([0xd9, n as u8]),
    }
    out.extend(s.as_bytes());
}

/// `msgpack.packb({"type": kind, "data": {"seq": seq}, ["__asgi_channel__": channels]})`.
fn django_payload(kind: &str, seq: u8, channels: Option<&[String]>) -> Vec<u8> {
    let mut out = vec![if channels.is_some() { 0x83 } else { 0x82 }];
    mp_str(&mut out, "type");
    mp_str(&mut out, kind);
    mp_str(&mut out, "data");
    out.push(0x81);
    mp_str(&mut out, "seq");
    out.push(seq);
    if let Some(list) = channels {
        mp_str(&mut out, "__asgi_channel__");
        out.push(0x90 | list.len() as u8);
        for c in list {
            mp_str(&mut out, c);
        }
    }
    out
}

/// What channels_redis writes for `group_send(group, payload)`, done by hand with raw commands.
async fn django_group_send(
    conn: &mut redis::aio::MultiplexedConnection,
    kind: LayerKind,
    prefix: &str,
    group: &str,
    seq: u8,
) {
    if kind == LayerKind::RedisPubsub {
        let payload = django_payload("friend_request", seq, None);
        let _: i64 = redis::cmd("PUBLISH")
            .arg(format!("{prefix}__group__{group}"))
            .arg(payload)
            .query_async(conn)
            .await
            .expect("publish");
        return;
    }
    let channels: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{prefix}:group:{group}"))
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .expect("zrange");
    assert!(
        !channels.is_empty(),
        "courier registered no channel in {prefix}:group:{group}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    for channel in &channels {
        let inbox = format!(
            "{prefix}{}",
            &channel[..=channel.find('!').expect("specific channel")]
        );
        let mut member = uuid::Uuid::new_v4().as_bytes()[..12].to_vec();
        member.extend(django_payload(
            "friend_request",
            seq,
            Some(std::slice::from_ref(channel)),
        ));
        let _: () = redis::pipe()
            .zadd(&inbox, member, now)
            .ignore()
            .expire(&inbox, 60)
            .ignore()
            .query_async(conn)
            .await
            .expect("zadd");
    }
}

#[tokio::test]
async fn django_format_arrives_and_garbage_is_counted_not_fatal() {
    let Some(url) = services::shared_redis().await else {
        return;
    };
    let client = redis::Client::open(url.as_str()).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    for kind in LAYERS {
        let prefix = services::unique_prefix();
        let s = server(kind, &url, &prefix).await;
        let mut ws = connect_user(s.addr, json!(5)).await;
        until_routed(&s, 5, &mut [&mut ws]).await;

        django_group_send(&mut conn, kind, &prefix, "user_5", 1).await;
        let v = next_of(&mut ws, "friend_request", Duration::from_secs(5))
            .await
            .expect("django event");
        assert_eq!(
            v,
            json!({"type": "friend_request", "data": {"seq": 1}}),
            "{kind:?}"
        );

        // Garbage where a payload belongs: counted as a decode error, the layer keeps going.
        if kind == LayerKind::RedisPubsub {
            let _: i64 = redis::cmd("PUBLISH")
                .arg(format!("{prefix}__group__user_5"))
                .arg(&b"\xc1not msgpack"[..])
                .query_async(&mut conn)
                .await
                .expect("publish");
        } else {
            let channels: Vec<String> = redis::cmd("ZRANGE")
                .arg(format!("{prefix}:group:user_5"))
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .expect("zrange");
            let inbox = format!(
                "{prefix}{}",
                &channels[0][..=channels[0].find('!').expect("!")]
            );
            let _: () = redis::cmd("ZADD")
                .arg(&inbox)
                .arg(1.0)
                .arg(&b"short"[..])
                .query_async(&mut conn)
                .await
                .expect("zadd");
        }
        let decode = s
            .state
            .metrics()
            .layer_errors
            .get_or_create(&Reason { reason: "decode" })
            .clone();
        common::eventually("decode error counted", || decode.get() >= 1).await;
        django_group_send(&mut conn, kind, &prefix, "user_5", 2).await;
        let v = next_of(&mut ws, "friend_request", Duration::from_secs(5))
            .await
            .expect("still delivering");
        assert_eq!(v["data"]["seq"], 2, "{kind:?}");
        s.stop().await;
    }
}

#[tokio::test]
async fn redis_killed_and_restarted_mid_stream_resyncs_clients() {
    for kind in LAYERS {
        let Some(mut redis) = services::PrivateRedis::start().await else {
            return;
        };
        let s = server(kind, &redis.url(), "asgi").await;
        let (mut w1, mut w2) = (
            connect_user(s.addr, json!(3)).await,
            connect_user(s.addr, json!(3)).await,
        );
        until_routed(&s, 3, &mut [&mut w1, &mut w2]).await;
        s.state
            .hub()
            .notify_user(&UserId::Int(3), "new_message", json!({"seq": 1}))
            .await
            .expect("publish");
        for ws in [&mut w1, &mut w2] {
            assert_eq!(
                next_of(ws, "new_message", Duration::from_secs(5))
                    .await
                    .expect("before")["data"]["seq"],
                1
            );
        }

        redis.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Publishing while the broker is down fails cleanly; local clients are still served.
        let down = s
            .state
            .hub()
            .notify_user(&UserId::Int(3), "new_message", json!({"seq": 2}))
            .await;
        assert!(
            down.is_err(),
            "{kind:?}: publish with Redis down should report the layer error"
        );
        send_text(&mut w1, r#"{"still":"here"}"#).await;
        let echo = next_of(&mut w1, "echo", Duration::from_secs(5))
            .await
            .expect("echo while Redis is down");
        assert_eq!(echo["data"], json!({"still": "here"}));

        redis.restart().await;
        for ws in [&mut w1, &mut w2] {
            let resync = next_of(ws, "resync", Duration::from_secs(20))
                .await
                .expect("resync frame after reconnect");
            assert_eq!(
                resync,
                json!({"type": "resync", "data": {"reason": "broker_reconnected"}}),
                "{kind:?}"
            );
        }
        until_routed(&s, 3, &mut [&mut w1, &mut w2]).await;
        s.state
            .hub()
            .notify_user(&UserId::Int(3), "new_message", json!({"seq": 3}))
            .await
            .expect("publish after");
        for ws in [&mut w1, &mut w2] {
            assert_eq!(
                next_of(ws, "new_message", Duration::from_secs(5))
                    .await
                    .expect("after")["data"]["seq"],
                3
            );
        }
        let m = s.state.metrics();
        assert!(m.layer_reconnects.get() >= 1, "{kind:?}: reconnect counted");
        assert!(
            m.layer_errors
                .get_or_create(&Reason {
                    reason: "disconnect"
                })
                .get()
                >= 1,
            "{kind:?}: disconnect counted"
        );
        assert!(!s.handle.is_finished(), "server still running");
        s.stop().await;
    }
}
