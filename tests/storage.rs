//! Storage backends against real servers: the shared acceptance suite on memory, the machine's
//! Redis, a password-protected redis-server and an OpenBao dev server, plus what only a real
//! server shows: recovery after a Redis restart, Vault check-and-set races, expiry sweeps and
//! Vault logins. Every server a test starts listens on 127.0.0.1 and is killed when the test
//! ends. `scripts/test-services.sh` installs redis-server and bao and starts the machine Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bb8_redis::redis;
use mcp_gateway::config::{RedisSettings, StorageKind, StorageSettings, VaultAuth, VaultSettings};
use mcp_gateway::core::store::{acceptance, MemoryStore, Revocations, Store, StoreError};
use mcp_gateway::core::{Revocation, RevocationSet};
use mcp_gateway::storage::{self, RedisStore, VaultStore};
use secrecy::SecretString;
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Helpers

#[path = "support/servers.rs"]
mod servers;

use servers::{free_port, unique, Bao, RedisOptions, RedisServer, BAO_ROOT_TOKEN};

/// Settings for a test's own redis-server. Timeouts fit a loaded CI machine; the "no hang"
/// bounds below are 10 s.
fn redis_settings(server: &RedisServer, prefix: &str) -> RedisSettings {
    RedisSettings {
        host: "127.0.0.1".into(),
        port: server.port,
        password: server.password.clone().map(SecretString::from),
        key_prefix: prefix.into(),
        connect_timeout_ms: 1500,
        command_timeout_ms: 1500,
        max_connections: 4,
        ..RedisSettings::default()
    }
}

/// Settings for an OpenBao dev server, root token, no background sweep.
fn vault_settings(bao: &Bao, prefix: &str) -> VaultSettings {
    VaultSettings {
        url: bao.url(),
        token: Some(SecretString::from(BAO_ROOT_TOKEN)),
        path_prefix: prefix.into(),
        sweep_interval_secs: 0,
        ..VaultSettings::default()
    }
}

/// A policy `gw` that may use everything under `secret/`, as a gateway's would.
async fn add_gateway_policy(bao: &Bao) {
    let policy = r#"path "secret/*" { capabilities = ["create", "read", "update", "delete", "list"] }"#;
    bao.call("PUT", "/v1/sys/policies/acl/gw", Some(json!({ "policy": policy }))).await;
}

// ---------------------------------------------------------------------------------------------
// Memory and Redis

#[tokio::test]
async fn memory_passes_the_acceptance_suite() {
    acceptance::run_all(Arc::new(MemoryStore::new()), &unique("mem")).await.unwrap();
}

#[tokio::test]
async fn machine_redis_passes_the_acceptance_suite_under_its_key_prefix() {
    let prefix = format!("{}:", unique("redis"));
    let settings = RedisSettings {
        host: "127.0.0.1".into(),
        port: 6379,
        key_prefix: prefix.clone(),
        ..RedisSettings::default()
    };
    let store = RedisStore::connect(&settings)
        .await
        .unwrap_or_else(|e| panic!("{e}; run scripts/test-services.sh to start Redis on 6379"));
    acceptance::run_all(Arc::new(store.clone()), "acc").await.unwrap();

    // Every key really lives under the prefix.
    store.put("probe", b"x".to_vec(), Some(Duration::from_secs(30))).await.unwrap();
    let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let raw: Option<Vec<u8>> =
        redis::cmd("GET").arg(format!("{prefix}probe")).query_async(&mut conn).await.unwrap();
    assert_eq!(raw.as_deref(), Some(&b"x"[..]));
    let bare: Option<Vec<u8>> = redis::cmd("GET").arg("probe").query_async(&mut conn).await.unwrap();
    assert_ne!(bare.as_deref(), Some(&b"x"[..]), "the key is written with its prefix only");
    let ttl: i64 = redis::cmd("PTTL").arg(format!("{prefix}probe")).query_async(&mut conn).await.unwrap();
    assert!(ttl > 0 && ttl <= 30_000, "the TTL reaches Redis: {ttl}");
    store.delete("probe").await.unwrap();
}

#[tokio::test]
async fn redis_url_setting_connects_through_storage_connect() {
    let prefix = format!("{}:", unique("url"));
    let settings = StorageSettings {
        kind: StorageKind::Redis,
        redis: RedisSettings {
            url: Some("redis://127.0.0.1:6379/0".into()),
            host: "nowhere.invalid".into(),
            key_prefix: prefix,
            ..RedisSettings::default()
        },
        ..StorageSettings::default()
    };
    let backend = storage::connect(&settings).await.unwrap();
    assert_eq!(backend.name(), "redis");
    acceptance::run_all(Arc::new(backend), "acc").await.unwrap();
}

