//! Configuration: typed [`Settings`] and how they are loaded and validated.

mod access;
mod clients;
mod effective;
mod enterprise;
mod expand;
mod kinds;
mod known_keys;
mod limits;
mod load;
mod observability;
mod render;
mod settings;
mod tls;
mod validate;

pub use access::AccessRule;
pub use clients::{host_allowed, CimdSettings, ClientSettings, Clients, RegistrationSettings};
pub use effective::{default_issuer, effective, effective_issuer, effective_workers};
pub use enterprise::{EnterpriseSettings, IdJagSettings, TrustedIssuer};
pub use expand::{expand_str, expand_value};
pub use kinds::{ProviderKind, StorageKind, VaultAuth};
pub use limits::{LimitSettings, Rate, TrustedProxies};
pub use load::{ensure_session_secret, load, load_unvalidated, LoadOptions, ENV_PREFIX, WHOLE_MAP_KEYS};
pub use observability::{AuditSettings, LogFormat, LogSettings, MetricsSettings};
pub use render::{render, OutputFormat};
pub use settings::*;
pub use tls::read_certificates;
pub use validate::{
    is_loopback_host, validate, ConfigError, EXAMPLE_SECRETS, MAX_CODE_TTL, MIN_SECRET_LEN,
    RESERVED_SERVICE_IDS,
};
