//! [`Submitted`]: a commit on its way, awaited by async callers or waited for by threads.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::{Committed, Error};

/// What the committer hears back.
pub(crate) type Reply = Result<Committed, Error>;

/// A batch handed to [`crate::Store::submit`]: await it (its task sleeps until the batch is
/// durable, no thread is held) or [`Submitted::wait`] for it on a thread.
#[must_use = "a submitted batch is durable only once its answer has arrived"]
pub struct Submitted(State);

enum State {
    Ready(Option<Reply>),
    Waiting(Arc<Slot>),
}

impl Submitted {
    /// An answer already known (a store that commits on the caller's thread).
    pub fn ready(reply: Reply) -> Self {
        Self(State::Ready(Some(reply)))
    }

    /// A batch whose answer comes through `slot`.
    pub(crate) fn waiting(slot: Arc<Slot>) -> Self {
        Self(State::Waiting(slot))
    }

    /// Blocks the calling thread until the answer arrives.
    pub fn wait(self) -> Reply {
        match self.0 {
            State::Ready(reply) => reply.unwrap_or(Err(Error::Closed)),
            State::Waiting(slot) => slot.wait(),
        }
    }
}

impl Future for Submitted {
    type Output = Reply;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        match &mut self.get_mut().0 {
            State::Ready(reply) => Poll::Ready(reply.take().unwrap_or(Err(Error::Closed))),
            State::Waiting(slot) => slot.poll(cx),
        }
    }
}

/// Where one answer waits: a thread sleeps on the condition variable (in the kernel at once;
/// std's channels spin with `sched_yield` first), a task leaves its waker.
#[derive(Default)]
pub(crate) struct Slot {
    state: Mutex<Inner>,
    ready: Condvar,
}

#[derive(Default)]
struct Inner {
    answer: Option<Reply>,
    /// The answer was taken (a future polled after completion gets `Closed`).
    taken: bool,
    waker: Option<Waker>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait(&self) -> Reply {
        let mut inner = self.lock();
        loop {
            if let Some(reply) = inner.answer.take() {
                inner.taken = true;
                return reply;
            }
            inner = self
                .ready
                .wait(inner)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<Reply> {
        let mut inner = self.lock();
        if let Some(reply) = inner.answer.take() {
            inner.taken = true;
            return Poll::Ready(reply);
        }
        if inner.taken {
            return Poll::Ready(Err(Error::Closed));
        }
        match &inner.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => inner.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn deliver(&self, reply: Reply) {
        let waker = {
            let mut inner = self.lock();
            inner.answer = Some(reply);
            inner.waker.take()
        };
        self.ready.notify_one();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The committer's end of a [`Slot`]; dropped unanswered (the writer panicked or stopped), it
/// answers [`Error::Closed`].
pub(crate) struct Replier(Option<Arc<Slot>>);

impl Replier {
    pub(crate) fn new(slot: &Arc<Slot>) -> Self {
        Self(Some(Arc::clone(slot)))
    }

    pub(crate) fn send(mut self, reply: Reply) {
        if let Some(slot) = self.0.take() {
            slot.deliver(reply);
        }
    }
}

impl Drop for Replier {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            slot.deliver(Err(Error::Closed));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn committed(key: &[u8]) -> Reply {
        Ok(Committed {
            appended: vec![key.to_vec()],
        })
    }

    #[test]
    fn an_answer_wakes_the_task_that_awaits_it() {
        let slot = Arc::new(Slot::default());
        let mut submitted = Submitted::waiting(Arc::clone(&slot));
        let counting = Arc::new(Counting::default());
        let waker = Waker::from(Arc::clone(&counting));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut submitted).poll(&mut cx).is_pending());
        assert_eq!(counting.0.load(Ordering::SeqCst), 0);
        Replier::new(&slot).send(committed(b"k"));
        assert_eq!(counting.0.load(Ordering::SeqCst), 1);
        match Pin::new(&mut submitted).poll(&mut cx) {
            Poll::Ready(Ok(done)) => assert_eq!(done.appended, [b"k".to_vec()]),
            other => panic!("{:?}", other.map(|r| r.map(|c| c.appended))),
        }
        // Polled again after its answer: closed, never a second answer or a hang.
        assert!(matches!(
            Pin::new(&mut submitted).poll(&mut cx),
            Poll::Ready(Err(Error::Closed))
        ));
    }

    #[test]
    fn a_thread_waits_for_an_answer_sent_from_another() {
        let slot = Arc::new(Slot::default());
        let submitted = Submitted::waiting(Arc::clone(&slot));
        let replier = Replier::new(&slot);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            replier.send(committed(b"t"));
        });
        assert_eq!(submitted.wait().unwrap().appended, [b"t".to_vec()]);
        sender.join().unwrap();
    }

    #[test]
    fn a_request_dropped_unanswered_answers_closed() {
        let slot = Arc::new(Slot::default());
        let submitted = Submitted::waiting(Arc::clone(&slot));
        drop(Replier::new(&slot));
        assert!(matches!(submitted.wait(), Err(Error::Closed)));
        assert!(matches!(
            Submitted::ready(Err(Error::Closed)).wait(),
            Err(Error::Closed)
        ));
    }
}
