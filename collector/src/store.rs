//! The embedded SQLite store: events (exactly once per `event_id`) and the forwarding outbox.
//!
//! Durability and exactly-once, in one place:
//! - All ingest writes go through one dedicated writer thread fed by a bounded channel. It drains
//!   whatever requests are waiting and commits them in one transaction (group commit), then
//!   answers each request. A request is acknowledged only after its transaction committed.
//! - `event_id` is `UNIQUE`; `INSERT … ON CONFLICT DO NOTHING` makes a retried beacon, a double fire
//!   or two concurrent posts of the same batch store one row; later copies report `Duplicate`.
//!   The single writer serialises concurrent posts, so "which copy wins" is well defined.
//! - The outbox rows for a new event are inserted in the same transaction as the event, so an
//!   event is never stored without its forwarding work, nor the reverse.
//! - WAL mode. `synchronous = NORMAL` (default) means a commit is in the WAL file (the OS page
//!   cache) before we answer: a killed process — SIGKILL, panic, OOM — loses nothing acknowledged.
//!   Only a power loss or kernel crash can drop the last commits; `synchronous = "full"` in the
//!   config adds an fsync per group commit for that case.
//! - Reads (`GET /events`, health) and outbox bookkeeping use their own connections; WAL lets
//!   them run beside the writer.
//! - WAL checkpoints (copying the WAL back into the database file, with an fsync) run on a
//!   background thread every [`CHECKPOINT_INTERVAL`] in PASSIVE mode, never inside an ingest
//!   commit: SQLite's automatic checkpoint is turned off on the writer so no beacon waits for
//!   a checkpoint's fsync (that was the source of 40–100 ms latency spikes).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, params_from_iter, Connection, OpenFlags};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::event::RequestContext;
use crate::forward::Platform;
use crate::payload::ValidEvent;

/// Schema migrations, applied in order; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[(&str, &str)] = &[("0001_init", include_str!("../migrations/0001_init.sql"))];

/// How many waiting ingest requests one transaction may take.
const MAX_REQUESTS_PER_COMMIT: usize = 512;
/// Ingest requests that may wait for the writer before senders feel back-pressure.
const WRITER_QUEUE_DEPTH: usize = 4096;
/// How often the background thread checkpoints the WAL.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
/// How long a connection waits for another connection's write lock.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Survives process death; the last commits may be lost on power loss. Fast.
    #[default]
    Normal,
    /// fsync per commit: survives power loss too.
    Full,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        Self(format!("sqlite: {error}"))
    }
}

/// An event to store, with the request it came in.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event: ValidEvent,
    pub context: RequestContext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InsertOutcome {
    Stored,
    Duplicate,
}

struct IngestJob {
    events: Vec<NewEvent>,
    received_at_ms: i64,
    reply: oneshot::Sender<Result<Vec<InsertOutcome>, StoreError>>,
}

/// Filter for `GET /events`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub event_id: Option<String>,
    pub event_name: Option<String>,
    /// Inclusive bounds on `event_time` (Unix seconds).
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Only rows with a store id above this (cursor for paging).
    pub after_id: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub id: i64,
    pub event_id: String,
    pub event_name: String,
    pub event_time: i64,
    pub client_id: String,
    pub received_at_ms: i64,
    pub event: Value,
    pub context: Value,
    pub forwarding: Vec<ForwardingRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForwardingRecord {
    pub platform: String,
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub sent_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub events_stored: i64,
    pub outbox_pending: i64,
    pub outbox_dead: i64,
}

/// One outbox row due for sending, with what the forwarder needs to build the request.
#[derive(Debug, Clone)]
pub struct OutboxJob {
    pub id: i64,
    pub platform: String,
    pub attempts: i64,
    pub event_id: String,
    pub payload: String,
    pub context: String,
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    ingest: mpsc::Sender<IngestJob>,
    reader: Mutex<Connection>,
    outbox: Mutex<Connection>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Dropping it stops the checkpoint thread.
    _stop_checkpoints: std::sync::mpsc::Sender<()>,
    path: PathBuf,
    /// The configured platforms' names as a JSON array: only their rows are claimed, so the rows
    /// of a platform switched off wait, uncounted, until it is configured again.
    platform_names: String,
}

