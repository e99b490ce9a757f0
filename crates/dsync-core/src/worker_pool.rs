//! A small pool of worker threads taking jobs from one queue while the calling thread
//! handles everything they report: the shape of both runs that sync several mailboxes at
//! once ([`crate::execute::run_parallel`] into a Maildir or sdbox, and
//! [`crate::pairing::parallel`] into an IMAP server). The pool knows nothing of mail;
//! the [`Worker`] says what a thread does, the [`Coordinator`] what the caller does with
//! its messages.
//!
//! What [`run`] guarantees:
//! - **In flight.** It starts `min(threads, jobs)` threads; each does one job at a time,
//!   so at most that many jobs run at once. Each thread first [starts](Worker::start)
//!   (opens its own connections); one that cannot start reports why and takes no job.
//! - **Order.** Threads take jobs from the front of the queue, so jobs start in the order
//!   given (a caller that sorts the queue, the biggest mailbox first, gets that order);
//!   they may end in any order.
//! - **Messages.** The coordinator handles them one at a time on the calling thread, in
//!   the order they arrive, those of one thread in the order it sent them. It alone
//!   touches the caller's report and state, so neither needs a lock. A thread that must
//!   not go on before the caller acted on a message (persisted a state) [asks](Link::ask)
//!   and waits for the answer.
//! - **Errors.** The first error the coordinator returns stops the pool: no thread takes
//!   another job; jobs already running end and their messages are still handled (a later
//!   error is dropped: the first is the run's). [`run`] returns that error, and the jobs
//!   not taken are dropped with it. Without an error it returns the jobs no thread took,
//!   for the caller to do itself: all of them when no thread could start.
//! - **Cancellation.** After each message the pool asks the coordinator whether the run
//!   was [interrupted](Coordinator::interrupted); from the first yes on, every thread's
//!   [`Link::interrupted`] says so. The pool abandons no job: the worker decides how its
//!   job stops (a mailbox sync after its current message), and the error it reports then
//!   stops the pool as any error does.
//! - **Panics.** A thread that panics takes no further job; once every thread has ended,
//!   [`run`] panics too (as [`std::thread::scope`] does). The messages it sent before are
//!   handled.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};

/// What each thread of the pool does.
pub(crate) trait Worker: Sync {
    /// One piece of work, taken by one thread.
    type Job: Send;
    /// What a thread tells the calling thread.
    type Message: Send;
    /// What a thread keeps from one job to the next (its own connections).
    type ThreadState;

    /// Prepares a thread before its first job; `Err` is passed to the coordinator, and the
    /// thread ends without taking a job.
    fn start(&self) -> Result<Self::ThreadState, Self::Message>;

    /// Does one job, telling the calling thread through `link`.
    fn run(
        &self,
        thread: &mut Self::ThreadState,
        job: Self::Job,
        link: &Link<'_, Self::Message>,
    ) -> AfterJob;

    /// Ends a thread after its last job (logs out of its connections).
    fn end(&self, thread: Self::ThreadState);
}

/// Whether a thread takes another job after the one it just did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterJob {
    /// The next job in the queue, if any is left and the pool was not stopped.
    TakeNext,
    /// None: this thread ends (its connection is lost); the others go on.
    EndThread,
}

/// The calling thread's side: handles the threads' messages (`M`, [`Worker::Message`]).
pub(crate) trait Coordinator<M> {
    /// What stops the pool.
    type Error;

    /// Handles one message; an error stops the pool (see the module's documentation).
    fn handle(&mut self, message: M) -> Result<(), Self::Error>;

    /// Asked after each message: true makes [`Link::interrupted`] true in every thread.
    fn interrupted(&mut self) -> bool;
}

/// A thread's way to the calling thread.
pub(crate) struct Link<'a, M> {
    messages: mpsc::Sender<M>,
    interrupted: &'a AtomicBool,
}

impl<M> Link<'_, M> {
    /// Passes `message` on without waiting; false when the calling thread no longer
    /// listens (it panicked).
    pub(crate) fn send(&self, message: M) -> bool {
        self.messages.send(message).is_ok()
    }

    /// Passes on the message `ask` makes around a [`Reply`], and waits until the calling
    /// thread has handled it and answered; `None` when it no longer listens or dropped
    /// the reply unanswered.
    pub(crate) fn ask<R>(&self, ask: impl FnOnce(Reply<R>) -> M) -> Option<R> {
        let (reply, answer) = mpsc::channel();
        if !self.send(ask(Reply(reply))) {
            return None;
        }
        answer.recv().ok()
    }

    /// The coordinator said the run was interrupted ([`Coordinator::interrupted`]).
    pub(crate) fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
}

