//! The tower service behind the layers that look at each request on its way to the app (live
//! reload, static files): a layer's rules say which requests it answers itself, which it
//! passes on untouched and which it passes on to rework the response; this service carries
//! the decision out.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use super::response::ResponseBody;

pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

/// What happens to the response of a request passed on.
pub type Rework = Box<dyn FnOnce(Response<ResponseBody>) -> ResponseFuture + Send>;

pub enum Decision<B> {
    /// Not this layer's request: the inner service gets it untouched.
    Pass(Request<B>),
    /// Answered here: the inner service never sees the request.
    Answer(ResponseFuture),
    /// The inner service answers, then the response goes through the rework.
    PassThen(Request<B>, Rework),
}

impl<B> Decision<B> {
    /// An answer that is ready now.
    pub fn respond(response: Response<ResponseBody>) -> Self {
        Decision::Answer(Box::pin(std::future::ready(Ok(response))))
    }
}

/// A layer's rules: one decision per request.
pub trait Intercept {
    fn decide<B>(&self, req: Request<B>) -> Decision<B>;
}

#[derive(Clone)]
pub struct Intercepting<S, I> {
    inner: S,
    rules: I,
}

impl<S, I> Intercepting<S, I> {
    pub fn new(inner: S, rules: I) -> Self {
        Self { inner, rules }
    }
}

impl<S, I, B> Service<Request<B>> for Intercepting<S, I>
where
    S: Service<Request<B>, Response = Response<ResponseBody>, Error = Infallible>,
    S::Future: Send + 'static,
    I: Intercept,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture {
        match self.rules.decide(req) {
            Decision::Pass(req) => Box::pin(self.inner.call(req)),
            Decision::Answer(answer) => answer,
            Decision::PassThen(req, rework) => {
                let response = self.inner.call(req);
                Box::pin(async move { rework(response.await?).await })
            }
        }
    }
}
