//! Tandem: a conversion tracking tag.
//!
//! `core` and `platforms` are pure Rust (no web-sys types) and are tested natively with `cargo test`.
//! `shell` is the thin browser layer compiled only for wasm32: it reads the page (URL, cookies,
//! storage, clock, randomness), hands that to the core, and carries out the effects the core returns.

pub mod core;
pub mod platforms;

#[cfg(target_arch = "wasm32")]
pub mod shell;

pub mod alloc;

// The allocator and the shell's state (`shell::Single`) are shared without locks, which is sound
// only because a wasm32 instance without the atomics feature has exactly one thread.
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
compile_error!("Tandem assumes one thread per instance: build the wasm without the atomics target feature");

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: alloc::SizeClasses<alloc::WasmMemory> = alloc::SizeClasses::new(alloc::WasmMemory);
