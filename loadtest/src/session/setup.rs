//! A session's setup: the embedded server (or the external target), the tokens, where the clients
//! connect and where events are published.

use super::churn;
use super::connect::ConnectSpec;
use super::embedded_server::EmbeddedServer;
use super::publisher::PublishTarget;
use super::tokens::{self, Tokens};
use crate::cli::PublisherKind;
use crate::error::{Error, Result};
use crate::plan::{publisher_layer, Auth, Plan, Target};

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
                    addr: server.addr,
                    host: server.addr.to_string(),
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
                sources: plan.sources.clone(),
                timeout: plan.connect_timeout,
                slow_fraction: plan.slow_fraction,
                query: churn::first_query(plan),
            };
            let target = match publisher_layer(plan.publisher) {
                Some(layer) => PublishTarget::Redis {
                    layer,
                    config: plan.layer.redis_config(),
                },
                None => PublishTarget::Http {
                    addr: ep.addr,
                    host: ep.host.clone(),
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
