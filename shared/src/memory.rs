//! Memory given back to the system. The services allocate with mimalloc (for
//! the bundled SQLite as for Rust), which returns freed memory to the system
//! a second after it is freed, and only while the process keeps allocating:
//! after a one-off burst (a whole schedule read and indexed at start) an idle
//! service would keep the burst's memory resident.

/// Returns what has been freed so far to the system now: the calling
/// thread's free pages and every arena's, whatever the purge delay.
pub fn release_freed() {
    // SAFETY: `mi_collect` takes no pointer and is safe to call from any
    // thread at any time; it only walks the allocator's own structures.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}
