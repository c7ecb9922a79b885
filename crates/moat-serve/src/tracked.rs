//! A response body that keeps its connection busy until it is written.

use crate::connections::Request;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Wraps a response body with the [`Request`] guard of its request: the connection counts
/// as busy (and is never shed) until the body has ended or been dropped, which for a
/// streamed response is long after the handler returned.
pub struct Tracked<B> {
    body: B,
    request: Option<Request>,
}

impl<B> Tracked<B> {
    /// `body`, busy until it ends.
    pub fn new(body: B, request: Request) -> Tracked<B> {
        Tracked {
            body,
            request: Some(request),
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.request = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
