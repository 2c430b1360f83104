//! Asking the provider again whether a person's sign-in still holds (`tokens.upstream_recheck`).
//!
//! With a refresh token, the gateway runs the provider's refresh-token grant: a provider that
//! disabled the person or revoked the grant answers `invalid_grant`. The person is then read
//! again with the new access token, exactly as at the login (userinfo, the GitHub API, or a
//! refreshed ID token merged with userinfo), so the access rules judge current groups,
//! domains and memberships. Without a refresh token (GitHub OAuth apps, whose tokens do not
//! expire) the person is read with the access token kept from the login.
//!
//! A refusal is what the provider says about the person: `invalid_grant` from the token
//! endpoint, 401 or 403 from its API, an answer about someone else, tokens that no longer
//! open. Anything else (unreachable, 5xx, a misconfigured client) says nothing about the
//! person and is only "unavailable".

use futures_util::future::LocalBoxFuture;
use oauth2::basic::BasicErrorResponseType;
use oauth2::{RefreshToken, RequestTokenError};

use crate::core::model::{UpstreamGrant, UserInfo};
use crate::core::upstream_grant::{IdentityCheck, Recheck, UpstreamTokens};

use super::{http, Provider, Remote, Upstream, UpstreamError, UpstreamTokenResponse};

impl IdentityCheck for Upstream {
    fn recheck<'a>(&'a self, user: &'a UserInfo, grant: &'a UpstreamGrant) -> LocalBoxFuture<'a, Recheck> {
        Box::pin(self.ask_again(user, grant))
    }
}

impl Upstream {
    async fn ask_again(&self, user: &UserInfo, grant: &UpstreamGrant) -> Recheck {
        let (Provider::Remote(remote), Some(sealer)) = (&self.provider, &self.sealer) else {
            // The dev provider keeps no tokens: there is nobody to ask.
            return Recheck::Unavailable("no provider tokens to ask with".into());
        };
        let tokens = match sealer.open(&grant.sealed, &user.id) {
            Ok(tokens) => tokens,
            // Sealed under another `session_secret`, or altered: nothing can confirm it.
            Err(e) => return Recheck::Refused(e.to_string()),
        };
        let token = match &tokens.refresh_token {
            Some(refresh) => match refresh_at(remote, refresh).await {
                Ok(token) => token,
                Err(outcome) => return outcome,
            },
            None => bearer_only(&tokens),
        };
        match self.read_person(remote, &token, None, Some(user)).await {
            Ok(fresh) => {
                let Some(sealed) = self.seal(&token, tokens.refresh_token.as_deref(), &fresh) else {
                    return Recheck::Unavailable("no sealer".into());
                };
                Recheck::Confirmed { user: Box::new(fresh), sealed: sealed.sealed }
            }
            Err(e) => outcome_of(e),
        }
    }
}

/// The refresh-token grant at the provider; a failure is already the re-check's outcome.
async fn refresh_at(remote: &Remote, refresh: &str) -> Result<UpstreamTokenResponse, Recheck> {
    let answer = remote
        .client
        .exchange_refresh_token(&RefreshToken::new(refresh.to_owned()))
        .request_async(&http::send)
        .await;
    answer.map_err(|err| match err {
        RequestTokenError::ServerResponse(resp) if *resp.error() == BasicErrorResponseType::InvalidGrant => {
            Recheck::Refused("the provider refused the refresh token (invalid_grant)".into())
        }
        other => outcome_of(http::describe_token_error(other)),
    })
}

/// A token response holding only the kept access token (no refresh token to run).
fn bearer_only(tokens: &UpstreamTokens) -> UpstreamTokenResponse {
    UpstreamTokenResponse::new(
        oauth2::AccessToken::new(tokens.access_token.clone()),
        oauth2::basic::BasicTokenType::Bearer,
        super::IdTokenFields::default(),
    )
}

fn outcome_of(err: UpstreamError) -> Recheck {
    match err {
        UpstreamError::Denied(why) | UpstreamError::Rejected(why) => Recheck::Refused(why),
        UpstreamError::Request(why) | UpstreamError::Config(why) => Recheck::Unavailable(why),
    }
}
