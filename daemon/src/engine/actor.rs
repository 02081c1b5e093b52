//! The engine's thread. Jobs are closures over `&mut Engine`, so every API
//! call runs alone, in arrival order, with no lock anywhere. Jobs that
//! arrive together run as one group and share one commit (group commit):
//! every reply waits for it, so no caller is told of, or reads, a change
//! that is not durable yet.

use std::sync::Arc;
use std::thread;

use tokio::sync::{mpsc, oneshot};

use crate::engine::{Engine, EngineError};
use crate::state::StateError;

/// A job run: what it returns sends its reply once its group is committed
/// (with the commit's failure, if it failed).
type Job = Box<dyn FnOnce(&mut Engine) -> Reply + Send>;
type Reply = Box<dyn FnOnce(Option<&Arc<StateError>>) + Send>;

/// Queue depth before API handlers wait; decisions take microseconds.
const QUEUE: usize = 1024;

/// Jobs in one group at most, so the first replies are not held back long
/// behind a flood.
const GROUP: usize = 256;

#[derive(Debug, thiserror::Error)]
#[error("the engine has stopped")]
pub struct EngineGone;

/// A cheap, cloneable way to reach the engine.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Job>,
}

/// `f` as a job for the engine's thread, and where its result will arrive;
/// `failed` turns the result into what to answer when the group's commit
/// failed.
fn job<R, F>(f: F, failed: fn(R, &Arc<StateError>) -> R) -> (Job, oneshot::Receiver<R>)
where
    R: Send + 'static,
    F: FnOnce(&mut Engine) -> R + Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    let job: Job = Box::new(move |engine| {
        let result = f(engine);
        Box::new(move |commit: Option<&Arc<StateError>>| {
            let result = match commit {
                Some(e) => failed(result, e),
                None => result,
            };
            if reply.send(result).is_err() {
                // The caller gave up waiting (its client went away): the
                // job ran all the same, and there is nobody to tell.
            }
        })
    });
    (job, rx)
}

/// A read, or a change whose caller does not wait for durability.
fn as_it_was<R>(result: R, _: &Arc<StateError>) -> R {
    result
}

/// A change acknowledged only once durable: made, not durable, is an error.
fn not_durable<T>(result: Result<T, EngineError>, e: &Arc<StateError>) -> Result<T, EngineError> {
    result.and(Err(EngineError::State(Arc::clone(e))))
}

/// A handle that does not keep the engine running (the metrics listener's:
/// the engine stops when the API and the ticker let go).
#[derive(Clone)]
pub struct WeakEngineHandle {
    tx: mpsc::WeakSender<Job>,
}

impl WeakEngineHandle {
    pub fn upgrade(&self) -> Option<EngineHandle> {
        self.tx.upgrade().map(|tx| EngineHandle { tx })
    }
}

impl EngineHandle {
    pub fn downgrade(&self) -> WeakEngineHandle {
        WeakEngineHandle {
            tx: self.tx.downgrade(),
        }
    }

    /// Runs `f` on the engine's thread and returns its result once the
    /// group it ran in is committed.
    pub async fn call<R, F>(&self, f: F) -> Result<R, EngineGone>
    where
        R: Send + 'static,
        F: FnOnce(&mut Engine) -> R + Send + 'static,
    {
        let (job, rx) = job(f, as_it_was);
        self.tx.send(job).await.map_err(|_| EngineGone)?;
        rx.await.map_err(|_| EngineGone)
    }

    /// As `call`, for a change: if the group's commit failed, a change
    /// that succeeded answers `EngineError::State` (made, not durable).
    pub async fn change<T, F>(&self, f: F) -> Result<Result<T, EngineError>, EngineGone>
    where
        T: Send + 'static,
        F: FnOnce(&mut Engine) -> Result<T, EngineError> + Send + 'static,
    {
        let (job, rx) = job(f, not_durable);
        self.tx.send(job).await.map_err(|_| EngineGone)?;
        rx.await.map_err(|_| EngineGone)
    }

    /// Queues `f` at once, ahead of anything sent later (the restore runs
    /// before any API call), and returns where its result will arrive.
    pub fn call_first<R, F>(&self, f: F) -> Result<oneshot::Receiver<R>, EngineGone>
    where
        R: Send + 'static,
        F: FnOnce(&mut Engine) -> R + Send + 'static,
    {
        let (job, rx) = job(f, as_it_was);
        self.tx.try_send(job).map_err(|_| EngineGone)?;
        Ok(rx)
    }
}

/// Starts the engine on its own OS thread: host effects block (sysfs writes,
/// fsync), and must not stall the async runtime. The thread ends when every
/// handle is dropped.
pub fn spawn(mut engine: Engine) -> std::io::Result<(EngineHandle, thread::JoinHandle<()>)> {
    let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
    let thread = thread::Builder::new()
        .name("ifad-engine".into())
        .spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                run_group(&mut engine, first, &mut rx);
            }
        })?;
    Ok((EngineHandle { tx }, thread))
}

/// Runs `first` and whatever else is already queued (up to `GROUP`), commits
/// once, then replies to each.
fn run_group(engine: &mut Engine, first: Job, rx: &mut mpsc::Receiver<Job>) {
    engine.begin_group();
    let mut replies = vec![first(engine)];
    while replies.len() < GROUP {
        let Ok(job) = rx.try_recv() else { break };
        replies.push(job(engine));
    }
    let committed = engine.end_group();
    for reply in replies {
        reply(committed.as_ref().err());
    }
}
