//! The contract as the macro understands it, after validation.

use syn::{Attribute, Ident, Path, Type, Visibility};

pub(crate) struct Contract {
    pub(crate) vis: Visibility,
    pub(crate) name: Ident,
    pub(crate) docs: Vec<Attribute>,
    pub(crate) krate: Path,
    pub(crate) event_derive: Vec<Path>,
    pub(crate) events: Vec<Event>,
}

pub(crate) struct Event {
    pub(crate) method: Ident,
    pub(crate) operation: String,
    pub(crate) version: u32,
    pub(crate) deprecated: bool,
    pub(crate) docs: Vec<Attribute>,
    pub(crate) params: Vec<Param>,
    /// The parameter marked `#[subject]`, and the field path within it.
    pub(crate) subject: Option<(Ident, Vec<Ident>)>,
}

pub(crate) struct Param {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    pub(crate) segment: String,
    pub(crate) class: String,
}

impl Event {
    /// The enum variant name: `order_placed_v1` -> `OrderPlacedV1`.
    pub(crate) fn variant(&self) -> Ident {
        use heck::ToUpperCamelCase;
        Ident::new(
            &self.method.to_string().to_upper_camel_case(),
            self.method.span(),
        )
    }
}
