//! Wake-ups. On Postgres the job tables' writers `NOTIFY` (`fuselab_job_events` with `job:seq`
//! for every event, `fuselab_job_cancel` with the job's id for a cancel or delete), and one
//! `LISTEN` connection per process relays them to whoever waits on a job here: event streams
//! wake as soon as there is something to read, and a worker hears a cancel without waiting for
//! its lease renewal. SQLite has no notifications (and serves one machine): waiters poll.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::db::Engine;

/// How often a waiter looks without notifications (SQLite).
const POLL: Duration = Duration::from_millis(250);
/// How long a waiter trusts notifications alone (Postgres): one missed while the listener
/// reconnected is made up for by then.
const NOTIFIED_FALLBACK: Duration = Duration::from_secs(5);
/// Notifications a slow waiter may fall behind by before it just looks again.
const BACKLOG: usize = 1024;

/// One notification: which job, and whether it asks it to stop.
#[derive(Debug, Clone)]
struct Notice {
    job: String,
    cancel: bool,
}

/// The process's relay of notifications (Postgres), started by the first waiter.
#[derive(Debug, Clone, Default)]
pub(super) struct Notices {
    relay: Option<Arc<Relay>>,
}

#[derive(Debug)]
struct Relay {
    url: String,
    sender: broadcast::Sender<Notice>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Notices {
    /// A relay for `url` on Postgres; none on SQLite.
    pub(super) fn new(engine: Engine, url: &str) -> Self {
        Self {
            relay: (engine == Engine::Postgres).then(|| {
                Arc::new(Relay {
                    url: url.to_owned(),
                    sender: broadcast::channel(BACKLOG).0,
                    task: Mutex::default(),
                })
            }),
        }
    }

    /// A receiver of every notification from now on; the listener starts with the first.
    fn subscribe(&self) -> Option<broadcast::Receiver<Notice>> {
        let relay = self.relay.as_ref()?;
        let receiver = relay.sender.subscribe();
        if let Ok(mut task) = relay.task.lock()
            && task.is_none()
        {
            *task = Some(tokio::spawn(listen(
                relay.url.clone(),
                relay.sender.clone(),
            )));
        }
        Some(receiver)
    }

    /// Stops the listener.
    pub(super) fn stop(&self) {
        if let Some(relay) = &self.relay
            && let Ok(mut task) = relay.task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }

    /// A wait for news of job `id`.
    pub(super) fn watch(&self, id: &str) -> JobWatch {
        JobWatch {
            id: id.to_owned(),
            receiver: self.subscribe(),
        }
    }
}

/// Relays notifications until aborted, connecting again after a failure.
async fn listen(url: String, sender: broadcast::Sender<Notice>) {
    loop {
        if let Err(error) = relay(&url, &sender).await {
            tracing::warn!(%error, "listening for job notifications; connecting again in 1 s");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn relay(url: &str, sender: &broadcast::Sender<Notice>) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener
        .listen_all(["fuselab_job_events", "fuselab_job_cancel"])
        .await?;
    loop {
        let notification = listener.recv().await?;
        let payload = notification.payload();
        let job = payload.split_once(':').map_or(payload, |(job, _)| job);
        // No waiter is fine: nobody follows that job here.
        let _ = sender.send(Notice {
            job: job.to_owned(),
            cancel: notification.channel() == "fuselab_job_cancel",
        });
    }
}

/// Waits for news of one job: a notification on Postgres, the next poll on SQLite.
#[derive(Debug)]
pub struct JobWatch {
    id: String,
    receiver: Option<broadcast::Receiver<Notice>>,
}

impl JobWatch {
    /// Returns when the job may have news: a notification for it (Postgres; at the latest after
    /// a fallback of a few seconds), or after a short poll (SQLite).
    pub async fn changed(&mut self) {
        let Some(receiver) = self.receiver.as_mut() else {
            tokio::time::sleep(POLL).await;
            return;
        };
        let id = &self.id;
        let _ = tokio::time::timeout(NOTIFIED_FALLBACK, next(receiver, id, false)).await;
    }

    /// Returns when a cancel (or delete) of the job is notified; never on SQLite.
    pub async fn cancelled(&mut self) {
        match self.receiver.as_mut() {
            Some(receiver) => next(receiver, &self.id, true).await,
            None => std::future::pending().await,
        }
    }
}

/// The next notice for `id` (a cancel, when `cancel`); a waiter that fell behind returns at once
/// (it looks again anyway), one whose relay is gone never.
async fn next(receiver: &mut broadcast::Receiver<Notice>, id: &str, cancel: bool) {
    loop {
        match receiver.recv().await {
            Ok(notice) if notice.job == id && (notice.cancel || !cancel) => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}
