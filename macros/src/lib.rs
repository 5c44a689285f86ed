//! The `#[event_contract]` attribute of
//! [event-backbone](https://docs.rs/event-backbone). Use it through the
//! facade crate (`event_backbone::event_contract`), whose documentation has
//! the examples.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod model;
mod options;
mod parse;
mod render;

use proc_macro::TokenStream;

/// Turns a trait into an event contract.
///
/// ```text
/// #[event_contract]
/// pub trait ShipmentTracking {
///     /// An order was placed.
///     async fn order_placed(&self, #[personal] email: String, product_id: u64);
///     #[event(version = 1)]
///     async fn packing(&self, product_id: u64);
/// }
/// ```
///
/// generates `ShipmentTracking` (the contract's description),
/// `ShipmentTrackingProducer` (one async method per event),
/// `ShipmentTrackingConsumer` (one handler per event, `&ConsumerContext`
/// first), `ShipmentTrackingHandler` (the dispatch glue to subscribe) and
/// `ShipmentTrackingEvent` (the events as an enum, for typed replay).
///
/// Contract options: `crate = path` (default `::event_backbone`),
/// `min_version = N`, `rename_all = "PascalCase"` (operation names),
/// `event_derive(Debug, Clone, ...)` (derives of the event enum, default
/// `Debug`). Method options: `#[event(name = "...", version = N,
/// deprecated)]`. Parameter options: `#[personal]`,
/// `#[segment(name = "...", class = "...")]`.
#[proc_macro_attribute]
pub fn event_contract(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let item = proc_macro2::TokenStream::from(item);
    match parse::contract(args, item) {
        Ok(contract) => render::contract(&contract).into(),
        Err(error) => error.to_compile_error().into(),
    }
}
