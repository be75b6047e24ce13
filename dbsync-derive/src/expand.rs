//! Emits `impl Tracked for Entity` and the registration that lets `dbsync::create_all` find
//! the entity. All behaviour is in `dbsync::__private`; the generated code only names types.

use crate::ast::{Input, option_inner};
use crate::attr::Direction;
use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

pub fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let input = Input::from_syn(input)?;
    let krate = &input.options.krate;
    let content_type_id = crc32fast::hash(input.table_name.as_bytes());
    let direction = match input.options.direction {
        Direction::Push => quote!(Push),
        Direction::Pull => quote!(Pull),
        Direction::Both => quote!(Both),
    };
    let templates = input.columns.iter().map(|column| {
        let ty = option_inner(column.ty).unwrap_or(column.ty);
        quote!(<#ty as __dbsync::Nullable>::null())
    });
    Ok(quote! {
        #[doc(hidden)]
        const _: () = {
            use #krate::__private as __dbsync;

            #[automatically_derived]
            impl __dbsync::Tracked for Entity {
                const CONTENT_TYPE_ID: u32 = #content_type_id;
                const DIRECTION: __dbsync::Direction = __dbsync::Direction::#direction;

                fn column_templates() -> __dbsync::Vec<__dbsync::Value> {
                    __dbsync::vec![#(#templates),*]
                }
            }

            __dbsync::inventory::submit! {
                __dbsync::Registration::of::<Entity>()
            }
        };
    })
}
