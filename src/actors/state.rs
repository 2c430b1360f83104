//! The four state actors, each a newtype over one ground-floor service: `ClientRegistry`
//! (clients), `AuthCodes` (pending authorizations, upstream states, codes), `Tokens`
//! (refresh-token families, revocations, token issuing) and `Sessions` (consent grants).
//!
//! Every handler is one call into the service, returned as a `ResponseFuture`: the future
//! holds an `Arc` of the service, never the actor, so one slow storage round trip never holds
//! up the mailbox and single use comes from the store's atomic `take`, not from serialising
//! messages. Several instances of each actor run, one per arbiter thread (see
//! [`super::start`]), so OAuth CPU work (signing, hashing, document parsing) is spread out.

use std::sync::Arc;

use actix::prelude::*;

use super::messages::{
    AuthenticateAssertion, AuthenticateClient, BeginUpstream, DeleteClient, ForgetClient, GetClient,
    GetLogin, HasApprovedClient, HasConsent, Introspect, IssueCode, IssueTokens, ListClients, ListGrants,
    RecordConsent, RedeemCode, RegisterClient, Revoke, RevokeFamily, RevokeGrants, RotateRefresh, SaveLogin,
    TakeLogin, TakeUpstream, VerifyIdentityAssertion,
};
use crate::core::clients::ClientStore;
use crate::core::codes::CodeStore;
use crate::core::consent::ConsentStore;
use crate::core::tokens::{RefreshRequest, TokenService};
use crate::storage::Backend;

/// Declares a state actor over a service: the newtype, its mailbox capacity, and a restart
/// with the same service should it ever stop.
macro_rules! state_actor {
    ($(#[$doc:meta])* $name:ident($service:ty)) => {
        $(#[$doc])*
        pub struct $name {
            service: Arc<$service>,
            mailbox: usize,
        }

        impl $name {
            /// The actor over `service`, with a mailbox of `mailbox` messages.
            pub fn new(service: Arc<$service>, mailbox: usize) -> Self {
                $name { service, mailbox }
            }
        }

        impl Actor for $name {
            type Context = Context<Self>;

            fn started(&mut self, ctx: &mut Self::Context) {
                ctx.set_mailbox_capacity(self.mailbox);
            }
        }

        impl Supervised for $name {}
    };
}

/// One message handler: `|service, message| call` becomes a `ResponseFuture` of the call.
macro_rules! handle {
    ($actor:ident, $msg:ty => |$svc:ident, $m:ident| $call:expr) => {
        impl Handler<$msg> for $actor {
            type Result = ResponseFuture<<$msg as Message>::Result>;

            fn handle(&mut self, $m: $msg, _: &mut Self::Context) -> Self::Result {
                let $svc = self.service.clone();
                Box::pin(async move { $call })
            }
        }
    };
}

state_actor!(
    /// Owns the client registry.
    ClientRegistry(ClientStore<Backend>)
);
handle!(ClientRegistry, RegisterClient => |s, m| s.register(m.0).await);
handle!(ClientRegistry, GetClient => |s, m| s.get(&m.client_id).await);
handle!(ClientRegistry, AuthenticateClient => |s, m| s.authenticate(&m.client_id, m.client_secret.as_deref()).await);
handle!(ClientRegistry, ListClients => |s, _m| s.list().await);
handle!(ClientRegistry, DeleteClient => |s, m| s.delete(&m.client_id).await);
handle!(ClientRegistry, AuthenticateAssertion => |s, m| s.authenticate_assertion(m.client_id.as_deref(), &m.assertion).await);
handle!(ClientRegistry, VerifyIdentityAssertion => |s, m| s.verify_identity_assertion(&m.client_id, &m.assertion).await);

state_actor!(
    /// Owns pending authorizations, upstream login states and codes.
    AuthCodes(CodeStore<Backend>)
);
handle!(AuthCodes, SaveLogin => |s, m| s.save_login(m.0).await);
handle!(AuthCodes, GetLogin => |s, m| s.get_login(&m.id).await);
handle!(AuthCodes, TakeLogin => |s, m| s.take_login(&m.id).await);
handle!(AuthCodes, BeginUpstream => |s, m| s.begin_upstream(m.0).await);
handle!(AuthCodes, TakeUpstream => |s, m| s.take_upstream(&m.state).await);
handle!(AuthCodes, IssueCode => |s, m| s.issue_code(m.0).await);
handle!(AuthCodes, RedeemCode => |s, m| s.redeem(&m.code).await);

state_actor!(
    /// Owns refresh-token families, revocations and token issuing.
    Tokens(TokenService<Backend>)
);
handle!(Tokens, IssueTokens => |s, m| s.issue(m.0).await);
handle!(Tokens, RotateRefresh => |s, m| s.rotate(RefreshRequest {
    refresh_token: &m.refresh_token,
    client_id: &m.client_id,
    resource: m.resource.as_deref(),
    scope: m.scope.as_deref(),
}).await);
handle!(Tokens, Revoke => |s, m| s.revoke(&m.token, &m.client_id).await);
handle!(Tokens, RevokeFamily => |s, m| s.revoke_family(&m.family_id).await);
handle!(Tokens, Introspect => |s, m| s.introspect(&m.token).await);
handle!(Tokens, ListGrants => |s, m| s.grants(&m.0).await);
handle!(Tokens, RevokeGrants => |s, m| s.revoke_grants(&m.0).await);

state_actor!(
    /// Owns remembered consent grants.
    Sessions(ConsentStore<Backend>)
);
handle!(Sessions, RecordConsent => |s, m| s.record_consent(&m.user_id, &m.client_id, &m.service_id, &m.scopes).await);
handle!(Sessions, HasConsent => |s, m| s.has_consent(&m.user_id, &m.client_id, &m.service_id, &m.scopes).await);
handle!(Sessions, HasApprovedClient => |s, m| s.has_approved_client(&m.user_id, &m.client_id).await);
handle!(Sessions, ForgetClient => |s, m| s.forget_client(&m.client_id).await);
