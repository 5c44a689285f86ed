//! From the [`Contract`] model to the generated items.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{GenericArgument, PathArguments, Type};

use crate::model::{Contract, Event, Param};

pub(crate) fn contract(c: &Contract) -> TokenStream {
    let descriptor = descriptor(c);
    let producer = producer(c);
    let consumer = consumer(c);
    let event = event_enum(c);
    quote! {
        #descriptor
        #producer
        #consumer
        #event
    }
}

fn doc(text: String) -> TokenStream {
    quote!(#[doc = #text])
}

fn descriptor(c: &Contract) -> TokenStream {
    let Contract {
        vis,
        name,
        docs,
        krate,
        ..
    } = c;
    let operations = c.events.iter().map(|e| {
        let (op, version, deprecated) = (&e.operation, e.version, e.deprecated);
        let segments = e.params.iter().map(|p| {
            let (segment, class) = (&p.segment, &p.class);
            quote!(#krate::SegmentInfo { name: #segment, class: #class })
        });
        quote! {
            #krate::OperationInfo {
                name: #op,
                version: #version,
                deprecated: #deprecated,
                segments: &[#(#segments),*],
            }
        }
    });
    let summary = doc(format!(
        "The `{name}` event contract. Its typed producer is [`{name}Producer`], its consumer \
         trait [`{name}Consumer`] (subscribe it with [`{name}Handler`]), and its events as an \
         enum [`{name}Event`]."
    ));
    quote! {
        #(#docs)*
        #[doc = ""]
        #summary
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #vis struct #name;

        impl #name {
            /// The contract's name.
            pub const NAME: &'static str = stringify!(#name);
            /// Its operations: name, version, deprecation and segments.
            pub const OPERATIONS: &'static [#krate::OperationInfo] = &[#(#operations),*];
        }
    }
}

/// `String` -> `&str`, `Vec<T>` -> `&[T]`, otherwise `&T`.
fn borrowed(ty: &Type) -> TokenStream {
    if last_segment_is(ty, "String").is_some() {
        return quote!(&str);
    }
    if let Some(inner) = single_argument(ty, "Vec") {
        return quote!(&[#inner]);
    }
    quote!(&#ty)
}

fn last_segment_is<'a>(ty: &'a Type, name: &str) -> Option<&'a syn::PathSegment> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    path.path.segments.last().filter(|s| s.ident == name)
}

fn single_argument<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let segment = last_segment_is(ty, name)?;
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>()[..] {
        [GenericArgument::Type(inner)] => Some(inner),
        _ => None,
    }
}

fn producer(c: &Contract) -> TokenStream {
    let Contract {
        vis, name, krate, ..
    } = c;
    let producer = format_ident!("{name}Producer");
    let producer_in = format_ident!("{name}ProducerIn");
    let summary_in = doc(format!(
        "The typed producer of [`{name}`] inside a caller's transaction, from \
         `{name}Producer::in_transaction`: one async method per event."
    ));
    let methods_sending =
        |receiver: TokenStream, send: TokenStream| {
            c.events.iter().map(move |e| {
        let method = &e.method;
        let (op, version) = (&e.operation, e.version);
        let docs = &e.docs;
        let args = e.params.iter().map(|p| {
            let (ident, ty) = (&p.ident, borrowed(&p.ty));
            quote!(#ident: #ty)
        });
        let inserts = e.params.iter().map(|p| {
            let (ident, segment) = (&p.ident, &p.segment);
            let class = class_expr(krate, &p.class);
            quote! {
                message.segments.insert_classed(#segment, #class, codec.encode(#segment, &#ident)?);
            }
        });
        let subject = e.subject.as_ref().map(|(ident, fields)| {
            let span = fields.last().map_or(ident.span(), |f| f.span());
            let subject =
                quote_spanned!(span=> #krate::privacy::Subject::new(&#ident #(.#fields)*));
            quote! {
                message.subject = #subject;
            }
        });
        let deprecated = e.deprecated.then(|| {
            let note = format!("operation `{op}` version {version} is deprecated in this contract");
            quote!(#[deprecated(note = #note)])
        });
        let identity = doc(format!(
            "Sends operation `{op}`, version {version}. Returns the message id and entry id."
        ));
        quote! {
            #(#docs)*
            #[doc = ""]
            #identity
            #deprecated
            #[allow(clippy::too_many_arguments)]
            pub async fn #method(#receiver, #(#args),*) -> #krate::Result<#krate::Receipt> {
                let codec = self.producer.codec();
                let mut message = #krate::OutgoingMessage::new(#op);
                message.version = #version;
                #(#inserts)*
                #subject
                #send
            }
        }
    }).collect::<Vec<_>>()
        };
    let methods = methods_sending(
        quote!(&self),
        quote!(self.producer.send_message(message).await),
    );
    let methods_in = methods_sending(
        quote!(&mut self),
        quote!(self.producer.send_message_in(&mut *self.tx, message).await),
    );
    let summary = doc(format!(
        "The typed producer of [`{name}`]: one async method per event, each parameter \
         one segment named after it."
    ));
    quote! {
        #summary
        #[derive(Clone, Debug)]
        #vis struct #producer {
            producer: #krate::Producer,
        }

        impl #producer {
            /// Wraps a built producer.
            pub fn new(producer: #krate::Producer) -> Self {
                Self { producer }
            }

            /// The untyped producer underneath.
            pub fn producer(&self) -> &#krate::Producer {
                &self.producer
            }

            /// A producer whose messages carry the correlation, causation and
            /// trace context of `message` (see `Producer::caused_by`).
            pub fn caused_by(&self, message: &#krate::Message) -> Self {
                Self { producer: self.producer.caused_by(message) }
            }

            /// The same producer writing inside a caller's transaction: each
            /// event is sent if and only if the transaction commits (see
            /// `Producer::send_message_in` and the `outbox` module).
            pub fn in_transaction<'t>(
                &'t self,
                tx: &'t mut dyn #krate::outbox::Transaction,
            ) -> #producer_in<'t> {
                #producer_in { producer: &self.producer, tx }
            }

            #(#methods)*
        }

        #summary_in
        #vis struct #producer_in<'t> {
            producer: &'t #krate::Producer,
            tx: &'t mut dyn #krate::outbox::Transaction,
        }

        impl #producer_in<'_> {
            #(#methods_in)*
        }

        impl ::core::convert::From<#krate::Producer> for #producer {
            fn from(producer: #krate::Producer) -> Self {
                Self::new(producer)
            }
        }
    }
}

