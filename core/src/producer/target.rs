//! One destination of a producer: a stream on a channel, with its stores.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{Instrument, Span};

use super::batcher::{self, Destination, Job};
use super::outgoing::OutgoingMessage;
use super::receipt::SentEntry;
use crate::address::StreamAddress;
use crate::channel::{EntryId, StreamChannel};
use crate::clock::now_ms;
use crate::codec::Codec;
use crate::envelope::{MessageId, Metadata, SegmentClass, SegmentLocation, SegmentRef, Segments};
use crate::interceptor::ProducerInterceptor;
use crate::privacy::sealing::seal_message;
use crate::privacy::{PersonalData, Subject, SUBJECT_HEADER};
use crate::retry::RetryPolicy;
use crate::store::{Fields, KeyValueStore, PutItem};
use crate::store_set::StoreSet;
use crate::telemetry::instruments::ProducerMetrics;
use crate::telemetry::spans;
use crate::transaction::Transaction;
use crate::{Error, Result};

pub(crate) struct Target {
    /// Where the batching task writes.
    destination: Arc<Destination>,
    pub(crate) address: StreamAddress,
    codec: Codec,
    interceptors: Vec<Arc<dyn ProducerInterceptor>>,
    payload_ttl: Option<Duration>,
    personal: Option<PersonalData>,
    queue: OnceLock<mpsc::Sender<Job>>,
}

