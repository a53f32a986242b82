//! The pure core: event model, validation, mapping inputs, attribution, cookie formats and the
//! endpoint payload. Nothing here touches the browser; the shell passes page facts in (`tag::PageFacts`) and
//! carries out the `Effect`s that come back.

pub mod attribution;
pub mod config;
pub mod cookies;
pub mod error;
pub mod event;
pub mod ids;
pub mod json;
pub mod payload;
pub mod sent;
pub mod tag;
pub mod url;
