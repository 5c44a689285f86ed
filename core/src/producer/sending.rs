//! The futures of a send, written by hand: a message's send and its send
//! to one target. An `async` block keeps every local it ever held and a
//! copy of each value moved out of its captures, so a send's future was
//! about 2 KB; callers move it, and most allocate it (a task, a
//! `FuturesUnordered` slot) once per message, out of the allocator's small
//! caches. These hold only what the send still needs: the message until
//! the first poll, then the job until it is queued, then the reply.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use futures_util::future::{BoxFuture, JoinAll};
use tokio::sync::{mpsc, oneshot};
use tracing::Span;

use super::batcher::{Job, Prepared};
use super::outgoing::OutgoingMessage;
use super::receipt::{Receipt, SentEntry};
use super::target::{Preparing, Target};
use crate::channel::EntryId;
use crate::envelope::MessageId;
use crate::{Error, Result};

/// One message's send to one target, from its job to its entry id; the
/// outcome is recorded on its span and in the metrics when it ends.
pub(crate) struct TargetSend<'a> {
    target: &'a Target,
    /// Made at the first poll.
    span: Span,
    started: Option<Instant>,
    state: State<'a>,
}

enum State<'a> {
    /// Not polled yet.
    Unpolled {
        message_id: MessageId,
        message: OutgoingMessage,
        cause_traceparent: Option<&'a str>,
    },
    /// The job (or why it could not be made).
    Ready(Result<Prepared>),
    /// The job, still going through interceptors and sealing.
    Preparing(BoxFuture<'a, Result<Prepared>>),
    /// The queue was full: waiting for a slot.
    Queueing(
        BoxFuture<'a, Result<()>>,
        oneshot::Receiver<Result<EntryId>>,
    ),
    /// Queued: waiting for the batch.
    Queued(oneshot::Receiver<Result<EntryId>>),
    Done,
}

impl<'a> TargetSend<'a> {
    /// Sends one message to `target` under its `send` span, where its
    /// outcome is recorded too (span and metrics). `cause_traceparent` is
    /// the trace context of the message that caused it
    /// ([`super::Producer::caused_by`]), used when the message sets none
    /// and no OpenTelemetry span is current.
    ///
    /// Nothing happens before the first poll: then the span is made (a
    /// child of the span current there) and the message's job with it
    /// ([`Target::start`]).
    pub(crate) fn new(
        target: &'a Target,
        message_id: MessageId,
        message: OutgoingMessage,
        cause_traceparent: Option<&'a str>,
    ) -> Self {
        Self {
            target,
            span: Span::none(),
            started: None,
            state: State::Unpolled {
                message_id,
                message,
                cause_traceparent,
            },
        }
    }

    /// Queues the job: a free slot at once; when the queue is full, the
    /// wait for one holds the job, boxed.
    fn queue(&self, job: Prepared) -> Result<State<'a>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            job,
            reply,
            span: self.span.clone(),
        };
        let target = self.target;
        match target.queue().try_send(job) {
            Ok(()) => Ok(State::Queued(answer)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(target.closed()),
            Err(mpsc::error::TrySendError::Full(job)) => {
                let waiting = Box::pin(async move {
                    let slot = target
                        .queue()
                        .reserve()
                        .await
                        .map_err(|_| target.closed())?;
                    slot.send(job);
                    Ok(())
                });
                Ok(State::Queueing(waiting, answer))
            }
        }
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Poll<Result<SentEntry>> {
        loop {
            // The waiting states are polled in place: nothing moves while
            // they wait.
            match &mut self.state {
                State::Queued(answer) => {
                    let answer = ready!(Pin::new(answer).poll(cx));
                    self.state = State::Done;
                    return Poll::Ready(match answer {
                        Ok(Ok(entry_id)) => Ok(SentEntry {
                            stream: self.target.stream(),
                            entry_id,
                        }),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(self.target.closed()),
                    });
                }
                State::Preparing(job) => {
                    let job = ready!(job.as_mut().poll(cx));
                    self.state = State::Ready(job);
                    continue;
                }
                State::Queueing(waiting, _) => {
                    let queued = ready!(waiting.as_mut().poll(cx));
                    self.state = match (queued, std::mem::replace(&mut self.state, State::Done)) {
                        (Ok(()), State::Queueing(_, answer)) => State::Queued(answer),
                        (Err(e), _) => return Poll::Ready(Err(e)),
                        (Ok(()), other) => other,
                    };
                    continue;
                }
                _ => {}
            }
            // The steps that move the state on.
            self.state = match std::mem::replace(&mut self.state, State::Done) {
                State::Unpolled {
                    message_id,
                    message,
                    cause_traceparent,
                } => {
                    self.started = Some(Instant::now());
                    let (span, preparing) =
                        self.target.start(message_id, message, cause_traceparent);
                    self.span = span;
                    match preparing {
                        Preparing::Ready(job) => State::Ready(job),
                        Preparing::Hooks(job) => State::Preparing(job),
                    }
                }
                State::Ready(Ok(job)) => match self.queue(job) {
                    Ok(next) => next,
                    Err(e) => return Poll::Ready(Err(e)),
                },
                State::Ready(Err(e)) => return Poll::Ready(Err(e)),
                State::Done => panic!("a send's future was polled after it completed"),
                waiting => waiting,
            };
        }
    }
}

impl Future for TargetSend<'_> {
    type Output = Result<SentEntry>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let sent = match this.step(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(sent) => sent,
        };
        let started = this.started.unwrap_or_else(Instant::now);
        this.target.sent(&this.span, started, &sent);
        Poll::Ready(sent)
    }
}

/// A message's send: to one target, or to several (fan-out) with one
/// message id; or refused before anything was made.
pub(crate) struct MessageSend<'a> {
    message_id: MessageId,
    sends: Sends<'a>,
}

// The one-target send is the common case: boxing it would allocate per
// message, which is what these futures are for avoiding.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Sends<'a> {
    Refused(Option<Error>),
    One(TargetSend<'a>),
    Many(JoinAll<TargetSend<'a>>),
}

impl<'a> MessageSend<'a> {
    pub(crate) fn new(message_id: MessageId, sends: Sends<'a>) -> Self {
        Self { message_id, sends }
    }
}

impl Future for MessageSend<'_> {
    type Output = Result<Receipt>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let message_id = self.message_id;
        let entries = match &mut self.sends {
            Sends::Refused(e) => {
                return Poll::Ready(Err(e.take().unwrap_or_else(|| {
                    Error::config("producer", "a refused send's future was polled again")
                })))
            }
            Sends::One(send) => match Pin::new(send).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(sent) => sent.map(|entry| vec![entry]),
            },
            Sends::Many(sends) => match Pin::new(sends).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(sent) => sent.into_iter().collect(),
            },
        };
        Poll::Ready(entries.map(|entries| Receipt {
            message_id,
            entries,
        }))
    }
}
