//! The five procedures, one file each. Every handler is a plain async method of
//! [`SyncServer`](crate::SyncServer) over typed messages: adapters only move bytes.

mod pull;
mod push;
mod query;
mod register;
mod repair;
mod rows;
