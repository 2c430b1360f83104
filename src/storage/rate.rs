//! Where the rate-limit buckets live: in Redis, so every instance shares them (one Lua script
//! refills and takes atomically), or in this process for memory and Vault storage (Vault has no
//! atomic counter cheap enough for every request; limits then hold per instance).

use crate::config::Rate;
use crate::core::rate::{Decision, LocalLimiter, RateLimiter};
use crate::core::store::StoreError;

use super::{Backend, Engine, RedisStore};

/// The token bucket of [`crate::core::rate::Bucket`], in Redis: a hash `{t, u}` (tokens, last
/// update in ms) that expires once it would be full again anyway.
const TAKE: &str = r"
local b = redis.call('HMGET', KEYS[1], 't', 'u')
local per_ms = tonumber(ARGV[1]) / 60000
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * per_ms)
if now > at then at = now end
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / per_ms) end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'u', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / per_ms) + 1000)
return wait
";

/// The limiter startup picks for the backend.
#[derive(Clone)]
pub enum Limiter {
    /// Buckets in this process.
    Local(LocalLimiter),
    /// Buckets in Redis, shared by every instance.
    Redis(RedisStore),
}

impl Limiter {
    /// Redis buckets on Redis storage, this process's otherwise.
    pub fn for_backend(backend: &Backend) -> Self {
        match backend.engine() {
            Engine::Redis(redis) => Limiter::Redis(redis.clone()),
            Engine::Memory(_) | Engine::Vault(_) => Limiter::Local(LocalLimiter::default()),
        }
    }
}

impl RateLimiter for Limiter {
    async fn take(&self, key: &str, rate: Rate, now_ms: i64) -> Result<Decision, StoreError> {
        match self {
            Limiter::Local(local) => Ok(local.take_now(key, rate, now_ms)),
            Limiter::Redis(redis) => {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(TAKE)
                    .arg(1)
                    .arg(redis.key(key))
                    .arg(rate.per_minute)
                    .arg(rate.burst.max(1))
                    .arg(now_ms);
                let wait_ms: i64 = redis.run(cmd).await?;
                Ok(if wait_ms <= 0 {
                    Decision::Allowed
                } else {
                    Decision::Limited {
                        retry_after: u64::try_from(wait_ms).unwrap_or(1).div_ceil(1000).max(1),
                    }
                })
            }
        }
    }
}
