//! Parsing of the attributes the derive reads: SeaORM's own `#[sea_orm(...)]` (read only,
//! never validated here: `DeriveEntityModel` owns them) and dbsync's `#[dbsync(...)]`.

use syn::{Attribute, LitStr, Path};

/// Keys of `#[dbsync(...)]`, kept together so that messages and parsing agree.
const DIRECTION: &str = "direction";
const CRATE: &str = "crate";

/// The sync direction as written by the user.
#[derive(Clone, Copy)]
pub enum Direction {
    Push,
    Pull,
    Both,
}

/// Container options from `#[dbsync(...)]`.
pub struct Options {
    pub direction: Direction,
    pub krate: Path,
}

/// Reads every `#[dbsync(...)]` on the struct. An unknown or repeated key is an error on that
/// key, so the user sees exactly which word to fix.
pub fn parse_options(attrs: &[Attribute]) -> syn::Result<Options> {
    let mut direction: Option<Direction> = None;
    let mut krate: Option<Path> = None;
    let mut errors: Option<syn::Error> = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("dbsync")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(DIRECTION) {
                if direction.is_some() {
                    return Err(meta.error("duplicate dbsync attribute `direction`"));
                }
                let lit: LitStr = meta.value()?.parse()?;
                direction = Some(match lit.value().as_str() {
                    "push" => Direction::Push,
                    "pull" => Direction::Pull,
                    "both" => Direction::Both,
                    _ => {
                        return Err(syn::Error::new(
                            lit.span(),
                            "expected `direction = \"push\"`, `\"pull\"` or `\"both\"`",
                        ));
                    }
                });
                Ok(())
            } else if meta.path.is_ident(CRATE) {
                if krate.is_some() {
                    return Err(meta.error("duplicate dbsync attribute `crate`"));
                }
                let lit: LitStr = meta.value()?.parse()?;
                krate = Some(lit.parse()?);
                Ok(())
            } else {
                let key = meta
                    .path
                    .get_ident()
                    .map_or_else(|| "?".to_owned(), ToString::to_string);
                Err(meta.error(format!(
                    "unknown dbsync attribute `{key}`; expected `direction` or `crate`"
                )))
            }
        });
        if let Err(err) = result {
            match &mut errors {
                Some(all) => all.combine(err),
                None => errors = Some(err),
            }
        }
    }
    if let Some(err) = errors {
        return Err(err);
    }
    Ok(Options {
        direction: direction.unwrap_or(Direction::Both),
        krate: krate.unwrap_or_else(|| syn::parse_quote!(::dbsync)),
    })
}

/// What the derive needs from one `#[sea_orm(...)]` list. Unknown keys are skipped: they
/// belong to SeaORM, which reports its own mistakes.
#[derive(Default)]
pub struct SeaOrmAttrs {
    pub table_name: Option<String>,
    pub primary_key: bool,
    pub ignore: bool,
}

pub fn parse_sea_orm(attrs: &[Attribute]) -> syn::Result<SeaOrmAttrs> {
    let mut out = SeaOrmAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("sea_orm")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table_name") {
                let lit: LitStr = meta.value()?.parse()?;
                out.table_name = Some(lit.value());
            } else if meta.path.is_ident("primary_key") {
                out.primary_key = true;
            } else if meta.path.is_ident("ignore") {
                out.ignore = true;
            } else if meta.input.peek(syn::Token![=]) {
                // Any other `key = value`: consume the value, whatever its form.
                let _: syn::Expr = meta.value()?.parse()?;
            } else if meta.input.peek(syn::token::Paren) {
                let _content;
                syn::parenthesized!(_content in meta.input);
            }
            Ok(())
        })?;
    }
    Ok(out)
}
