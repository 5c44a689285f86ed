//! The options of `#[event_contract(...)]`, `#[event(...)]` and the
//! parameter attributes.

use heck::{ToKebabCase, ToLowerCamelCase, ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use syn::meta::ParseNestedMeta;
use syn::{Attribute, LitInt, LitStr, Path, Result};

pub(crate) struct ContractOptions {
    pub(crate) krate: Path,
    pub(crate) min_version: u32,
    pub(crate) rename_all: Option<RenameAll>,
    pub(crate) event_derive: Vec<Path>,
}

#[derive(Clone, Copy)]
pub(crate) enum RenameAll {
    Snake,
    Kebab,
    Camel,
    Pascal,
    ScreamingSnake,
}

impl RenameAll {
    pub(crate) fn apply(self, name: &str) -> String {
        match self {
            RenameAll::Snake => name.to_snake_case(),
            RenameAll::Kebab => name.to_kebab_case(),
            RenameAll::Camel => name.to_lower_camel_case(),
            RenameAll::Pascal => name.to_upper_camel_case(),
            RenameAll::ScreamingSnake => name.to_shouty_snake_case(),
        }
    }
}

impl ContractOptions {
    pub(crate) fn parse(args: proc_macro2::TokenStream) -> Result<Self> {
        let mut options = ContractOptions {
            krate: syn::parse_quote!(::event_backbone),
            min_version: 0,
            rename_all: None,
            event_derive: vec![syn::parse_quote!(Debug)],
        };
        let parser = syn::meta::parser(|meta| options.one(meta));
        syn::parse::Parser::parse2(parser, args)?;
        Ok(options)
    }

    fn one(&mut self, meta: ParseNestedMeta) -> Result<()> {
        if meta.path.is_ident("crate") {
            self.krate = meta.value()?.parse()?;
        } else if meta.path.is_ident("min_version") {
            self.min_version = meta.value()?.parse::<LitInt>()?.base10_parse()?;
        } else if meta.path.is_ident("rename_all") {
            let lit: LitStr = meta.value()?.parse()?;
            self.rename_all = Some(match lit.value().as_str() {
                "snake_case" => RenameAll::Snake,
                "kebab-case" => RenameAll::Kebab,
                "camelCase" => RenameAll::Camel,
                "PascalCase" => RenameAll::Pascal,
                "SCREAMING_SNAKE_CASE" => RenameAll::ScreamingSnake,
                _ => {
                    return Err(syn::Error::new(
                        lit.span(),
                        "unknown rename_all: expected \"snake_case\", \"kebab-case\", \
                         \"camelCase\", \"PascalCase\" or \"SCREAMING_SNAKE_CASE\"",
                    ))
                }
            });
        } else if meta.path.is_ident("event_derive") {
            self.event_derive.clear();
            meta.parse_nested_meta(|derive| {
                self.event_derive.push(derive.path);
                Ok(())
            })?;
        } else {
            return Err(meta.error(
                "unknown event_contract option: expected `crate`, `min_version`, \
                 `rename_all` or `event_derive`",
            ));
        }
        Ok(())
    }
}

#[derive(Default)]
pub(crate) struct EventOptions {
    pub(crate) name: Option<(String, proc_macro2::Span)>,
    pub(crate) version: u32,
    pub(crate) deprecated: bool,
}

impl EventOptions {
    pub(crate) fn parse(attr: &Attribute, into: &mut EventOptions) -> Result<()> {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let lit = meta.value()?.parse::<LitStr>()?;
                into.name = Some((lit.value(), lit.span()));
            } else if meta.path.is_ident("version") {
                into.version = meta.value()?.parse::<LitInt>()?.base10_parse()?;
            } else if meta.path.is_ident("deprecated") {
                into.deprecated = true;
            } else {
                return Err(meta.error(
                    "unknown event option: expected `name = \"...\"`, `version = N` or \
                     `deprecated`",
                ));
            }
            Ok(())
        })
    }
}

#[derive(Default)]
pub(crate) struct SegmentOptions {
    pub(crate) name: Option<String>,
    pub(crate) class: Option<String>,
}

impl SegmentOptions {
    pub(crate) fn parse(attr: &Attribute, into: &mut SegmentOptions) -> Result<()> {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                into.name = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if meta.path.is_ident("class") {
                into.class = Some(meta.value()?.parse::<LitStr>()?.value());
            } else {
                return Err(meta.error(
                    "unknown segment option: expected `name = \"...\"` or `class = \"...\"`",
                ));
            }
            Ok(())
        })
    }
}
