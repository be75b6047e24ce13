//! The five procedures, one file each. Every handler is a plain async method of
//! [`SyncServer`](crate::SyncServer) over typed messages: adapters only move bytes.

mod keys;
mod pull;
mod pull_page;
mod push;
mod query;
mod rebase;
mod register;
mod repair;
mod rows;
mod version_runs;
