//! W3C trace context between the OpenTelemetry context of a span and the
//! metadata of a message (`traceparent`, and the `tracestate` header).
//! Behind the `opentelemetry` feature.

use std::str::FromStr;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::envelope::Metadata;

/// The header that carries the W3C `tracestate` beside the `traceparent`.
pub const TRACESTATE_HEADER: &str = "tracestate";

/// Writes the context of `span` into the metadata; false when the span has
/// none (no OpenTelemetry layer listens).
pub(crate) fn inject(span: &Span, metadata: &mut Metadata) -> bool {
    let cx = span.context();
    let span = cx.span();
    let context = span.span_context();
    if !context.is_valid() {
        return false;
    }
    metadata.traceparent = Some(traceparent(context));
    let state = context.trace_state().header();
    if !state.is_empty() {
        metadata.headers.insert(TRACESTATE_HEADER.to_owned(), state);
    }
    true
}

/// Makes the producer's context (from the metadata) the parent of `span`.
pub(crate) fn adopt(span: &Span, metadata: &Metadata) {
    if let Some(remote) = remote_context(metadata) {
        // Fails only when no OpenTelemetry layer listens: nothing to do.
        let _ = span.set_parent(Context::new().with_remote_span_context(remote));
    }
}

/// Links `span` to the producer's context of a message.
pub(crate) fn link(span: &Span, metadata: &Metadata) {
    if let Some(remote) = remote_context(metadata) {
        span.add_link(remote);
    }
}

/// The producer's span context a message carries, if it carries a valid
/// one.
pub fn remote_context(metadata: &Metadata) -> Option<SpanContext> {
    parse(
        metadata.traceparent.as_deref()?,
        metadata.headers.get(TRACESTATE_HEADER).map(String::as_str),
    )
}

/// Continues the trace of the message that caused this send
/// (`Producer::caused_by`) when the send has no span of its own to follow
/// (it runs outside any traced span).
pub(crate) fn continue_cause(span: &Span, cause_traceparent: &str) {
    let current = Span::current().context();
    if current.span().span_context().is_valid() {
        return;
    }
    if let Some(cause) = parse(cause_traceparent, None) {
        let _ = span.set_parent(Context::new().with_remote_span_context(cause));
    }
}

fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let (trace_id, span_id, flags) = parse_traceparent(traceparent)?;
    let state = tracestate
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    Some(SpanContext::new(trace_id, span_id, flags, true, state))
}

fn traceparent(context: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}

/// `{version}-{trace-id}-{parent-id}-{flags}`, after W3C Trace Context:
/// version `00` has exactly these four fields; a later version may add
/// more, which are ignored; `ff` is invalid, as are all-zero ids.
fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let mut parts = value.split('-');
    let version = parts.next()?;
    let (trace_id, span_id, flags) = (parts.next()?, parts.next()?, parts.next()?);
    let lower_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !lower_hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if !lower_hex(trace_id, 32) || !lower_hex(span_id, 16) || !lower_hex(flags, 2) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id = SpanId::from_hex(span_id).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace_id, span_id, TraceFlags::new(flags)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_read() {
        let (trace, span, flags) = parse_traceparent(VALID).expect("valid");
        assert_eq!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span.to_string(), "00f067aa0ba902b7");
        assert!(flags.is_sampled());
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?} was accepted");
        }
        // A later version may carry more fields.
        assert!(parse_traceparent(&format!("cc{}-more", &VALID[2..])).is_some());
    }

    #[test]
    fn the_written_form_reads_back() {
        let (trace, span, flags) = parse_traceparent(VALID).unwrap();
        let context = SpanContext::new(trace, span, flags, false, TraceState::default());
        assert_eq!(traceparent(&context), VALID);
    }
}
