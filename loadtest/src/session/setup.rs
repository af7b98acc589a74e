//! A session's setup: the embedded server (or the external target), the tokens, where the clients
//! connect and where events are published.

use super::churn;
use super::connect::ConnectSpec;
use super::embedded_server::EmbeddedServer;
use super::publisher::PublishTarget;
use super::tokens::{self, Tokens};
use crate::cli::PublisherKind;
use crate::error::{Error, Result};
use crate::net::{Peer, Tls};
use crate::plan::{publisher_layer, Auth, Endpoint, Plan, Target};

/// The embedded server (if any), where to connect, the tokens, where to publish, and the secret
/// that mints fresh tokens (when the tester has it).
pub(super) type Setup = (
    Option<EmbeddedServer>,
    ConnectSpec,
    Tokens,
    PublishTarget,
    Option<String>,
);

pub(super) async fn setup(plan: &Plan) -> Result<Setup> {
    match &plan.target {
        Target::Embedded {
            queue_messages,
            queue_bytes,
        } => {
            let server = EmbeddedServer::start(
                *queue_messages,
                *queue_bytes,
                plan.layer.server_layer,
                plan.layer.redis_config(),
            )
            .await?;
            let tokens = tokens::mint_with(
                &server.secret,
                plan.first_user,
                plan.users,
                plan.tokens.lifetime,
            )?;
            let spec = ConnectSpec {
                addr: server.addr,
                host: server.addr.to_string(),
                path: "/ws/notifications/".into(),
                tls: None,
                sources: plan.sources.clone(),
                timeout: plan.connect_timeout,
                slow_fraction: plan.slow_fraction,
                query: churn::first_query(plan),
            };
            let target = match (plan.publisher, publisher_layer(plan.publisher)) {
                (_, Some(layer)) => PublishTarget::Redis {
                    layer,
                    config: plan.layer.redis_config(),
                },
                (PublisherKind::Embedded, None) => PublishTarget::Embedded(server.state.clone()),
                (_, None) => PublishTarget::Http {
                    peer: Peer::plain(server.addr),
                    api_key: server.api_key().unwrap_or_default(),
                },
            };
            let secret = Some(server.secret.clone());
            Ok((Some(server), spec, tokens, target, secret))
        }
        Target::External(ep) => {
            let tokens = match &plan.auth {
                Some(Auth::Mint(secret)) => {
                    tokens::mint_with(secret, plan.first_user, plan.users, plan.tokens.lifetime)?
                }
                Some(Auth::File(path)) => tokens::from_file(path, plan.first_user, plan.users)?,
                None => {
                    return Err(Error::Usage(
                        "an external --target needs --jwt-secret or --tokens-file".into(),
                    ))
                }
            };
            let spec = ConnectSpec {
                addr: ep.addr,
                host: ep.host.clone(),
                path: ep.path.clone(),
                tls: ep.tls(plan.tls.as_ref()),
                sources: plan.sources.clone(),
                timeout: plan.connect_timeout,
                slow_fraction: plan.slow_fraction,
                query: churn::first_query(plan),
            };
            if let Some(tls) = &spec.tls {
                preflight(ep, tls).await?;
            }
            let target = match publisher_layer(plan.publisher) {
                Some(layer) => PublishTarget::Redis {
                    layer,
                    config: plan.layer.redis_config(),
                },
                None => PublishTarget::Http {
                    peer: plan
                        .publish_to
                        .as_ref()
                        .unwrap_or(ep)
                        .peer(plan.tls.as_ref()),
                    api_key: plan.api_key.clone().unwrap_or_default(),
                },
            };
            let secret = match &plan.auth {
                Some(Auth::Mint(secret)) => Some(secret.clone()),
                _ => None,
            };
            Ok((None, spec, tokens, target, secret))
        }
    }
}

/// One TLS handshake with a `wss://` target before thousands: a certificate the run does not
/// trust stops it here with one clear error (exit 2), instead of as many failed connections. A
/// connect error is left to the connect phase, which counts it by class as for a plain target.
async fn preflight(ep: &Endpoint, tls: &Tls) -> Result<()> {
    let peer = Peer {
        addr: ep.addr,
        host: ep.host.clone(),
        tls: Some(tls.clone()),
    };
    match peer.open().await {
        Err(e) if e.starts_with("tls:") => Err(Error::Setup(format!("--target {}: {e}", ep.url))),
        _ => Ok(()),
    }
}
