//! From the annotated trait to the [`Contract`] model, with an error (and
//! its span) for everything a contract cannot be.

use std::collections::BTreeMap;

use proc_macro2::TokenStream;
use syn::spanned::Spanned;
use syn::{Error, FnArg, ItemTrait, Pat, Result, ReturnType, TraitItem, TraitItemFn};

use crate::model::{Contract, Event, Param};
use crate::options::{ContractOptions, EventOptions, SegmentOptions};

pub(crate) fn contract(args: TokenStream, item: TokenStream) -> Result<Contract> {
    let options = ContractOptions::parse(args)?;
    let item: ItemTrait = syn::parse2(item).map_err(|e| {
        Error::new(
            e.span(),
            "#[event_contract] goes on a trait: the event contract",
        )
    })?;
    if let Some(unsafety) = &item.unsafety {
        return Err(Error::new(
            unsafety.span(),
            "an event contract cannot be an unsafe trait",
        ));
    }
    if let Some(auto) = &item.auto_token {
        return Err(Error::new(
            auto.span(),
            "an event contract cannot be an auto trait",
        ));
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        return Err(Error::new(
            item.generics.span(),
            "an event contract cannot be generic: every event must have one concrete shape",
        ));
    }
    if !item.supertraits.is_empty() {
        return Err(Error::new(
            item.supertraits.span(),
            "an event contract cannot have supertraits: list all its events in it",
        ));
    }
    let docs = doc_attrs(&item.attrs);
    if let Some(other) = item.attrs.iter().find(|a| !a.path().is_ident("doc")) {
        return Err(Error::new(
            other.path().span(),
            "unknown attribute on an event contract: only doc comments are kept",
        ));
    }

    let mut events = Vec::new();
    let mut identities: BTreeMap<(String, u32), String> = BTreeMap::new();
    for trait_item in &item.items {
        let TraitItem::Fn(method) = trait_item else {
            return Err(Error::new(
                trait_item.span(),
                "an event contract holds only `async fn` events",
            ));
        };
        let event = event(method, &options)?;
        let identity = (event.operation.clone(), event.version);
        if let Some(first) = identities.get(&identity) {
            return Err(Error::new(
                method.sig.ident.span(),
                format!(
                    "operation `{}` version {} is already defined by `{first}`: give one of \
                     them another `#[event(name = ...)]` or `#[event(version = ...)]`",
                    identity.0, identity.1
                ),
            ));
        }
        identities.insert(identity, method.sig.ident.to_string());
        if event.version >= options.min_version {
            events.push(event);
        }
    }
    Ok(Contract {
        vis: item.vis,
        name: item.ident,
        docs,
        krate: options.krate,
        event_derive: options.event_derive,
        events,
    })
}