/// The answer a waiting thread expects to a message ([`Link::ask`]).
pub(crate) struct Reply<R>(mpsc::Sender<R>);

impl<R> Reply<R> {
    /// Lets the asking thread go on with `answer`.
    pub(crate) fn send(self, answer: R) {
        // The thread is gone only if it panicked: nobody is left to tell.
        let _ = self.0.send(answer);
    }
}

/// Does `jobs` on up to `threads` threads running `worker`, handling their messages with
/// `coordinator` on this thread; returns the jobs no thread took, or the first error
/// (see the module's documentation for the guarantees).
pub(crate) fn run<W, C>(
    worker: &W,
    threads: usize,
    jobs: VecDeque<W::Job>,
    coordinator: &mut C,
) -> Result<VecDeque<W::Job>, C::Error>
where
    W: Worker,
    C: Coordinator<W::Message>,
{
    let threads = threads.min(jobs.len());
    let queue = Mutex::new(jobs);
    let stop = AtomicBool::new(false);
    let interrupted = AtomicBool::new(false);
    let mut first_error = None;
    std::thread::scope(|scope| {
        let (messages, received) = mpsc::channel();
        for _ in 0..threads {
            let link = Link { messages: messages.clone(), interrupted: &interrupted };
            let (queue, stop) = (&queue, &stop);
            scope.spawn(move || work(worker, queue, stop, &link));
        }
        // The loop below ends when the last thread has ended and dropped its sender.
        drop(messages);
        for message in received {
            if let Err(error) = coordinator.handle(message) {
                stop.store(true, Ordering::SeqCst);
                first_error.get_or_insert(error);
            }
            if coordinator.interrupted() {
                interrupted.store(true, Ordering::SeqCst);
            }
        }
    });
    match first_error {
        Some(error) => Err(error),
        None => Ok(queue.into_inner().unwrap_or_else(PoisonError::into_inner)),
    }
}

