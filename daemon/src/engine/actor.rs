//! The engine's thread. Jobs are closures over `&mut Engine`, so every API
//! call runs alone, in arrival order, with no lock anywhere.

use std::thread;

use tokio::sync::{mpsc, oneshot};

use crate::engine::Engine;

type Job = Box<dyn FnOnce(&mut Engine) + Send>;

/// Queue depth before API handlers wait; decisions take microseconds.
const QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[error("the engine has stopped")]
pub struct EngineGone;

/// A cheap, cloneable way to reach the engine.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Job>,
}

/// `f` as a job for the engine's thread, and where its result will arrive.
fn job<R, F>(f: F) -> (Job, oneshot::Receiver<R>)
where
    R: Send + 'static,
    F: FnOnce(&mut Engine) -> R + Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    let job: Job = Box::new(move |engine| {
        if reply.send(f(engine)).is_err() {
            // The caller gave up waiting (its client went away): the job
            // ran all the same, and there is nobody to tell.
        }
    });
    (job, rx)
}

impl EngineHandle {
    /// Runs `f` on the engine's thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, EngineGone>
    where
        R: Send + 'static,
        F: FnOnce(&mut Engine) -> R + Send + 'static,
    {
        let (job, rx) = job(f);
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
        let (job, rx) = job(f);
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
            while let Some(job) = rx.blocking_recv() {
                job(&mut engine);
            }
        })?;
    Ok((EngineHandle { tx }, thread))
}