fn event(method: &TraitItemFn, contract: &ContractOptions) -> Result<Event> {
    let sig = &method.sig;
    if sig.asyncness.is_none() {
        return Err(Error::new(
            sig.fn_token.span(),
            "event methods must be `async fn`: write `async fn name(&self, ...);`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(Error::new(
            sig.generics.span(),
            "event methods cannot be generic: each parameter is a segment of one concrete type",
        ));
    }
    if let Some(constness) = &sig.constness {
        return Err(Error::new(
            constness.span(),
            "event methods cannot be `const`",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        return Err(Error::new(
            unsafety.span(),
            "event methods cannot be `unsafe`",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(Error::new(
            variadic.span(),
            "event methods cannot be variadic",
        ));
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        return Err(Error::new(
            ty.span(),
            "event methods return nothing: the generated producer method returns the \
             receipt, the consumer handler a `Result`",
        ));
    }
    if let Some(body) = &method.default {
        return Err(Error::new(
            body.span(),
            "event methods have no body: end the declaration with `;`",
        ));
    }

    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        Some(FnArg::Receiver(r)) => {
            return Err(Error::new(
                r.span(),
                "event methods take `&self`, not `self` by value or `&mut self`",
            ))
        }
        _ => {
            return Err(Error::new(
                sig.ident.span(),
                "event methods take `&self` as their first parameter",
            ))
        }
    }

    let mut options = EventOptions::default();
    let mut docs = Vec::new();
    for attr in &method.attrs {
        if attr.path().is_ident("doc") {
            docs.push(attr.clone());
        } else if attr.path().is_ident("event") {
            EventOptions::parse(attr, &mut options)?;
        } else {
            return Err(Error::new(
                attr.path().span(),
                "unknown attribute on an event method: expected doc comments or \
                 `#[event(name = \"...\", version = N, deprecated)]`",
            ));
        }
    }
    let method_name = sig.ident.to_string();
    let (operation, operation_span) = match (&options.name, contract.rename_all) {
        (Some((name, span)), _) => (name.clone(), *span),
        (None, Some(rename)) => (rename.apply(&method_name), sig.ident.span()),
        (None, None) => (method_name, sig.ident.span()),
    };
    validate_operation(&operation, operation_span)?;

    let mut params = Vec::new();
    let mut segments: BTreeMap<String, ()> = BTreeMap::new();
    let mut subject: Option<(syn::Ident, Vec<syn::Ident>)> = None;
    for input in inputs {
        let FnArg::Typed(typed) = input else {
            return Err(Error::new(input.span(), "`self` can only come first"));
        };
        let ident = match &*typed.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none() => {
                p.ident.clone()
            }
            other => {
                return Err(Error::new(
                    other.span(),
                    "event parameters must be plain names (no patterns, `mut` or `ref`): \
                     each name is the name of a segment",
                ))
            }
        };
        let mut segment = SegmentOptions::default();
        let mut personal = false;
        // `#[subject]` without `pseudonymous`: the id is personal data.
        let mut subject_is_personal = false;
        for attr in &typed.attrs {
            if attr.path().is_ident("personal") {
                attr.meta.require_path_only()?;
                personal = true;
            } else if attr.path().is_ident("subject") {
                if subject.is_some() {
                    return Err(Error::new(
                        attr.span(),
                        "an event has one data subject: `#[subject]` is on two parameters",
                    ));
                }
                let (path, pseudonymous) = subject_options(attr)?;
                subject_is_personal = !pseudonymous;
                subject = Some((ident.clone(), path));
            } else if attr.path().is_ident("segment") {
                SegmentOptions::parse(attr, &mut segment)?;
            } else {
                return Err(Error::new(
                    attr.path().span(),
                    "unknown attribute on an event parameter: expected `#[personal]`, \
                     `#[subject]`, `#[subject(field = \"...\", pseudonymous)]` or \
                     `#[segment(name = \"...\", class = \"...\")]`",
                ));
            }
        }
        let class = match (personal, segment.class) {
            (true, Some(_)) => {
                return Err(Error::new(
                    typed.span(),
                    "`#[personal]` and `#[segment(class = ...)]` both set the class: keep one",
                ))
            }
            (true, None) => "personal".to_owned(),
            (false, Some(class)) => class,
            (false, None) if subject_is_personal => "personal".to_owned(),
            (false, None) => "normal".to_owned(),
        };
        validate_operation(&class, typed.span())?;
        let name = segment.name.unwrap_or_else(|| ident.to_string());
        if segments.insert(name.clone(), ()).is_some() {
            return Err(Error::new(
                typed.span(),
                format!("two parameters are stored as segment `{name}`"),
            ));
        }
        params.push(Param {
            ident,
            ty: (*typed.ty).clone(),
            segment: name,
            class,
        });
    }

    Ok(Event {
        method: sig.ident.clone(),
        operation,
        version: options.version,
        deprecated: options.deprecated,
        docs,
        params,
        subject,
    })
}

/// `#[subject]` (the parameter itself) or `#[subject(field = "a.b")]` (a
/// field path within it), either with `pseudonymous` (the id tells no one
/// who the person is, so the parameter stays `normal`): the path, and
/// whether it is pseudonymous.
fn subject_options(attr: &syn::Attribute) -> Result<(Vec<syn::Ident>, bool)> {
    if let syn::Meta::Path(_) = &attr.meta {
        return Ok((Vec::new(), false));
    }
    let mut path = Vec::new();
    let mut pseudonymous = false;
    attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("pseudonymous") {
            pseudonymous = true;
            Ok(())
        } else if meta.path.is_ident("field") {
            let text: syn::LitStr = meta.value()?.parse()?;
            path = text
                .value()
                .split('.')
                .map(|f| {
                    syn::parse_str::<syn::Ident>(f)
                        .map(|i| syn::Ident::new(&i.to_string(), text.span()))
                })
                .collect::<Result<Vec<_>>>()
                .map_err(|_| {
                    Error::new(
                        text.span(),
                        "expected a field path such as \"id\" or \"customer.id\"",
                    )
                })?;
            Ok(())
        } else {
            Err(meta.error(
                "expected `#[subject]`, `#[subject(pseudonymous)]` or \
                 `#[subject(field = \"...\", pseudonymous)]`",
            ))
        }
    })?;
    Ok((path, pseudonymous))
}

/// Operation and class names go into keys: the same rules as at run time.
fn validate_operation(name: &str, span: proc_macro2::Span) -> Result<()> {
    if name.is_empty()
        || name.contains(':')
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::new(
            span,
            format!(
                "`{name}` cannot be used in a key: it must be non-empty, without `:`, \
                 whitespace or control characters"
            ),
        ));
    }
    Ok(())
}

fn doc_attrs(attrs: &[syn::Attribute]) -> Vec<syn::Attribute> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect()
}