impl Store {
    /// Opens (creating if needed) the database, applies migrations and starts the writer.
    /// `platforms` are the forwarding targets each new event gets an outbox row for (when the
    /// platform forwards events of its name).
    pub fn open(path: &Path, synchronous: Synchronous, platforms: Vec<Arc<dyn Platform>>) -> Result<Self, StoreError> {
        let platform_names = Value::from(platforms.iter().map(|platform| platform.name()).collect::<Vec<_>>()).to_string();
        let mut writer = open_connection(path, synchronous)?;
        let journal_mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !journal_mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError(format!("{}: could not switch to WAL mode (got {journal_mode})", path.display())));
        }
        migrate(&mut writer)?;
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpointer = open_connection(path, synchronous)?;
        let (stop_checkpoints, checkpoint_stop) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("tandem-store-checkpoint".to_owned())
            .spawn(move || checkpoint_loop(checkpointer, checkpoint_stop))
            .map_err(|error| StoreError(format!("cannot start the checkpoint thread: {error}")))?;
        let reader = open_connection(path, synchronous)?;
        let outbox = open_connection(path, synchronous)?;
        let (ingest, jobs) = mpsc::channel(WRITER_QUEUE_DEPTH);
        let writer_thread = std::thread::Builder::new()
            .name("tandem-store-writer".to_owned())
            .spawn(move || writer_loop(writer, jobs, platforms))
            .map_err(|error| StoreError(format!("cannot start the writer thread: {error}")))?;
        Ok(Self {
            inner: Arc::new(StoreInner {
                ingest,
                reader: Mutex::new(reader),
                outbox: Mutex::new(outbox),
                writer_thread: Mutex::new(Some(writer_thread)),
                _stop_checkpoints: stop_checkpoints,
                path: path.to_owned(),
                platform_names,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stores the events (each at most once, ever) and their outbox rows; resolves after commit.
    pub async fn ingest(&self, events: Vec<NewEvent>, received_at_ms: i64) -> Result<Vec<InsertOutcome>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.inner
            .ingest
            .send(IngestJob { events, received_at_ms, reply })
            .await
            .map_err(|_| StoreError("the store is shutting down".to_owned()))?;
        answer.await.map_err(|_| StoreError("the store writer stopped".to_owned()))?
    }

    pub async fn query_events(&self, filter: EventFilter) -> Result<Vec<EventRecord>, StoreError> {
        let inner = self.inner.clone();
        blocking(move || {
            let connection = lock(&inner.reader)?;
            query_events(&connection, &filter)
        })
        .await
    }

    pub async fn health(&self) -> Result<Health, StoreError> {
        let inner = self.inner.clone();
        blocking(move || {
            let connection = lock(&inner.reader)?;
            let count = |sql: &str| connection.query_row(sql, [], |row| row.get::<_, Option<i64>>(0)).map(Option::unwrap_or_default);
            Ok(Health {
                // Rows are never deleted, so the highest id is the row count, without a scan.
                events_stored: count("SELECT max(id) FROM events")?,
                outbox_pending: count("SELECT count(*) FROM outbox WHERE state = 'pending'")?,
                outbox_dead: count("SELECT count(*) FROM outbox WHERE state = 'dead'")?,
            })
        })
        .await
    }

    /// Outbox rows due at `now_ms`, oldest first, skipping the ids in `in_flight`.
    pub async fn claim_due(&self, now_ms: i64, limit: usize, in_flight: HashSet<i64>) -> Result<Vec<OutboxJob>, StoreError> {
        let inner = self.inner.clone();
        blocking(move || {
            let connection = lock(&inner.outbox)?;
            let mut statement = connection.prepare_cached(
                "SELECT o.id, o.platform, o.attempts, e.event_id, e.payload, e.context
                 FROM outbox o JOIN events e ON e.id = o.event_rowid
                 WHERE o.state = 'pending' AND o.next_attempt_at_ms <= ?1
                   AND o.platform IN (SELECT value FROM json_each(?3))
                 ORDER BY o.next_attempt_at_ms, o.id LIMIT ?2",
            )?;
            let fetch = (limit + in_flight.len()) as i64;
            let rows = statement.query_map(params![now_ms, fetch, inner.platform_names], |row| {
                Ok(OutboxJob {
                    id: row.get(0)?,
                    platform: row.get(1)?,
                    attempts: row.get(2)?,
                    event_id: row.get(3)?,
                    payload: row.get(4)?,
                    context: row.get(5)?,
                })
            })?;
            let mut due = Vec::new();
            for row in rows {
                let job = row?;
                if !in_flight.contains(&job.id) && due.len() < limit {
                    due.push(job);
                }
            }
            Ok(due)
        })
        .await
    }

    /// Records a 2xx. One statement, run right after the response, so the window in which a
    /// kill makes the row be sent again is as small as it can be.
    pub async fn mark_sent(&self, outbox_id: i64, status: u16, now_ms: i64) -> Result<(), StoreError> {
        self.outbox_update(
            "UPDATE outbox SET state = 'sent', attempts = attempts + 1, last_status = ?2, last_error = NULL, sent_at_ms = ?3 WHERE id = ?1",
            outbox_id,
            Some(i64::from(status)),
            OutboxValue::Int(now_ms),
        )
        .await
    }

    /// Records a failed attempt that will be tried again at `next_attempt_at_ms`.
    pub async fn mark_retry(&self, outbox_id: i64, status: Option<u16>, error: String, next_attempt_at_ms: i64) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        blocking(move || {
            lock(&inner.outbox)?
                .prepare_cached("UPDATE outbox SET attempts = attempts + 1, last_status = ?2, last_error = ?3, next_attempt_at_ms = ?4 WHERE id = ?1")?
                .execute(params![outbox_id, status.map(i64::from), error, next_attempt_at_ms])?;
            Ok(())
        })
        .await
    }

    /// Gives up on a row (4xx, unbuildable request, too many attempts), keeping the error.
    pub async fn mark_dead(&self, outbox_id: i64, status: Option<u16>, error: String) -> Result<(), StoreError> {
        self.outbox_update(
            "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_status = ?2, last_error = ?3 WHERE id = ?1",
            outbox_id,
            status.map(i64::from),
            OutboxValue::Text(error),
        )
        .await
    }

    async fn outbox_update(&self, sql: &'static str, outbox_id: i64, status: Option<i64>, third: OutboxValue) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        blocking(move || {
            let connection = lock(&inner.outbox)?;
            let mut statement = connection.prepare_cached(sql)?;
            match third {
                OutboxValue::Int(number) => statement.execute(params![outbox_id, status, number])?,
                OutboxValue::Text(text) => statement.execute(params![outbox_id, status, text])?,
            };
            Ok(())
        })
        .await
    }

    /// Stops accepting writes and waits for the writer to commit what it has. Other clones of
    /// the handle must be dropped first for the writer to see the end of its queue.
    pub async fn close(self) {
        let handle = match self.inner.writer_thread.lock() {
            Ok(mut slot) => slot.take(),
            Err(_) => None,
        };
        drop(self);
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

enum OutboxValue {
    Int(i64),
    Text(String),
}

fn lock(connection: &Mutex<Connection>) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
    connection.lock().map_err(|_| StoreError("a store connection was poisoned by a panic".to_owned()))
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, StoreError> + Send + 'static) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| StoreError(format!("store task failed: {error}")))?
}

