//! Threads for connects that block.
//!
//! A connect on a blocking socket lasts as long as the network makes it (a filtered port:
//! minutes). The supervisor's main thread must go on answering the sandbox's other calls
//! meanwhile, so such a connect is handed to a worker thread, which performs it and answers
//! the notification itself (the listener takes answers from any thread). Workers are made
//! when every existing one is busy and then wait for the next connect: as many threads as
//! the sandbox ever had blocking connects at once, none when it has none.

use super::calls::Pending;
use crate::notify::respond;
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

struct Job {
    id: u64,
    connect: Pending,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    idle: usize,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    listener: Arc<OwnedFd>,
}

/// The workers of one supervisor.
pub(super) struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    pub(super) fn new(listener: Arc<OwnedFd>) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                ready: Condvar::new(),
                listener,
            }),
        }
    }

    /// Performs `connect` on a worker and answers notification `id` with its result.
    pub(super) fn submit(&self, id: u64, connect: Pending) {
        let mut q = self
            .shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        q.jobs.push_back(Job { id, connect });
        // A waiting worker takes one job; more jobs than waiting workers need another.
        let spawn = q.jobs.len() > q.idle;
        drop(q);
        if spawn {
            let shared = Arc::clone(&self.shared);
            if std::thread::Builder::new()
                .name("moat-connect".into())
                .spawn(move || work(&shared))
                .is_err()
            {
                // No thread: perform it here rather than leave the caller waiting.
                if let Some(job) = self.take() {
                    respond(&self.shared.listener, job.id, job.connect.perform());
                }
            }
        } else {
            self.shared.ready.notify_one();
        }
    }

    fn take(&self) -> Option<Job> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .jobs
            .pop_front()
    }

    /// Lets the workers end once the queue is empty.
    pub(super) fn close(&self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.shared.ready.notify_all();
    }
}

fn work(shared: &Shared) {
    loop {
        let job = {
            let mut q = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    break job;
                }
                if q.closed {
                    return;
                }
                q.idle += 1;
                q = shared.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
                q.idle -= 1;
            }
        };
        respond(&shared.listener, job.id, job.connect.perform());
    }
}
