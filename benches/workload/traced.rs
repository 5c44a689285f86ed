//! An OpenTelemetry pipeline as a traced service runs one: a
//! `tracing-opentelemetry` layer over the registry, a sampler, and a batch
//! span processor exporting into memory (emptied by the caller).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

/// The pipeline; dropping it flushes and shuts down its exporter.
pub struct Traced {
    pub dispatch: Dispatch,
    pub spans: InMemorySpanExporter,
    provider: SdkTracerProvider,
}

impl Traced {
    /// Every span recorded and exported.
    pub fn everything() -> Self {
        Self::new(Sampler::AlwaysOn, true)
    }

    /// One trace in ten: the roots sampled by their trace id, the rest
    /// after their parent (what a service sampling at 10 % runs).
    pub fn tenth() -> Self {
        Self::new(Self::one_in_ten(), true)
    }

    /// One trace in ten, the layer keeping no busy and idle times (two
    /// clock reads per enter and exit of a span).
    pub fn tenth_untimed() -> Self {
        Self::new(Self::one_in_ten(), false)
    }

    fn one_in_ten() -> Sampler {
        Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.1)))
    }

    fn new(sampler: Sampler, timings: bool) -> Self {
        let spans = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_batch_exporter(spans.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("bench"))
                .with_tracked_inactivity(timings),
        );
        Self {
            dispatch: Dispatch::new(subscriber),
            spans,
            provider,
        }
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}
