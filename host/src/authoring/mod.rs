//! Writing plugins in any language: `weft plugin new` and `weft plugin build`.
//!
//! A tour:
//! - [`language`]: the languages (Rust, JavaScript, TypeScript, Python, C,
//!   Go), the toolchain each needs and the command that installs it;
//! - [`templates`]: a starter plugin per language, embedded in the binary,
//!   written out by [`new_plugin`];
//! - [`manifest`]: `plugin.toml`, which tells the build the plugin's name,
//!   language and world;
//! - [`build()`]: runs the language's own build and leaves `<name>.wasm`;
//! - [`wit_package`]: parsing a plugin's WIT and finding its world (the
//!   contract's own WIT is embedded in [`crate::contract::wit`]);
//! - [`c_bindings`] and [`componentize()`]: what Weft does itself for the
//!   languages whose compilers stop at a WASI preview-1 core module (C and
//!   Go), so that their authors need no other tool; `go_adapter_arena`
//!   gives the preview-1 adapter memory Go's heap never grows into.
//!
//! Nothing here runs a plugin: that is the sandbox's job.

mod build;
pub mod c_bindings;
mod componentize;
mod go_adapter_arena;
pub mod language;
pub mod manifest;
pub mod templates;
pub mod wit_package;

pub use build::{Built, build};
pub use componentize::{AdapterMemory, componentize};
pub use language::Language;
pub use manifest::Manifest;
pub use templates::{NewPlugin, new_plugin};
pub use wit_package::World;