#[tokio::test]
async fn password_protected_redis_passes_and_wrong_passwords_are_refused() {
    let server = RedisServer::start_with(RedisOptions {
        password: Some("s3cret:/@pass".into()),
        ..RedisOptions::default()
    })
    .await;
    let store = RedisStore::connect(&redis_settings(&server, "pw:")).await.unwrap();
    acceptance::run_all(Arc::new(store), &unique("pw")).await.unwrap();

    let wrong =
        RedisSettings { password: Some(SecretString::from("nope")), ..redis_settings(&server, "pw:") };
    let err = RedisStore::connect(&wrong).await.err().expect("a wrong password is refused");
    assert!(err.to_string().to_lowercase().contains("pass"), "the reason is given: {err}");
    assert!(!err.to_string().contains("nope"), "the password is not echoed: {err}");

    let none = RedisSettings { password: None, ..redis_settings(&server, "pw:") };
    let err = RedisStore::connect(&none).await.err().expect("a missing password is refused");
    assert!(err.to_string().contains("NOAUTH"), "{err}");
}

#[tokio::test]
async fn redis_connect_fails_fast_when_nothing_listens() {
    let port = free_port();
    let settings =
        RedisSettings { host: "127.0.0.1".into(), port, connect_timeout_ms: 500, ..RedisSettings::default() };
    let started = Instant::now();
    let err = RedisStore::connect(&settings).await.err().expect("nothing listens there");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "names the address: {err}");

    let storage = StorageSettings { kind: StorageKind::Redis, redis: settings, ..StorageSettings::default() };
    assert!(storage::connect(&storage).await.is_err(), "storage::connect refuses too");
}

#[tokio::test]
async fn redis_store_recovers_by_itself_after_a_restart() {
    let mut server = RedisServer::start().await;
    let store = RedisStore::connect(&redis_settings(&server, "rs:")).await.unwrap();
    // Fill the pool with several connections, all of which die with the server.
    let keys: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
    let warm: Vec<_> = keys.iter().map(|k| store.put(k, b"v".to_vec(), None)).collect();
    for r in futures_util::future::join_all(warm).await {
        r.unwrap();
    }

    server.kill();
    for i in 0..6 {
        let started = Instant::now();
        let result = store.get(&format!("k{i}")).await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "down: {result:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "no hang: {:?}", started.elapsed());
    }
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));

    server.spawn().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match store.put("after", b"back".to_vec(), None).await {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "still failing after restart: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every operation works again (the data itself was not persisted: --save '').
    assert_eq!(store.get("after").await.unwrap().as_deref(), Some(&b"back"[..]));
    assert_eq!(store.take("after").await.unwrap().as_deref(), Some(&b"back"[..]));
    store.ping().await.unwrap();
}

