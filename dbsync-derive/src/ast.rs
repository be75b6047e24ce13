//! The derive input reduced to what dbsync needs: the table, the primary key and the
//! columns, with every misuse reported as a spanned error.

use crate::attr::{self, Options};
use syn::{Data, DeriveInput, Fields, Ident, Type};

/// One persisted field (SeaORM's `ignore`d fields are left out, as SeaORM leaves them out of
/// its `Column` enum).
pub struct Column<'a> {
    pub ty: &'a Type,
}

pub struct Input<'a> {
    pub table_name: String,
    pub options: Options,
    pub columns: Vec<Column<'a>>,
}

const INTEGER_TYPES: &[&str] = &["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"];

impl<'a> Input<'a> {
    pub fn from_syn(input: &'a DeriveInput) -> syn::Result<Self> {
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => &named.named,
                _ => {
                    return Err(syn::Error::new_spanned(
                        &input.ident,
                        "#[derive(Tracked)] needs a struct with named fields (a SeaORM `Model`), \
                         not a tuple or unit struct",
                    ));
                }
            },
            Data::Enum(data) => {
                return Err(syn::Error::new(
                    data.enum_token.span,
                    "#[derive(Tracked)] goes on a SeaORM `Model` struct, not on an enum",
                ));
            }
            Data::Union(data) => {
                return Err(syn::Error::new(
                    data.union_token.span,
                    "#[derive(Tracked)] goes on a SeaORM `Model` struct, not on a union",
                ));
            }
        };
        let options = attr::parse_options(&input.attrs)?;
        let container = attr::parse_sea_orm(&input.attrs)?;
        let table_name = container.table_name.ok_or_else(|| {
            syn::Error::new_spanned(
                &input.ident,
                "#[derive(Tracked)] needs the table name: add #[sea_orm(table_name = \"...\")]",
            )
        })?;

        let mut columns = Vec::new();
        let mut keys: Vec<&Ident> = Vec::new();
        for field in fields {
            let sea = attr::parse_sea_orm(&field.attrs)?;
            if sea.ignore {
                continue;
            }
            let ident = field.ident.as_ref().expect("named fields have names");
            if sea.primary_key {
                if let Some(first) = keys.first() {
                    return Err(syn::Error::new_spanned(
                        ident,
                        format!(
                            "dbsync supports one integer primary key per table, but `{first}` \
                             and `{ident}` are both marked #[sea_orm(primary_key)]; use a \
                             single surrogate key and a #[sea_orm(unique_key = \"...\")] \
                             over the natural columns"
                        ),
                    ));
                }
                if !is_integer(&field.ty) {
                    return Err(syn::Error::new_spanned(
                        &field.ty,
                        "dbsync needs an integer primary key (i8..i64 or u8..u64) that the \
                         database generates and never reuses",
                    ));
                }
                keys.push(ident);
            }
            columns.push(Column { ty: &field.ty });
        }
        if keys.is_empty() {
            return Err(syn::Error::new_spanned(
                &input.ident,
                "#[derive(Tracked)] needs a primary key: mark one integer field \
                 #[sea_orm(primary_key)]",
            ));
        }
        Ok(Input {
            table_name,
            options,
            columns,
        })
    }
}

fn is_integer(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .get_ident()
            .is_some_and(|id| INTEGER_TYPES.iter().any(|t| id == t)),
        Type::Group(group) => is_integer(&group.elem),
        _ => false,
    }
}

/// `Option<T>` gives `Some(T)`: nullable columns decode to the inner type's value kind.
pub fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(inner) if args.args.len() == 1 => Some(inner),
        _ => None,
    }
}
