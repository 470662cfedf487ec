//! Failing fast while the database is down. Without this, every request that needs the
//! database waits out the pool's acquire timeout (sqlx retries a refused connection until
//! then) before answering 503, and piles up meanwhile.
//!
//! One flag per process says whether the database is up. It goes down when a request
//! meets an unavailable database or [`FAILED_PROBES_FOR_DOWN`] probes in a row fail (one
//! slow probe on a loaded machine is not an outage); while it is down, routes that
//! need the database answer 503 problem+json at once, requests already waiting on the
//! database are answered 503 the moment it goes down, and a probe every
//! [`PROBE_EVERY`] brings it back up when the database answers again, without a restart.
//! Routes that need no database (anonymous-history recommendations, tracks, models) are
//! not gated and keep being served.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use super::AppState;
use super::error::{ApiError, DatabaseUnavailable};
use crate::store::{Store, StoreError};

/// How often the database is probed, up or down.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);
/// Seconds a client is told to wait while the dataset is being imported.
const IMPORT_RETRY_AFTER: u64 = 5;
/// How long a probe may take before it counts as a failure.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Failed probes in a row that lower the flag. A refused connection is retried by the pool
/// until its acquire timeout, so an outage shows as probes timing out, exactly as a probe
/// starved of CPU does; two in a row (about a second) tell them apart without slowing
/// detection much. A request that meets the outage lowers the flag at once.
pub const FAILED_PROBES_FOR_DOWN: u32 = 2;

pub struct Availability {
    store: Store,
    up: watch::Sender<bool>,
    /// Probes failed since the last one that succeeded.
    failed_probes: AtomicU32,
}

impl Availability {
    /// Starts up, with a background probe that lives as long as the returned handle.
    pub fn start(store: Store) -> Arc<Self> {
        let this = Arc::new(Self {
            store,
            up: watch::Sender::new(true),
            failed_probes: AtomicU32::new(0),
        });
        tokio::spawn(probe(Arc::downgrade(&this)));
        this
    }

    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    fn set(&self, up: bool) {
        let changed = self
            .up
            .send_if_modified(|now| std::mem::replace(now, up) != up);
        if changed {
            if up {
                tracing::info!("the database answers again");
            } else {
                tracing::warn!("the database is unavailable: answering 503 until it returns");
            }
        }
    }

    /// One round trip within [`PROBE_TIMEOUT`]: a success raises the flag, the
    /// [`FAILED_PROBES_FOR_DOWN`]th failure in a row lowers it. Returns the flag.
    pub async fn check(&self) -> bool {
        let ok = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, self.store.ping()).await,
            Ok(Ok(()))
        );
        if ok {
            self.failed_probes.store(0, Ordering::Relaxed);
            self.set(true);
        } else {
            let failed = self.failed_probes.fetch_add(1, Ordering::Relaxed) + 1;
            if failed >= FAILED_PROBES_FOR_DOWN {
                self.set(false);
            } else {
                tracing::info!("a database probe failed; the next one decides");
            }
        }
        self.is_up()
    }

    /// Resolves when the flag goes down.
    async fn went_down(&self) {
        let mut rx = self.up.subscribe();
        let _ = rx.wait_for(|up| !*up).await;
    }
}

async fn probe(this: Weak<Availability>) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let Some(this) = this.upgrade() else { return };
        this.check().await;
    }
}

/// Middleware for routes that need the database: 503 `not-ready` while the dataset is
/// still being imported into it, 503 at once while it is down, 503 as
/// soon as it goes down for requests already waiting, and the flag lowered by a request
/// that met an unavailable database.
pub async fn require_database(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.importing() {
        return ApiError::NotReady {
            detail: "the dataset is still being imported into the database; this route answers once it is (see /ready)".into(),
            retry_after: IMPORT_RETRY_AFTER,
        }
        .into_response();
    }
    let database = &state.database;
    if !database.is_up() {
        return ApiError::Unavailable(StoreError::Down).into_response();
    }
    let response = tokio::select! {
        response = next.run(request) => response,
        () = database.went_down() => return ApiError::Unavailable(StoreError::Down).into_response(),
    };
    if response.extensions().get::<DatabaseUnavailable>().is_some() {
        database.set(false);
    }
    response
}
