//! TODO(actors): implemented by the actors work.
use actix::prelude::*;
/// Sessions actor.
pub struct Sessions;
impl Actor for Sessions {
    type Context = Context<Self>;
}
