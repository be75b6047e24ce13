//! The `#[derive(Tracked)]` macro of [dbsync](https://docs.rs/dbsync).
//!
//! Not intended to be used directly: depend on `dbsync`, which re-exports the derive next to
//! the `Tracked` trait it implements and documents both. This crate only parses, validates
//! and emits; every behaviour lives in `dbsync` itself.

#![deny(missing_docs)]

extern crate proc_macro;

mod ast;
mod attr;
mod expand;

use proc_macro::TokenStream;

/// Derives `dbsync::Tracked` for a SeaORM `Model`; see the `dbsync` crate for its use.
#[proc_macro_derive(Tracked, attributes(dbsync))]
pub fn derive_tracked(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::derive(&input)
        .unwrap_or_else(|err| err.to_compile_error())
        .into()
}