/// One thread: starts, then takes jobs until the queue is empty, the pool is stopped or
/// the worker ends the thread.
fn work<W: Worker>(
    worker: &W,
    queue: &Mutex<VecDeque<W::Job>>,
    stop: &AtomicBool,
    link: &Link<'_, W::Message>,
) {
    let mut thread = match worker.start() {
        Ok(thread) => thread,
        Err(message) => {
            link.send(message);
            return;
        }
    };
    while !stop.load(Ordering::SeqCst) {
        // A thread that panicked holding the lock left the queue whole: go on with it.
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
        let Some(job) = next else { break };
        if worker.run(&mut thread, job, link) == AfterJob::EndThread {
            break;
        }
    }
    worker.end(thread);
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::BTreeSet;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// What the test workers tell the coordinator.
    enum Message {
        CannotStart,
        /// Waits for the coordinator's go-ahead.
        Started(usize, Reply<()>),
        Done(usize),
        /// Makes the coordinator fail with the job's number.
        Failed(usize),
        /// Answered at once: when it is, every message the job sent before was handled.
        Ping(Reply<()>),
        Asked(usize, Reply<usize>),
        Answered(usize, Option<usize>),
        SawInterrupted(usize, bool),
        Sequence(usize, usize),
    }

    /// Runs `job` for each job; counts the threads it starts and ends.
    struct TestWorker<F> {
        job: F,
        start_fails: bool,
        started: AtomicUsize,
        ended: AtomicUsize,
    }

    fn worker<F>(job: F) -> TestWorker<F>
    where
        F: Fn(usize, &Link<'_, Message>) -> AfterJob + Sync,
    {
        TestWorker {
            job,
            start_fails: false,
            started: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
        }
    }

    impl<F> Worker for TestWorker<F>
    where
        F: Fn(usize, &Link<'_, Message>) -> AfterJob + Sync,
    {
        type Job = usize;
        type Message = Message;
        type ThreadState = ();

        fn start(&self) -> Result<(), Message> {
            self.started.fetch_add(1, Ordering::SeqCst);
            if self.start_fails { Err(Message::CannotStart) } else { Ok(()) }
        }

        fn run(&self, (): &mut (), job: usize, link: &Link<'_, Message>) -> AfterJob {
            (self.job)(job, link)
        }

        fn end(&self, (): ()) {
            self.ended.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Handles messages with `handle`; interrupted when `interrupted` says so.
    struct TestCoordinator<H, I> {
        handle: H,
        interrupted: I,
    }

    fn coordinator<H>(handle: H) -> TestCoordinator<H, fn() -> bool>
    where
        H: FnMut(Message) -> Result<(), usize>,
    {
        TestCoordinator { handle, interrupted: || false }
    }

    impl<H, I> Coordinator<Message> for TestCoordinator<H, I>
    where
        H: FnMut(Message) -> Result<(), usize>,
        I: FnMut() -> bool,
    {
        type Error = usize;

        fn handle(&mut self, message: Message) -> Result<(), usize> {
            (self.handle)(message)
        }

        fn interrupted(&mut self) -> bool {
            (self.interrupted)()
        }
    }

    /// A coordinator's handler that notes the jobs done, in the order it hears of them.
    fn note_done(done: &mut Vec<usize>) -> impl FnMut(Message) -> Result<(), usize> + '_ {
        |message| {
            if let Message::Done(job) = message {
                done.push(job);
            }
            Ok(())
        }
    }

    /// Waits until the coordinator handled what this thread sent before.
    fn ping(link: &Link<'_, Message>) {
        link.ask(Message::Ping);
    }

    #[test]
    fn jobs_start_in_queue_order_with_as_many_in_flight_as_threads() {
        const THREADS: usize = 3;
        let in_flight = AtomicUsize::new(0);
        let most_in_flight = AtomicUsize::new(0);
        let worker = worker(|job, link| {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            most_in_flight.fetch_max(now, Ordering::SeqCst);
            link.ask(|go| Message::Started(job, go));
            in_flight.fetch_sub(1, Ordering::SeqCst);
            AfterJob::TakeNext
        });
        // The coordinator lets the jobs go on THREADS at a time: a batch is whole when
        // every thread holds a job, so each batch is a set of jobs in flight together.
        let mut waiting = Vec::new();
        let mut batches = Vec::new();
        let mut coordinator = coordinator(|message| {
            if let Message::Started(job, go) = message {
                waiting.push((job, go));
                if waiting.len() == THREADS {
                    batches.push(waiting.iter().map(|(job, _)| *job).collect::<BTreeSet<_>>());
                    waiting.drain(..).for_each(|(_, go)| go.send(()));
                }
            }
            Ok(())
        });
        let left = run(&worker, THREADS, (0..9).collect(), &mut coordinator);
        assert!(left.expect("no error").is_empty());
        let expected: Vec<BTreeSet<usize>> =
            vec![[0, 1, 2].into(), [3, 4, 5].into(), [6, 7, 8].into()];
        assert_eq!(batches, expected);
        assert_eq!(most_in_flight.load(Ordering::SeqCst), THREADS);
    }

    #[test]
    fn no_more_threads_than_jobs_and_every_started_thread_is_ended() {
        let worker = worker(|job, link| {
            link.send(Message::Done(job));
            AfterJob::TakeNext
        });
        let mut done = Vec::new();
        let mut coordinator = coordinator(note_done(&mut done));
        let left = run(&worker, 8, VecDeque::from([0, 1]), &mut coordinator);
        drop(coordinator);
        assert!(left.expect("no error").is_empty());
        done.sort_unstable();
        assert_eq!(done, [0, 1]);
        assert_eq!(worker.started.load(Ordering::SeqCst), 2);
        assert_eq!(worker.ended.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn jobs_come_back_in_order_when_no_thread_can_start() {
        let mut worker = worker(|_, _| panic!("no thread started: no job runs"));
        worker.start_fails = true;
        let mut cannot_start = 0;
        let mut coordinator = coordinator(|message| {
            assert!(matches!(message, Message::CannotStart));
            cannot_start += 1;
            Ok(())
        });
        let left = run(&worker, 3, (0..5).collect(), &mut coordinator);
        assert_eq!(left.expect("no error"), [0, 1, 2, 3, 4]);
        assert_eq!(cannot_start, 3);
        assert_eq!(worker.ended.load(Ordering::SeqCst), 0, "only a started thread is ended");
    }

    #[test]
    fn a_thread_that_ends_itself_takes_no_other_job_and_the_rest_come_back() {
        let worker = worker(|_, _| AfterJob::EndThread);
        let left = run(&worker, 2, (0..5).collect(), &mut coordinator(|_| Ok(())));
        assert_eq!(left.expect("no error"), [2, 3, 4]);
        assert_eq!(worker.ended.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn an_error_stops_the_pool_and_is_returned() {
        let worker = worker(|job, link| {
            link.send(Message::Done(job));
            ping(link);
            AfterJob::TakeNext
        });
        let mut done = Vec::new();
        let mut coordinator = coordinator(|message| match message {
            Message::Done(job) => {
                done.push(job);
                if job == 2 { Err(job) } else { Ok(()) }
            }
            Message::Ping(reply) => {
                reply.send(());
                Ok(())
            }
            _ => Ok(()),
        });
        let result = run(&worker, 1, (0..6).collect(), &mut coordinator);
        assert_eq!(result, Err(2));
        assert_eq!(done, [0, 1, 2], "no job is taken after the error");
    }

    #[test]
    fn jobs_running_at_an_error_end_and_are_handled_and_the_first_error_wins() {
        const THREADS: usize = 2;
        let worker = worker(|job, link| {
            link.ask(|go| Message::Started(job, go));
            link.send(Message::Failed(job));
            ping(link);
            AfterJob::TakeNext
        });
        let mut waiting = Vec::new();
        let mut started = Vec::new();
        let mut failed = Vec::new();
        let mut coordinator = coordinator(|message| match message {
            // Both threads hold a job before either fails.
            Message::Started(job, go) => {
                started.push(job);
                waiting.push(go);
                if waiting.len() == THREADS {
                    waiting.drain(..).for_each(|go| go.send(()));
                }
                Ok(())
            }
            Message::Failed(job) => {
                failed.push(job);
                Err(job)
            }
            Message::Ping(reply) => {
                reply.send(());
                Ok(())
            }
            _ => Ok(()),
        });
        let result = run(&worker, THREADS, (0..6).collect(), &mut coordinator);
        started.sort_unstable();
        assert_eq!(started, [0, 1], "no job is taken after the error");
        assert_eq!(failed.len(), 2, "the running job's messages are still handled");
        assert_eq!(result, Err(failed[0]));
    }

    #[test]
    fn an_interruption_reaches_every_later_job_and_abandons_none() {
        let worker = worker(|job, link| {
            ping(link);
            link.send(Message::SawInterrupted(job, link.interrupted()));
            AfterJob::TakeNext
        });
        let pings = Cell::new(0);
        let mut saw = Vec::new();
        let mut coordinator = TestCoordinator {
            handle: |message| {
                match message {
                    Message::Ping(reply) => {
                        pings.set(pings.get() + 1);
                        reply.send(());
                    }
                    Message::SawInterrupted(job, interrupted) => saw.push((job, interrupted)),
                    _ => {}
                }
                Ok(())
            },
            // Interrupted once the second job has pinged: the first cannot have seen it;
            // the second may or may not (it is answered before the pool is told).
            interrupted: || pings.get() >= 2,
        };
        let left = run(&worker, 1, (0..4).collect(), &mut coordinator);
        assert!(left.expect("no error").is_empty(), "the pool abandons no job");
        assert_eq!(saw.len(), 4);
        assert_eq!(saw[0], (0, false));
        assert_eq!(&saw[2..], [(2, true), (3, true)]);
    }

    #[test]
    fn an_ask_waits_for_the_answer_and_gets_none_when_it_is_dropped() {
        let worker = worker(|job, link| {
            let answer = link.ask(|reply| Message::Asked(job, reply));
            link.send(Message::Answered(job, answer));
            AfterJob::TakeNext
        });
        let mut answered = Vec::new();
        let mut coordinator = coordinator(|message| {
            match message {
                Message::Asked(1, reply) => drop(reply),
                Message::Asked(job, reply) => reply.send(job * 10),
                Message::Answered(job, answer) => answered.push((job, answer)),
                _ => {}
            }
            Ok(())
        });
        let left = run(&worker, 1, (0..3).collect(), &mut coordinator);
        assert!(left.expect("no error").is_empty());
        assert_eq!(answered, [(0, Some(0)), (1, None), (2, Some(20))]);
    }

    #[test]
    fn one_threads_messages_arrive_in_the_order_it_sent_them() {
        let worker = worker(|job, link| {
            for index in 0..200 {
                link.send(Message::Sequence(job, index));
            }
            AfterJob::TakeNext
        });
        let mut next = [0; 4];
        let mut coordinator = coordinator(|message| {
            if let Message::Sequence(job, index) = message {
                assert_eq!(index, next[job], "job {job}");
                next[job] += 1;
            }
            Ok(())
        });
        let left = run(&worker, 4, (0..4).collect(), &mut coordinator);
        assert!(left.expect("no error").is_empty());
        assert_eq!(next, [200; 4]);
    }

    #[test]
    fn a_panicking_thread_panics_the_pool_after_its_messages_are_handled() {
        let worker = worker(|job, link| {
            link.send(Message::Done(job));
            assert!(job == 0, "job {job} panics");
            AfterJob::TakeNext
        });
        let mut done = Vec::new();
        let mut coordinator = coordinator(note_done(&mut done));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&worker, 1, (0..3).collect(), &mut coordinator)
        }));
        drop(coordinator);
        assert!(outcome.is_err());
        assert_eq!(done, [0, 1], "job 2 is not taken");
    }
}
