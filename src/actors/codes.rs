//! TODO(actors): implemented by the actors work.
use actix::prelude::*;
/// Auth code actor.
pub struct AuthCodes;
impl Actor for AuthCodes {
    type Context = Context<Self>;
}
