//! Configuration: typed [`Settings`] and how they are loaded and validated.

mod settings;

pub use settings::*;
