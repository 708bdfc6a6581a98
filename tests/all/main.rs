//! The end-to-end tests, in one binary (as wasmtime's own `tests/all`): each
//! module is one area, and `common` holds what they share. Real components
//! built from `plugins/`, real workflows, the real `weft` binary and stores.

#![allow(clippy::unwrap_used)]

mod common;

mod capabilities;
mod cli;
mod contract;
mod crash;
mod durable;
mod engine;
mod examples;
mod languages;
mod modes;
mod sandbox;
mod service;
mod store;
mod workers;