fn class_expr(krate: &syn::Path, class: &str) -> TokenStream {
    match class {
        "normal" => quote!(#krate::SegmentClass::NORMAL),
        "personal" => quote!(#krate::SegmentClass::PERSONAL),
        other => quote!(#krate::SegmentClass::custom(#other)?),
    }
}

fn consumer(c: &Contract) -> TokenStream {
    let Contract {
        vis, name, krate, ..
    } = c;
    let consumer = format_ident!("{name}Consumer");
    let handler = format_ident!("{name}Handler");
    let event = format_ident!("{name}Event");
    let live: Vec<&Event> = c.events.iter().filter(|e| !e.deprecated).collect();
    let handlers = live.iter().map(|e| {
        let method = &e.method;
        let docs = &e.docs;
        let args = e.params.iter().map(|p| {
            let (ident, ty) = (&p.ident, &p.ty);
            quote!(#ident: #ty)
        });
        let identity = doc(format!(
            "Handles operation `{}`, version {}. An error is retried, then the message is \
             delivered again, then dead-lettered.",
            e.operation, e.version
        ));
        quote! {
            #(#docs)*
            #[doc = ""]
            #identity
            #[allow(clippy::too_many_arguments)]
            fn #method(
                &self,
                ctx: &#krate::ConsumerContext,
                #(#args),*
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<(), #krate::HandlerError>,
            > + ::core::marker::Send;
        }
    });
    let arms = live.iter().map(|e| {
        let (method, variant) = (&e.method, e.variant());
        let fields: Vec<_> = e.params.iter().map(|p| &p.ident).collect();
        let pattern = if fields.is_empty() {
            quote!(#event::#variant)
        } else {
            quote!(#event::#variant { #(#fields),* })
        };
        quote! {
            ::core::option::Option::Some(#pattern) => {
                self.0.#method(ctx, #(#fields),*).await?;
                ::core::result::Result::Ok(#krate::Outcome::Handled)
            }
        }
    });
    let catch_all = (live.len() != c.events.len())
        .then(|| quote!(::core::option::Option::Some(_) => self.0.fallback(ctx).await,));
    let consumer_doc = doc(format!(
        "The consumer side of [`{name}`]: one handler per event, each with the \
         `ConsumerContext` first. Subscribe an implementation with \
         [`{handler}::new`]. Deprecated events and operations the contract does not have \
         go to [`{consumer}::fallback`]."
    ));
    let handler_doc = doc(format!(
        "Dispatches messages to a [`{consumer}`]: decodes each message's segments and calls \
         the handler of its operation and version. Pass it to `ConsumerBuilder::subscribe`; \
         several go on one subscription with `Handlers`."
    ));
    quote! {
        #consumer_doc
        #vis trait #consumer: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#handlers)*

            /// Handles a message this contract has no handler for (an
            /// unknown or deprecated operation). The default leaves it to the
            /// consumer's `Fallback` (dead letter unless configured).
            fn fallback(
                &self,
                _ctx: &#krate::ConsumerContext,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<#krate::Outcome, #krate::HandlerError>,
            > + ::core::marker::Send {
                async { ::core::result::Result::Ok(#krate::Outcome::Unknown) }
            }
        }

        #handler_doc
        #vis struct #handler<T>(::std::sync::Arc<T>);

        impl<T> #handler<T> {
            /// Wraps a consumer implementation.
            pub fn new(consumer: T) -> Self {
                Self(::std::sync::Arc::new(consumer))
            }

            /// Wraps a shared consumer implementation.
            pub fn shared(consumer: ::std::sync::Arc<T>) -> Self {
                Self(consumer)
            }

            /// The implementation.
            pub fn inner(&self) -> &T {
                &self.0
            }
        }

        impl<T> ::core::clone::Clone for #handler<T> {
            fn clone(&self) -> Self {
                Self(self.0.clone())
            }
        }

        impl<T> ::core::fmt::Debug for #handler<T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(stringify!(#handler))
            }
        }

        #[#krate::__private::async_trait]
        impl<T: #consumer> #krate::Handler for #handler<T> {
            async fn handle(
                &self,
                ctx: &#krate::ConsumerContext,
            ) -> ::core::result::Result<#krate::Outcome, #krate::HandlerError> {
                match <#event as #krate::ContractEvent>::from_message(ctx.message())? {
                    #(#arms)*
                    #catch_all
                    ::core::option::Option::None => self.0.fallback(ctx).await,
                }
            }
        }
    }
}

fn event_enum(c: &Contract) -> TokenStream {
    let Contract {
        vis,
        name,
        krate,
        event_derive,
        ..
    } = c;
    let event = format_ident!("{name}Event");
    let variants = c.events.iter().map(|e| {
        let variant = e.variant();
        let docs = &e.docs;
        let identity = doc(format!(
            "Operation `{}`, version {}.",
            e.operation, e.version
        ));
        let fields = e.params.iter().map(|p| {
            let (ident, ty) = (&p.ident, &p.ty);
            let field_doc = doc(format!("Segment `{}` ({}).", p.segment, p.class));
            quote!(#field_doc #ident: #ty)
        });
        let body = if e.params.is_empty() {
            quote!()
        } else {
            quote!({ #(#fields),* })
        };
        quote! {
            #(#docs)*
            #[doc = ""]
            #identity
            #variant #body
        }
    });
    let decode_arms = c.events.iter().map(|e| {
        let (op, version, variant) = (&e.operation, e.version, e.variant());
        let fields = e.params.iter().map(|p| {
            let ident = &p.ident;
            let value = decode(p, krate);
            quote!(#ident: #value)
        });
        let value = if e.params.is_empty() {
            quote!(#event::#variant)
        } else {
            quote!(#event::#variant { #(#fields),* })
        };
        quote!((#op, #version) => #value,)
    });
    let identity_arms = c.events.iter().map(|e| {
        let (op, version, variant) = (&e.operation, e.version, e.variant());
        let pattern = if e.params.is_empty() {
            quote!(#event::#variant)
        } else {
            quote!(#event::#variant { .. })
        };
        quote!(#pattern => (#op, #version),)
    });
    let identity = if c.events.is_empty() {
        quote!(match *self {})
    } else {
        quote!(match self { #(#identity_arms)* })
    };
    let summary = doc(format!(
        "The events of [`{name}`], one variant per operation and version: what a typed \
         replay (`ReplayBuilder::events`) and a typed receiver return."
    ));
    quote! {
        #summary
        #[derive(#(#event_derive),*)]
        #vis enum #event {
            #(#variants),*
        }

        impl #event {
            fn identity(&self) -> (&'static str, u32) {
                #identity
            }
        }

        impl #krate::ContractEvent for #event {
            const CONTRACT: &'static str = stringify!(#name);
            const OPERATIONS: &'static [#krate::OperationInfo] = #name::OPERATIONS;

            fn from_message(
                message: &#krate::Message,
            ) -> #krate::Result<::core::option::Option<Self>> {
                ::core::result::Result::Ok(::core::option::Option::Some(
                    match (message.operation(), message.version()) {
                        #(#decode_arms)*
                        _ => return ::core::result::Result::Ok(::core::option::Option::None),
                    },
                ))
            }

            fn operation(&self) -> &'static str {
                self.identity().0
            }

            fn version(&self) -> u32 {
                self.identity().1
            }
        }
    }
}

/// How one field is decoded from a message: an `Option` parameter whose
/// segment is absent is `None`. A parameter of a class other than `normal`
/// can be erased (subject erased, payload expired): it decodes as `None` or
/// its type's default then, so it must be an `Option` or implement
/// `Default`, which is checked here at compile time.
fn decode(p: &Param, krate: &syn::Path) -> TokenStream {
    let segment = &p.segment;
    let ty = &p.ty;
    let optional = single_argument(ty, "Option").is_some();
    if p.class == "normal" {
        return if optional {
            quote!(message.optional_segment::<#ty>(#segment)?.flatten())
        } else {
            quote!(message.segment::<#ty>(#segment)?)
        };
    }
    if optional {
        return quote!(message.erasable_segment::<#ty>(#segment)?.flatten());
    }
    let or_erased = quote_spanned!(ty.span()=> #krate::__private::or_erased::<#ty>);
    quote!(#or_erased(message.erasable_segment::<#ty>(#segment)?))
}
