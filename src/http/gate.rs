//! Authentication before bodies: on an authenticated route, nothing of the
//! request but its head is read, parsed or validated until the caller is
//! known to hold the route's scope. A caller with a bad credential learns
//! nothing of how we parse, and costs us no parsing.
//!
//! actix-web resolves a handler's extractors together: a body extractor
//! could answer 400 (or read a slow body) while the credential is still
//! being looked up. So the caller extractors (`extract`) close a `Gate` on
//! the request when their answer is not known at once, and open it when the
//! caller is accepted; the body extractors (`body::Json`, `body::Query`,
//! `body::Bytes`) wait for it to open. A refused caller never opens it: the
//! handler's extractors then fail with the refusal alone. A caller accepted
//! at once (the hot path: a cached user or key) closes nothing and costs
//! nothing; a route with no caller extractor (login) has no gate.
//!
//! The order of a handler's arguments does not matter: a body extractor
//! polled first leaves its waker with the gate, which wakes it on opening.

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use actix_web::{HttpMessage, HttpRequest};

#[derive(Default)]
struct State {
    open: bool,
    waiting: Option<Waker>,
}

/// The request's gate; see the module doc.
#[derive(Clone, Default)]
pub(crate) struct Gate(Rc<RefCell<State>>);

impl Gate {
    /// Closes the gate of `req` until `open` is called on what this returns.
    pub(crate) fn close(req: &HttpRequest) -> Self {
        let gate = Self::default();
        req.extensions_mut().insert(gate.clone());
        gate
    }

    /// Lets the request's bodies be read: its caller is accepted.
    pub(crate) fn open(&self) {
        let mut state = self.0.borrow_mut();
        state.open = true;
        if let Some(waker) = state.waiting.take() {
            waker.wake();
        }
    }

    /// Ready when `req` has no gate, or once its gate is open.
    pub(crate) async fn passed(req: &HttpRequest) {
        let Some(gate) = req.extensions().get::<Self>().cloned() else {
            return;
        };
        poll_fn(|cx| {
            let mut state = gate.0.borrow_mut();
            if state.open {
                Poll::Ready(())
            } else {
                state.waiting = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Wake};

    use actix_web::test::TestRequest;

    use super::*;

    /// A waker that records being woken.
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_request_without_a_gate_passes_at_once() {
        let req = TestRequest::default().to_http_request();
        let mut passed = pin!(Gate::passed(&req));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(passed.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_closed_gate_holds_until_opened_and_wakes_the_waiter() {
        let req = TestRequest::default().to_http_request();
        let gate = Gate::close(&req);
        let woken = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        let mut passed = pin!(Gate::passed(&req));
        assert!(passed.as_mut().poll(&mut cx).is_pending(), "closed");
        assert!(!woken.0.load(Ordering::SeqCst));
        gate.open();
        assert!(woken.0.load(Ordering::SeqCst), "opening wakes the waiter");
        assert!(passed.as_mut().poll(&mut cx).is_ready(), "open");
    }
}
