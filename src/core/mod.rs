//! The pure core: event model, validation, mapping inputs, attribution, cookie formats and the
//! endpoint payload. Nothing here touches the browser; the shell passes page facts in (`tag::PageFacts`) and
//! carries out the `Effect`s that come back.

pub mod attribution;
pub mod config;
pub mod consent;
pub mod cookies;
pub mod error;
pub mod event;
pub mod identity;
pub mod ids;
pub mod json;
pub mod outbox;
pub mod payload;
pub mod sent;
pub mod sha256;
pub mod tag;
pub mod text;
pub mod unicode;
pub mod url;
