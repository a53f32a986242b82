//! Tandem: a conversion tracking tag.
//!
//! `core` and `platforms` are pure Rust (no web-sys types) and are tested natively with `cargo test`.
//! `shell` is the thin browser layer compiled only for wasm32: it reads the page (URL, cookies,
//! storage, clock, randomness), hands that to the core, and carries out the effects the core returns.

pub mod core;
pub mod platforms;

#[cfg(target_arch = "wasm32")]
pub mod shell;

// Single-threaded by construction: the tag runs on the page's main thread only.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    // SAFETY: wasm32-unknown-unknown without the atomics feature has exactly one thread.
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };
