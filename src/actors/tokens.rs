//! TODO(actors): implemented by the actors work.
use actix::prelude::*;
/// Tokens actor.
pub struct Tokens;
impl Actor for Tokens {
    type Context = Context<Self>;
}