impl Target {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        channel: Arc<dyn StreamChannel>,
        stores: StoreSet,
        address: StreamAddress,
        codec: Codec,
        retry: RetryPolicy,
        interceptors: Vec<Arc<dyn ProducerInterceptor>>,
        payload_ttl: Option<Duration>,
        max_batch: usize,
        personal: Option<PersonalData>,
    ) -> Self {
        Self {
            destination: Arc::new(Destination {
                metrics: ProducerMetrics::new(channel.backend(), address.stream_key()),
                channel,
                stores,
                stream: address.stream_key().into(),
                send_span: spans::name("send", address.stream_key()),
                retry,
                max_batch: max_batch.max(1),
            }),
            address,
            codec,
            interceptors,
            payload_ttl,
            personal,
            queue: OnceLock::new(),
        }
    }

    /// The same settings at another address, with a batching task of its own.
    pub(crate) fn readdressed(&self, address: StreamAddress) -> Self {
        let d = &self.destination;
        Self::new(
            d.channel.clone(),
            d.stores.clone(),
            address,
            self.codec,
            d.retry.clone(),
            self.interceptors.clone(),
            self.payload_ttl,
            d.max_batch,
            self.personal.clone(),
        )
    }

    /// The `send` span of one message to this target.
    fn span(&self) -> Span {
        spans::send(&self.destination.send_span)
    }

    /// Records a send's outcome on its span and in the metrics.
    pub(crate) fn sent(&self, span: &Span, started: Instant, sent: &Result<SentEntry>) {
        let error = sent.as_ref().err().map(Error::kind);
        if let Some(kind) = error {
            spans::fail(span, kind);
        }
        self.destination.metrics.sent(started.elapsed(), error);
    }

    /// What the first poll of a send does: its span, and its job or the
    /// boxed future that makes it.
    pub(crate) fn start(
        &self,
        message_id: MessageId,
        message: OutgoingMessage,
        cause_traceparent: Option<&str>,
    ) -> (Span, Preparing<'_>) {
        let span = self.span();
        if self.interceptors.is_empty() && self.personal.is_none() && message.subject.is_none() {
            let job = self.prepare_plain(message_id, message, cause_traceparent, &span);
            (span, Preparing::Ready(job))
        } else {
            let job = Box::pin(self.prepare_with_hooks(
                message_id,
                message,
                cause_traceparent.map(str::to_owned),
                span.clone(),
            ));
            (span, Preparing::Hooks(job))
        }
    }

    /// The job of a message with no interceptor and no personal data.
    fn prepare_plain(
        &self,
        message_id: MessageId,
        message: OutgoingMessage,
        cause_traceparent: Option<&str>,
        span: &Span,
    ) -> Result<batcher::Prepared> {
        let (mut metadata, segments, _) = self.begin(message_id, message, cause_traceparent, span);
        self.check_routes(&metadata, &segments)?;
        metadata.subject = None;
        check_subject_header(&metadata)?;
        Ok(self.place(metadata, segments))
    }

    /// The job of a message through the interceptors and the sealing of
    /// personal data, under the message's span.
    async fn prepare_with_hooks(
        &self,
        message_id: MessageId,
        message: OutgoingMessage,
        cause_traceparent: Option<String>,
        span: Span,
    ) -> Result<batcher::Prepared> {
        let (mut metadata, mut segments, subject) =
            self.begin(message_id, message, cause_traceparent.as_deref(), &span);
        if !self.interceptors.is_empty() {
            self.intercept(&mut metadata, &mut segments)
                .instrument(span.clone())
                .await?;
        }
        self.check_routes(&metadata, &segments)?;
        // The subject is the producer's to set, from the message's own.
        metadata.subject = None;
        if subject.is_some() || self.personal.is_some() {
            seal_message(
                self.personal.as_ref(),
                subject.as_ref(),
                &mut metadata,
                &mut segments,
            )
            .instrument(span)
            .await?;
        } else {
            check_subject_header(&metadata)?;
        }
        Ok(self.place(metadata, segments))
    }

    /// The message's metadata and segments (its subject apart), with its
    /// trace context.
    fn begin(
        &self,
        message_id: MessageId,
        mut message: OutgoingMessage,
        cause_traceparent: Option<&str>,
        span: &Span,
    ) -> (Metadata, Segments, Option<Subject>) {
        let subject = message.subject.take();
        let (mut metadata, segments) = self.envelope(message_id, message);
        // Whether the sampler keeps the span, when writing its context
        // asked it.
        let written = if metadata.traceparent.is_some() {
            None
        } else {
            #[cfg(feature = "opentelemetry")]
            let written = {
                use crate::telemetry::trace_context;
                if let (Some(cause), false) = (cause_traceparent, span.is_disabled()) {
                    trace_context::continue_cause(span, cause);
                }
                trace_context::inject(span, &mut metadata)
            };
            #[cfg(not(feature = "opentelemetry"))]
            let written = None;
            if written.is_none() {
                metadata.traceparent = cause_traceparent.map(str::to_owned);
            }
            written
        };
        if written.unwrap_or_else(|| spans::kept(span)) {
            let destination = &self.destination;
            spans::describe_send(
                span,
                destination.channel.backend(),
                &destination.stream,
                &metadata,
            );
        }
        (metadata, segments, subject)
    }

    /// Refuses a segment of a class no store takes (other than `normal`):
    /// inline, it would be in the append-only stream for good.
    fn check_routes(&self, metadata: &Metadata, segments: &Segments) -> Result<()> {
        match segments.iter().find(|(_, s)| {
            s.class != SegmentClass::NORMAL
                && self.destination.stores.route_class(&s.class).is_none()
        }) {
            Some((name, segment)) => Err(Error::PersonalDataInline {
                operation: metadata.operation.clone(),
                segment: name.to_owned(),
                class: segment.class.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// The stream's key, shared.
    pub(crate) fn stream(&self) -> std::sync::Arc<str> {
        self.destination.stream.clone()
    }

    /// Sends one message inside a caller's transaction (the outbox): made
    /// as a send makes it, then written by `tx` rather than queued for a
    /// batch; under its `send` span, recorded in the metrics.
    pub(crate) async fn send_in(
        &self,
        tx: &mut dyn Transaction,
        message_id: MessageId,
        message: OutgoingMessage,
        cause_traceparent: Option<&str>,
    ) -> Result<SentEntry> {
        let started = Instant::now();
        let (span, preparing) = self.start(message_id, message, cause_traceparent);
        let job = match preparing {
            Preparing::Ready(job) => job,
            Preparing::Hooks(job) => job.await,
        };
        let sent = match job {
            Ok(job) => self.write_in(tx, job).instrument(span.clone()).await,
            Err(e) => Err(e),
        };
        self.sent(&span, started, &sent);
        sent
    }

    async fn write_in(
        &self,
        tx: &mut dyn Transaction,
        job: batcher::Prepared,
    ) -> Result<SentEntry> {
        let d = &self.destination;
        let mut per_store: Vec<Vec<PutItem>> = vec![Vec::new(); d.stores.len()];
        for (idx, item) in job.puts {
            per_store[idx].push(item);
        }
        let payloads: Vec<(&dyn KeyValueStore, Vec<PutItem>)> = per_store
            .into_iter()
            .enumerate()
            .filter(|(_, items)| !items.is_empty())
            .map(|(idx, items)| (d.stores.store(idx).as_ref(), items))
            .collect();
        let ids = tx
            .store_and_append(
                d.channel.as_ref(),
                &d.stream,
                &payloads,
                std::slice::from_ref(&job.metadata),
            )
            .await?;
        match <[EntryId; 1]>::try_from(ids) {
            Ok([entry_id]) => Ok(SentEntry {
                stream: self.stream(),
                entry_id,
            }),
            Err(ids) => Err(Error::permanent(
                d.channel.backend(),
                format!("writing to stream {:?} in a transaction", &*d.stream),
                format!("{} entry ids returned for 1 entry", ids.len()),
            )),
        }
    }

    /// Writes messages as they are (their ids, origins and payload keys),
    /// their payloads routed by class as a send routes them, with this
    /// target's payload TTL and backend retry: the outbox relay's step.
    pub(crate) async fn forward(
        &self,
        batch: &[Metadata],
        payloads: Vec<(SegmentClass, PutItem)>,
    ) -> Result<Vec<EntryId>> {
        let d = &self.destination;
        let mut per_store: Vec<Vec<PutItem>> = vec![Vec::new(); d.stores.len()];
        for (class, mut item) in payloads {
            item.ttl = self.payload_ttl;
            match d.stores.route_class(&class) {
                Some((idx, _)) => per_store[idx].push(item),
                None => {
                    return Err(Error::config(
                        "outbox relay",
                        format!(
                            "the producer of stream {:?} has no store for segment class {:?}: \
                             give it one (store or class_store)",
                            &*d.stream,
                            class.as_str()
                        ),
                    ))
                }
            }
        }
        let payloads: Vec<(&dyn KeyValueStore, Vec<PutItem>)> = per_store
            .into_iter()
            .enumerate()
            .filter(|(_, items)| !items.is_empty())
            .map(|(idx, items)| (d.stores.store(idx).as_ref(), items))
            .collect();
        d.retry
            .run("relaying to the stream", || {
                d.channel.store_and_append(&d.stream, &payloads, batch)
            })
            .await
    }

    /// The error of a send that found the batching task gone.
    pub(crate) fn closed(&self) -> Error {
        Error::Closed {
            stream: self.address.stream_key().to_owned(),
        }
    }

    pub(crate) fn queue(&self) -> &mpsc::Sender<Job> {
        self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(self.destination.max_batch * 4);
            // The task holds a weak reference: it ends when the last clone of
            // the producer is dropped and the queue is drained.
            tokio::spawn(batcher::run(Arc::downgrade(&self.destination), rx));
            tx
        })
    }

    /// The metadata of one message, before interceptors and placement.
    fn envelope(&self, message_id: MessageId, message: OutgoingMessage) -> (Metadata, Segments) {
        let OutgoingMessage {
            operation,
            version,
            segments,
            origin,
            correlation_id,
            causation_id,
            traceparent,
            headers,
            ..
        } = message;
        let metadata = Metadata {
            message_id,
            operation,
            version,
            uri: self.address.uri().to_owned(),
            environment: self.address.environment().map(str::to_owned),
            produced_at_ms: now_ms(),
            origin,
            content_type: self.codec.content_type().to_owned(),
            correlation_id,
            causation_id,
            traceparent,
            headers,
            segments: Vec::with_capacity(segments.len()),
            subject: None,
        };
        (metadata, segments)
    }

    async fn intercept(&self, metadata: &mut Metadata, segments: &mut Segments) -> Result<()> {
        for interceptor in &self.interceptors {
            interceptor
                .on_send(metadata, segments)
                .await
                .map_err(|source| Error::Interceptor {
                    interceptor: interceptor.name().to_owned(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Routes each segment: into the payload of its class (one key per
    /// class, in the store routed for that class), or inline when no store
    /// takes it. Each class is routed once per message.
    fn place(&self, mut metadata: Metadata, segments: Segments) -> batcher::Prepared {
        // A message has one or two classes: one write, usually.
        let mut puts: Vec<(usize, PutItem)> = Vec::with_capacity(1);
        // (class, index in puts, or None: inline).
        let mut classes: Classes = Classes::default();
        for (name, segment) in segments {
            let slot =
                match classes.find(&segment.class) {
                    Some(slot) => slot,
                    None => {
                        let slot = self.destination.stores.route_class(&segment.class).map(
                            |(store, _)| {
                                let key = self.address.payload_key(
                                    &metadata.operation,
                                    metadata.version,
                                    &segment.class,
                                    &metadata.message_id,
                                );
                                puts.push((
                                    store,
                                    PutItem {
                                        key,
                                        fields: Fields::new(),
                                        ttl: self.payload_ttl,
                                    },
                                ));
                                puts.len() - 1
                            },
                        );
                        classes.add(&segment.class, slot);
                        slot
                    }
                };
            let location = match slot {
                Some(slot) => {
                    puts[slot].1.fields.insert(name.clone(), segment.data);
                    SegmentLocation::Standard
                }
                None => SegmentLocation::Inline(segment.data),
            };
            metadata.segments.push(SegmentRef {
                name,
                class: segment.class,
                location,
            });
        }
        batcher::Prepared { metadata, puts }
    }
}

/// The classes of one message met so far and where their segments go (an
/// index in its writes, or `None`: inline): the first without an
/// allocation.
#[derive(Default)]
struct Classes {
    first: Option<(SegmentClass, Option<usize>)>,
    more: Vec<(SegmentClass, Option<usize>)>,
}

impl Classes {
    fn find(&self, class: &SegmentClass) -> Option<Option<usize>> {
        self.first
            .iter()
            .chain(&self.more)
            .find(|(c, _)| c == class)
            .map(|(_, slot)| *slot)
    }

    fn add(&mut self, class: &SegmentClass, slot: Option<usize>) {
        if self.first.is_none() {
            self.first = Some((class.clone(), slot));
        } else {
            self.more.push((class.clone(), slot));
        }
    }
}

/// A send's job, made at its first poll (or why it could not be), or still
/// to make through interceptors and sealing.
// A ready job is the common case: boxing it would allocate per message.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Preparing<'a> {
    Ready(Result<batcher::Prepared>),
    Hooks(futures_util::future::BoxFuture<'a, Result<batcher::Prepared>>),
}

/// The data subject is a field of the metadata; the header that carried it
/// in wire format 1 is refused on a message with no subject.
fn check_subject_header(metadata: &Metadata) -> Result<()> {
    if metadata.headers.contains_key(SUBJECT_HEADER) {
        return Err(Error::ReservedHeader {
            header: SUBJECT_HEADER,
            operation: metadata.operation.clone(),
        });
    }
    Ok(())
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("stream", &self.address.stream_key())
            .field("channel", &self.destination.channel.backend())
            .field("stores", &self.destination.stores)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}