fn open_connection(path: &Path, synchronous: Synchronous) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)
        .map_err(|error| StoreError(format!("cannot open database {}: {error}", path.display())))?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    let level = match synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    connection.execute_batch(&format!("PRAGMA synchronous = {level}; PRAGMA foreign_keys = ON;"))?;
    Ok(connection)
}

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let applied: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if applied > known {
        return Err(StoreError(format!(
            "the database is at schema version {applied} but this collector only knows {known}: use a newer collector"
        )));
    }
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let transaction = connection.transaction()?;
        transaction
            .execute_batch(sql)
            .map_err(|error| StoreError(format!("migration {name} failed: {error}")))?;
        transaction.pragma_update(None, "user_version", index as i64 + 1)?;
        transaction.commit()?;
    }
    Ok(())
}

fn checkpoint_loop(connection: Connection, stop: std::sync::mpsc::Receiver<()>) {
    loop {
        match stop.recv_timeout(CHECKPOINT_INTERVAL) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    eprintln!("tandem-collector: WAL checkpoint failed (will retry): {error}");
                }
            }
            // Store dropped: one last checkpoint so the WAL does not grow across restarts.
            _ => {
                let _ = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                return;
            }
        }
    }
}

fn writer_loop(mut connection: Connection, mut jobs: mpsc::Receiver<IngestJob>, platforms: Vec<Arc<dyn Platform>>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_REQUESTS_PER_COMMIT {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        match write_group(&mut connection, &group, &platforms) {
            Ok(outcomes) => {
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                eprintln!("tandem-collector: store write failed, {} request(s) not acknowledged: {error}", group.len());
                for job in group {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

fn write_group(connection: &mut Connection, group: &[IngestJob], platforms: &[Arc<dyn Platform>]) -> Result<Vec<Vec<InsertOutcome>>, StoreError> {
    let transaction = connection.transaction()?;
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut insert_event = transaction.prepare_cached(
            "INSERT INTO events (event_id, event_name, event_time, client_id, received_at_ms, payload, context)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (event_id) DO NOTHING",
        )?;
        let mut insert_outbox = transaction.prepare_cached(
            "INSERT INTO outbox (event_rowid, platform, state, next_attempt_at_ms) VALUES (?1, ?2, 'pending', ?3)",
        )?;
        for job in group {
            let mut job_outcomes = Vec::with_capacity(job.events.len());
            for new_event in &job.events {
                let event = &new_event.event;
                let payload = serde_json::to_string(&event.body).map_err(|error| StoreError(format!("cannot serialise event: {error}")))?;
                let context = serde_json::to_string(&new_event.context).map_err(|error| StoreError(format!("cannot serialise context: {error}")))?;
                let inserted = insert_event.execute(params![
                    event.event_id,
                    event.event_name,
                    event.event_time,
                    event.client_id,
                    job.received_at_ms,
                    payload,
                    context
                ])?;
                if inserted == 1 {
                    let rowid = transaction.last_insert_rowid();
                    for platform in platforms.iter().filter(|platform| platform.forwards(&event.event_name)) {
                        insert_outbox.execute(params![rowid, platform.name(), job.received_at_ms])?;
                    }
                    job_outcomes.push(InsertOutcome::Stored);
                } else {
                    job_outcomes.push(InsertOutcome::Duplicate);
                }
            }
            outcomes.push(job_outcomes);
        }
    }
    transaction.commit()?;
    Ok(outcomes)
}

fn query_events(connection: &Connection, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
    let mut sql = String::from(
        "SELECT id, event_id, event_name, event_time, client_id, received_at_ms, payload, context FROM events WHERE 1 = 1",
    );
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    let mut add = |clause: &str, value: rusqlite::types::Value| {
        values.push(value);
        sql.push_str(&format!(" AND {clause} ?{}", values.len()));
    };
    if let Some(event_id) = &filter.event_id {
        add("event_id =", event_id.clone().into());
    }
    if let Some(name) = &filter.event_name {
        add("event_name =", name.clone().into());
    }
    if let Some(from) = filter.from {
        add("event_time >=", from.into());
    }
    if let Some(to) = filter.to {
        add("event_time <=", to.into());
    }
    if let Some(after) = filter.after_id {
        add("id >", after.into());
    }
    sql.push_str(&format!(" ORDER BY id LIMIT {}", filter.limit));
    let mut statement = connection.prepare(&sql)?;
    let rows = statement.query_map(params_from_iter(values), |row| {
        let payload: String = row.get(6)?;
        let context: String = row.get(7)?;
        Ok(EventRecord {
            id: row.get(0)?,
            event_id: row.get(1)?,
            event_name: row.get(2)?,
            event_time: row.get(3)?,
            client_id: row.get(4)?,
            received_at_ms: row.get(5)?,
            event: serde_json::from_str(&payload).unwrap_or(Value::String(payload)),
            context: serde_json::from_str(&context).unwrap_or(Value::String(context)),
            forwarding: Vec::new(),
        })
    })?;
    let mut records = rows.collect::<Result<Vec<_>, _>>()?;
    if records.is_empty() {
        return Ok(records);
    }
    let placeholders = vec!["?"; records.len()].join(",");
    let mut forwarding = connection.prepare(&format!(
        "SELECT event_rowid, platform, state, attempts, last_status, last_error, sent_at_ms FROM outbox
         WHERE event_rowid IN ({placeholders}) ORDER BY platform"
    ))?;
    let mut by_event: HashMap<i64, Vec<ForwardingRecord>> = HashMap::new();
    let rows = forwarding.query_map(params_from_iter(records.iter().map(|record| record.id)), |row| {
        Ok((
            row.get::<_, i64>(0)?,
            ForwardingRecord {
                platform: row.get(1)?,
                state: row.get(2)?,
                attempts: row.get(3)?,
                last_status: row.get(4)?,
                last_error: row.get(5)?,
                sent_at_ms: row.get(6)?,
            },
        ))
    })?;
    for row in rows {
        let (event_rowid, record) = row?;
        by_event.entry(event_rowid).or_default().push(record);
    }
    for record in &mut records {
        record.forwarding = by_event.remove(&record.id).unwrap_or_default();
    }
    Ok(records)
}
