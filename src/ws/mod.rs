//! RFC 6455 mechanics under courier's protocol: the upgrade, server frames encoded once, and the
//! client-frame reader.
//!
//! courier writes pre-encoded frames straight to the TCP socket (the header of a server frame is
//! a few bytes and its payload is unmasked, so one encoding serves every recipient) and reads client
//! frames with its own small reader over tungstenite's header parser. Why not tungstenite's
//! `WebSocket` for the connection: its write path copies every frame into a per-connection buffer
//! and flushes it through a lock, its read buffer is allocated for the connection's lifetime even
//! when idle, and it gives no handle on fragment floods. The parsing of frame headers, the opcode
//! table and the accept key stay tungstenite's.

pub(crate) mod encode;
pub(crate) mod reader;
pub(crate) mod upgrade;

pub(crate) use encode::{
    close_frame, ping_frame, text_frame, text_frame_from_json, text_frame_sized,
};
pub(crate) use reader::{ClientMessage, ReadError, Reader, ReaderLimits};
