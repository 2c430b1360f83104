//! TODO(actors): implemented by the actors work.
use actix::prelude::*;
/// Client registry actor.
pub struct ClientRegistry;
impl Actor for ClientRegistry {
    type Context = Context<Self>;
}
