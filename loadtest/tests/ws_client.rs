//! The tester's raw WebSocket client against a small tokio-tungstenite server (any server's
//! view): pings answered with masked pongs, fragmented and large messages, close codes both ways,
//! frames that arrive with the upgrade response, and the size bound.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use loadtest::session::client::{Client, ClientError};
use loadtest::session::wire::{Msg, WireError, MAX_MESSAGE};
use loadtest::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const BOUND: Duration = Duration::from_secs(20);

/// What the client saw, owned.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Text(Vec<u8>),
    Binary(usize, u8),
    Close(u16),
}

async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/ws/", l.local_addr().expect("addr"));
    (l, url)
}

async fn connect(url: &str) -> Client {
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws/")
        .to_owned();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let request = url.into_client_request().expect("request");
    Client::upgrade(request, Stream::Plain(tcp))
        .await
        .expect("upgrade")
}

/// A tungstenite server socket that accepts frames up to 32 MiB (to send over-limit ones).
async fn accept(l: &TcpListener) -> WebSocketStream<TcpStream> {
    let (tcp, _) = l.accept().await.expect("accept");
    let config = WebSocketConfig::default()
        .max_frame_size(Some(32 << 20))
        .max_message_size(Some(32 << 20));
    tokio_tungstenite::accept_async_with_config(tcp, Some(config))
        .await
        .expect("server handshake")
}

/// Receives until a close frame, an error or EOF.
async fn recv_all(client: &mut Client) -> (Vec<Got>, Option<ClientError>) {
    let mut got = Vec::new();
    loop {
        loop {
            match client.next_msg() {
                Ok(Some(Msg::Text(t))) => got.push(Got::Text(t.to_vec())),
                Ok(Some(Msg::Binary(b))) => got.push(Got::Binary(b.len(), b[b.len() / 2])),
                Ok(Some(Msg::Close(code))) => {
                    got.push(Got::Close(code));
                    let _ = client.flush().await;
                    return (got, None);
                }
                Ok(None) => break,
                Err(e) => return (got, Some(e.into())),
            }
        }
        if let Err(e) = client.fill().await {
            return (got, Some(e));
        }
    }
}

/// Connects to `url` and receives until a close frame, an error or EOF (bounded).
async fn session(url: &str) -> (Client, Vec<Got>, Option<ClientError>) {
    let mut client = connect(url).await;
    let (got, err) = tokio::time::timeout(BOUND, recv_all(&mut client))
        .await
        .expect("bounded");
    (client, got, err)
}

fn fragment(data: &str, op: OpCode, fin: bool) -> Message {
    Message::Frame(Frame::message(data.as_bytes().to_vec(), op, fin))
}

#[tokio::test]
async fn pings_fragments_large_frames_and_a_close_code() {
    let (l, url) = listener().await;
    let server = tokio::spawn(async move {
        let mut ws = accept(&l).await;
        ws.send(Message::Ping("p1".into())).await.expect("ping");
        ws.send(fragment("hel", OpCode::Data(Data::Text), false))
            .await
            .expect("first fragment");
        ws.send(Message::Ping("p2".into())).await.expect("ping");
        ws.send(fragment("lo", OpCode::Data(Data::Continue), true))
            .await
            .expect("last fragment");
        ws.send(Message::binary(vec![7u8; 5 << 20]))
            .await
            .expect("5 MiB");
        ws.send(Message::binary(vec![9u8; MAX_MESSAGE - 14]))
            .await
            .expect("just under the limit, header included");
        ws.send(Message::text("after")).await.expect("text");
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Library(4008),
            reason: "slow".into(),
        })))
        .await
        .expect("close");
        // What the client sent back: the two pongs, then the close echo.
        let mut back = Vec::new();
        while let Some(Ok(m)) = ws.next().await {
            back.push(m);
        }
        back
    });
    let (_client, got, err) = session(&url).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        got,
        vec![
            Got::Text(b"hello".to_vec()),
            Got::Binary(5 << 20, 7),
            Got::Binary(MAX_MESSAGE - 14, 9),
            Got::Text(b"after".to_vec()),
            Got::Close(4008),
        ]
    );
    let back = tokio::time::timeout(BOUND, server)
        .await
        .expect("bounded")
        .expect("server");
    assert_eq!(
        back,
        vec![
            Message::Pong("p1".into()),
            Message::Pong("p2".into()),
            Message::Close(Some(CloseFrame {
                code: CloseCode::Library(4008),
                reason: "".into()
            })),
        ],
        "masked pongs with the ping payloads (tungstenite rejects unmasked client frames)"
    );
}

#[tokio::test]
async fn over_the_size_bound_is_a_clear_error() {
    let (l, url) = listener().await;
    let server = tokio::spawn(async move {
        let mut ws = accept(&l).await;
        let _ = ws.send(Message::binary(vec![1u8; MAX_MESSAGE + 1])).await;
        ws
    });
    let (_client, got, err) = session(&url).await;
    assert!(got.is_empty());
    assert!(
        matches!(err, Some(ClientError::Wire(WireError::TooLarge(n))) if n == MAX_MESSAGE as u64 + 1),
        "{err:?}"
    );
    drop(server);
}

#[tokio::test]
async fn client_close_is_answered_and_ends_cleanly() {
    let (l, url) = listener().await;
    let server = tokio::spawn(async move {
        let mut ws = accept(&l).await;
        ws.send(Message::text("hi")).await.expect("text");
        let mut back = Vec::new();
        while let Some(m) = ws.next().await {
            back.push(m.map_err(|e| e.to_string()));
        }
        back
    });
    let mut client = connect(&url).await;
    while !matches!(client.next_msg(), Ok(Some(Msg::Text(b"hi")))) {
        client.fill().await.expect("read");
    }
    tokio::time::timeout(BOUND, client.close(false))
        .await
        .expect("close returns once the server answers");
    let back = server.await.expect("server");
    assert_eq!(
        back,
        vec![Ok(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into()
        })))],
        "a normal closure, not a reset"
    );
}

/// A raw server that writes the 101 response and the first frames in one write: the client must
/// not lose frames that arrive with the upgrade response.
#[tokio::test]
async fn frames_in_the_upgrade_response_are_not_lost() {
    let (l, url) = listener().await;
    let server = tokio::spawn(async move {
        let (mut tcp, _) = l.accept().await.expect("accept");
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await.expect("request");
            assert!(n > 0, "request ended early");
            req.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8(req).expect("ascii request");
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .or_else(|| {
                text.lines()
                    .find_map(|l| l.strip_prefix("sec-websocket-key: "))
            })
            .expect("key");
        let mut out = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.trim().as_bytes())
        )
        .into_bytes();
        out.extend_from_slice(b"\x81\x05first\x89\x01p\x81\x06second\x88\x02\x03\xe9");
        tcp.write_all(&out).await.expect("one write");
        let mut back = Vec::new();
        let _ = tokio::time::timeout(BOUND, tcp.read_to_end(&mut back)).await;
        back
    });
    let (client, got, err) = session(&url).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        got,
        vec![
            Got::Text(b"first".to_vec()),
            Got::Text(b"second".to_vec()),
            Got::Close(1001)
        ]
    );
    drop(client);
    let back = server.await.expect("server");
    // A masked pong (0x8A, mask bit, 1 byte) then a masked close (0x88, mask bit, 2 bytes).
    assert_eq!(back.first(), Some(&0x8A));
    assert_eq!(back.get(1), Some(&0x81));
    assert_eq!(back.get(7), Some(&0x88));
    assert_eq!(back.get(8), Some(&0x82));
}
