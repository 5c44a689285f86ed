//! W3C trace context between the OpenTelemetry context of a span and the
//! metadata of a message (`traceparent`, and the `tracestate` header).
//! Behind the `opentelemetry` feature.

use std::str::FromStr;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetrySpanExt, SetParentError};

use crate::envelope::Metadata;
use crate::hex::push_hex;

/// The header that carries the W3C `tracestate` beside the `traceparent`.
pub const TRACESTATE_HEADER: &str = "tracestate";

/// Writes the context of `span` into the metadata, and says whether its
/// sampler keeps the span recording; `None` when the span has no context (no
/// OpenTelemetry layer listens), and nothing is written.
pub(crate) fn inject(span: &Span, metadata: &mut Metadata) -> Option<bool> {
    let cx = span.context();
    let span = cx.span();
    let context = span.span_context();
    if !context.is_valid() {
        return None;
    }
    metadata.traceparent = Some(traceparent(context));
    let state = context.trace_state().header();
    if !state.is_empty() {
        metadata.headers.insert(TRACESTATE_HEADER.to_owned(), state);
    }
    Some(span.is_recording())
}

/// Whether an OpenTelemetry sampler keeps `span` recording, or none
/// decides (no OpenTelemetry layer listens to it). Makes the sampler decide
/// now, with the parent the span has.
pub(crate) fn recording_or_untraced(span: &Span) -> bool {
    let cx = span.context();
    let span = cx.span();
    !span.span_context().is_valid() || span.is_recording()
}

/// Sets the parent of a span not yet started (a started span keeps its
/// own: that would be a bug here, the parent set after the sampler ran).
fn set_parent(span: &Span, parent: SpanContext) {
    let set = span.set_parent(Context::new().with_remote_span_context(parent));
    debug_assert!(
        !matches!(set, Err(SetParentError::AlreadyStarted)),
        "a span's parent set after it started"
    );
    // Any other error: no OpenTelemetry layer listens, nothing to do.
}

/// Makes the producer's context (from the metadata) the parent of `span`.
pub(crate) fn adopt(span: &Span, metadata: &Metadata) {
    if let Some(remote) = remote_context(metadata) {
        set_parent(span, remote);
    }
}

/// Links `span` to the producer's context of a message, if its producer's
/// span was sampled (a link to a span never exported leads nowhere).
pub(crate) fn link(span: &Span, metadata: &Metadata) {
    if let Some(remote) = remote_context(metadata).filter(SpanContext::is_sampled) {
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
        set_parent(span, cause);
    }
}

fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let (trace_id, span_id, flags) = parse_traceparent(traceparent)?;
    let state = tracestate
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    Some(SpanContext::new(trace_id, span_id, flags, true, state))
}

/// `00-{trace-id}-{span-id}-{flags}`, in lower-case hex.
fn traceparent(context: &SpanContext) -> String {
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    push_hex(&mut out, &context.trace_id().to_bytes());
    out.push('-');
    push_hex(&mut out, &context.span_id().to_bytes());
    out.push('-');
    push_hex(&mut out, &[context.trace_flags().to_u8()]);
    out
}

/// `{version}-{trace-id}-{parent-id}-{flags}`, after W3C Trace Context:
/// version `00` has exactly these four fields; a later version may add
/// more, which are ignored; `ff` is invalid, as are all-zero ids. Read by
/// position (a message's context is read once per delivery).
fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let text = value.as_bytes();
    if text.len() < 55 || text[2] != b'-' || text[35] != b'-' || text[52] != b'-' {
        return None;
    }
    let mut version = [0u8; 1];
    lower_hex(&text[..2], &mut version)?;
    let more = text.len() > 55;
    if version[0] == 0xff || (more && (version[0] == 0 || text[55] != b'-')) {
        return None;
    }
    let (mut trace_id, mut span_id, mut flags) = ([0u8; 16], [0u8; 8], [0u8; 1]);
    lower_hex(&text[3..35], &mut trace_id)?;
    lower_hex(&text[36..52], &mut span_id)?;
    lower_hex(&text[53..55], &mut flags)?;
    let (trace_id, span_id) = (TraceId::from_bytes(trace_id), SpanId::from_bytes(span_id));
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some((trace_id, span_id, TraceFlags::new(flags[0])))
}

/// Decodes lower-case hex (as W3C Trace Context writes it) into `out`.
fn lower_hex(text: &[u8], out: &mut [u8]) -> Option<()> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(())
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
