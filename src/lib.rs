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

// The allocator and the wasm's state (`Single`) are shared without locks, which is sound only
// because a wasm32 instance without the atomics feature has exactly one thread.
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
compile_error!("Tandem assumes one thread per instance: build the wasm without the atomics target feature");

/// The wasm's state (the shell's, `core::unicode`'s browser functions) in plain statics, used as a
/// `thread_local!` is (`STATE.with(|slot| ..)`): a `thread_local!` was reached through a function
/// pointer the optimisers did not resolve, an indirect call and a null check at each use.
#[cfg(target_arch = "wasm32")]
pub(crate) struct Single<T>(pub(crate) T);

// SAFETY: one thread (see the compile_error above), as for the allocator (crate::alloc).
#[cfg(target_arch = "wasm32")]
unsafe impl<T> Sync for Single<T> {}

#[cfg(target_arch = "wasm32")]
impl<T> Single<T> {
    pub(crate) fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.0)
    }
}

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: alloc::SizeClasses<alloc::WasmMemory> = alloc::SizeClasses::new(alloc::WasmMemory);