/// Waits until `set` holds `id`, failing after `within`.
async fn until_revoked(set: &RevocationSet, id: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !set.contains(id) {
        assert!(Instant::now() < deadline, "revocation {id} not seen within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn redis_revocations_reach_other_connections_and_the_reader_survives_a_restart() {
    let mut server = RedisServer::start().await;
    let a = RedisStore::connect(&redis_settings(&server, "fan:")).await.unwrap();
    let b = RedisStore::connect(&redis_settings(&server, "fan:")).await.unwrap();
    acceptance::revocations_fan_out(&a, &b, "x").await.unwrap();
    // Another prefix is another deployment: it hears nothing.
    let other = RedisStore::connect(&redis_settings(&server, "other:")).await.unwrap();
    let unrelated = RevocationSet::default();
    other.watch_revocations(unrelated.clone());

    let set = RevocationSet::default();
    b.watch_revocations(set.clone());
    server.kill();
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.spawn().await;
    let rev = Revocation { id: "after-restart".into(), until: i64::MAX / 4 };
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(e) = a.publish_revocation(&rev).await {
        assert!(Instant::now() < deadline, "publishing still fails after restart: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The reader dials again by itself (retry every 0.5 s) and resumes.
    until_revoked(&set, "after-restart", Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!unrelated.contains("after-restart"), "key_prefix separates deployments");
}

#[tokio::test]
async fn vault_revocations_reach_another_connection() {
    let bao = Bao::start().await;
    let settings = vault_settings(&bao, &unique("fan"));
    let a = VaultStore::connect(&settings).await.unwrap();
    let b = VaultStore::connect(&settings).await.unwrap();
    acceptance::revocations_fan_out(&a, &b, "x").await.unwrap();
}

#[tokio::test]
async fn rediss_against_a_plain_server_fails_cleanly() {
    // The TLS handshake really runs (rustls) and fails: an error, not a panic or a hang.
    let settings = RedisSettings {
        url: Some("rediss://127.0.0.1:6379/0".into()),
        connect_timeout_ms: 1000,
        ..RedisSettings::default()
    };
    let started = Instant::now();
    let err = RedisStore::connect(&settings).await.err().expect("plain server refuses TLS");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(matches!(err, StoreError::Unavailable(_) | StoreError::Backend(_)), "{err}");
}

#[tokio::test]
async fn unknown_storage_type_is_an_error() {
    // The type is parsed once, with the rest of the configuration: an unknown one never
    // reaches a backend.
    let settings = serde_json::from_value::<StorageSettings>(json!({ "type": "etcd" }));
    assert!(settings.is_err());
}

// ---------------------------------------------------------------------------------------------
// Vault (OpenBao)

#[tokio::test]
async fn vault_passes_the_acceptance_suite() {
    let bao = Bao::start().await;
    let settings = StorageSettings {
        kind: StorageKind::Vault,
        vault: vault_settings(&bao, &unique("acc")),
        ..StorageSettings::default()
    };
    let backend = storage::connect(&settings).await.unwrap();
    assert_eq!(backend.name(), "vault");
    acceptance::run_all(Arc::new(backend), "acc").await.unwrap();
}

#[tokio::test]
async fn vault_concurrent_takes_and_puts_have_exactly_one_winner() {
    let bao = Bao::start().await;
    let store = Arc::new(VaultStore::connect(&vault_settings(&bao, &unique("race"))).await.unwrap());
    for round in 0..3 {
        let key = format!("code:{round}");
        store.put(&key, format!("value-{round}").into_bytes(), Some(Duration::from_secs(60))).await.unwrap();
        let takes = (0..50).map(|_| {
            let (store, key) = (store.clone(), key.clone());
            async move { store.take(&key).await }
        });
        let results = futures_util::future::join_all(takes).await;
        let wins: Vec<_> = results.into_iter().filter_map(Result::unwrap).collect();
        assert_eq!(wins, vec![format!("value-{round}").into_bytes()], "exactly one take wins");
        assert_eq!(store.get(&key).await.unwrap(), None);
        assert!(!store.has_entry(&key).await.unwrap(), "the winner removed the tombstone");
    }

    let puts = (0..20).map(|i| {
        let store = store.clone();
        async move { store.put_if_absent("state:x", vec![i], Some(Duration::from_secs(60))).await }
    });
    let stored: Vec<bool> =
        futures_util::future::join_all(puts).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(stored.iter().filter(|s| **s).count(), 1, "exactly one put_if_absent stores");
}

#[tokio::test]
async fn vault_expired_entries_read_as_absent_and_the_sweep_deletes_them() {
    let bao = Bao::start().await;
    let settings = VaultSettings { sweep_interval_secs: 1, ..vault_settings(&bao, &unique("ttl")) };
    let store = VaultStore::connect(&settings).await.unwrap();
    store.put("short", b"v".to_vec(), Some(Duration::from_secs(1))).await.unwrap();
    store.put("forever", b"kept".to_vec(), None).await.unwrap();
    store.put("long", b"kept".to_vec(), Some(Duration::from_secs(600))).await.unwrap();
    assert!(store.get("short").await.unwrap().is_some());

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(store.get("short").await.unwrap(), None, "expired reads as absent");
    assert_eq!(store.take("short").await.unwrap(), None, "expired cannot be taken");
    // An expired entry can be replaced by put_if_absent (check-and-set on its version).
    assert!(store.put_if_absent("short", b"again".to_vec(), Some(Duration::from_secs(1))).await.unwrap());
    assert_eq!(store.get("short").await.unwrap().as_deref(), Some(&b"again"[..]));

    let deadline = Instant::now() + Duration::from_secs(8);
    while store.has_entry("short").await.unwrap() {
        assert!(Instant::now() < deadline, "the background sweep did not delete the expired entry");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(store.get("forever").await.unwrap().as_deref(), Some(&b"kept"[..]));
    assert_eq!(store.get("long").await.unwrap().as_deref(), Some(&b"kept"[..]));
}

#[tokio::test]
async fn vault_sweep_once_removes_only_dead_entries() {
    let bao = Bao::start().await;
    let store = VaultStore::connect(&vault_settings(&bao, &unique("sweep"))).await.unwrap();
    for i in 0..5 {
        store.put(&format!("dead{i}"), b"v".to_vec(), Some(Duration::from_millis(200))).await.unwrap();
        store.put(&format!("live{i}"), b"v".to_vec(), Some(Duration::from_secs(600))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.sweep_once().await.unwrap(), 5);
    for i in 0..5 {
        assert!(!store.has_entry(&format!("dead{i}")).await.unwrap());
        assert!(store.has_entry(&format!("live{i}")).await.unwrap());
    }
    assert_eq!(store.sweep_once().await.unwrap(), 0);
}

#[tokio::test]
async fn vault_keys_with_awkward_characters_stay_distinct() {
    let bao = Bao::start().await;
    let store = VaultStore::connect(&vault_settings(&bao, &unique("esc"))).await.unwrap();
    let keys = ["a/b", "a%2Fb", "a:b", "a b", "../x", "ünï/cødé?#", "a", ""];
    for (i, key) in keys.iter().enumerate() {
        store.put(key, vec![i as u8], None).await.unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(store.get(key).await.unwrap(), Some(vec![i as u8]), "key {key:?}");
    }
}

#[tokio::test]
async fn vault_approle_logs_in_and_logs_in_again_before_the_token_expires() {
    let bao = Bao::start().await;
    add_gateway_policy(&bao).await;
    bao.call("POST", "/v1/sys/auth/approle", Some(json!({ "type": "approle" }))).await;
    let role = json!({ "token_policies": ["gw"], "token_ttl": "3s", "token_max_ttl": "3s" });
    bao.call("POST", "/v1/auth/approle/role/gw", Some(role)).await;
    let role_id = bao.call("GET", "/v1/auth/approle/role/gw/role-id", None).await["data"]["role_id"].clone();
    let secret_id =
        bao.call("POST", "/v1/auth/approle/role/gw/secret-id", None).await["data"]["secret_id"].clone();

    let settings = VaultSettings {
        auth_method: VaultAuth::AppRole,
        token: None,
        role_id: Some(role_id.as_str().unwrap().into()),
        secret_id: Some(SecretString::from(secret_id.as_str().unwrap())),
        ..vault_settings(&bao, &unique("approle"))
    };
    let store = VaultStore::connect(&settings).await.unwrap();
    store.put("k", b"v".to_vec(), None).await.unwrap();
    // The first token is dead after 3 s; only a fresh login keeps the store working.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    acceptance::run_all(Arc::new(store), "acc").await.unwrap();

    let wrong = VaultSettings { secret_id: Some(SecretString::from("not-the-secret")), ..settings };
    assert!(VaultStore::connect(&wrong).await.is_err(), "a wrong secret_id is refused");
}

#[tokio::test]
async fn vault_renewable_token_is_renewed() {
    let bao = Bao::start().await;
    add_gateway_policy(&bao).await;
    let body = json!({ "policies": ["gw"], "ttl": "3s", "explicit_max_ttl": "1h", "renewable": true, "no_default_policy": false });
    let token = bao.call("POST", "/v1/auth/token/create", Some(body)).await["auth"]["client_token"].clone();
    let settings = VaultSettings {
        token: Some(SecretString::from(token.as_str().unwrap())),
        ..vault_settings(&bao, &unique("renew"))
    };
    let store = VaultStore::connect(&settings).await.unwrap();
    store.put("k", b"v".to_vec(), None).await.unwrap();
    // Without renewal the token dies after 3 s and this read is denied.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn vault_refuses_a_bad_token_and_fails_fast_when_down() {
    let bao = Bao::start().await;
    let bad = VaultSettings { token: Some(SecretString::from("wrong")), ..vault_settings(&bao, "x") };
    let err = VaultStore::connect(&bad).await.err().expect("a bad token is refused");
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(err.to_string().contains("403"), "{err}");
    assert!(!err.to_string().contains("wrong"), "the token is not echoed: {err}");

    let port = free_port();
    let down = VaultSettings {
        url: format!("http://127.0.0.1:{port}"),
        timeout_ms: 1000,
        ..vault_settings(&bao, "x")
    };
    let started = Instant::now();
    let err = VaultStore::connect(&down).await.err().expect("nothing listens there");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains(&port.to_string()), "names the address: {err}");

    let no_token = VaultSettings { token: None, ..vault_settings(&bao, "x") };
    assert!(VaultStore::connect(&no_token).await.is_err());
    let bad_url = VaultSettings { url: "not a url".into(), ..vault_settings(&bao, "x") };
    assert!(matches!(VaultStore::connect(&bad_url).await, Err(StoreError::Backend(_))));
}

#[tokio::test]
async fn vault_store_recovers_after_the_server_restarts_on_the_same_port() {
    let bao = Bao::start().await;
    let port = bao.port;
    let store = VaultStore::connect(&vault_settings(&bao, &unique("restart"))).await.unwrap();
    store.put("k", b"v".to_vec(), None).await.unwrap();
    drop(bao);

    let started = Instant::now();
    assert!(matches!(store.get("k").await, Err(StoreError::Unavailable(_))), "down reads as unavailable");
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(10), "no hang: {:?}", started.elapsed());

    // A dev server keeps no data, but the same root token: the client simply works again.
    let _bao = Bao::start_on(port).await;
    store.put("k", b"again".to_vec(), None).await.unwrap();
    assert_eq!(store.take("k").await.unwrap().as_deref(), Some(&b"again"[..]));
}
