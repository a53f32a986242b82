//! Tandem's first-party collector.
//!
//! The endpoint the tag beacons to. It receives each event, keeps it exactly once (SQLite,
//! `UNIQUE(event_id)`), and forwards it through a durable outbox to Meta's Conversions API,
//! TikTok's Events API and GA4's Measurement Protocol with the same `event_id` the browser pixel
//! used, which is what lets the platforms deduplicate browser and server events.
//!
//! Code map: [`config`] (file, env, flags) → [`server`] (HTTP: the collect path, `/collect` unless
//! configured; `/events`, `/healthz`) → [`payload`] + [`schema`] (parse and validate against
//! `schema/collect.schema.json`) → [`store`] (events + outbox, one writer thread, group commit)
//! → [`outbox`] (delivery worker) → [`forward`] (one file per platform, request building only).
//! [`cookies`] sets first-party cookies; [`event`] holds the types they share.
//!
//! Invariants: nothing is acknowledged before it is committed; an event row and its outbox rows
//! are committed together; a platform module never does I/O.

pub mod config;
pub mod cookies;
pub mod event;
pub mod forward;
pub mod outbox;
pub mod payload;
pub mod schema;
pub mod server;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::forward::configured_platforms;
use crate::outbox::OutboxWorker;
use crate::schema::Schema;
use crate::server::{router, AppState};
use crate::store::Store;

/// Why [`serve`] returned an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeError {
    /// Could not start: schema, database, migrations, HTTP client (exit code 2).
    Startup(String),
    /// Failed while serving (exit code 1).
    Runtime(String),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Startup(message) => write!(formatter, "cannot start: {message}"),
            Self::Runtime(message) => formatter.write_str(message),
        }
    }
}

impl std::error::Error for ServeError {}

/// Opens the store and serves on `listener` until `shutdown` resolves; then stops taking
/// requests, lets in-flight ones and outbox sends finish, and closes the store.
pub async fn serve(config: Config, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    let schema = Schema::collect().map_err(ServeError::Startup)?;
    let platforms = configured_platforms(&config);
    let store = Store::open(&config.db, config.synchronous, platforms.clone()).map_err(|error| ServeError::Startup(error.to_string()))?;
    let outbox_wake = Arc::new(Notify::new());
    let worker = OutboxWorker::new(store.clone(), platforms, config.outbox.clone(), outbox_wake.clone()).map_err(ServeError::Startup)?;
    let (stop_worker, worker_stopped) = watch::channel(false);
    let worker_task = tokio::spawn(worker.run(worker_stopped));

    let state = Arc::new(AppState { store: store.clone(), schema, config, outbox_wake });
    let app = router(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;

    let _ = stop_worker.send(true);
    let _ = worker_task.await;
    drop(state);
    store.close().await;
    served.map_err(|error| ServeError::Runtime(format!("server error: {error}")))
}
