//! Handing freed memory back to the system after the big, short-lived allocations of a graph
//! refresh (the `listchannels` JSON and the old graph).
//!
//! glibc keeps freed memory in per-thread arenas, and the refresh runs on whichever runtime
//! thread is free; without a trim the plugin's resident memory ratchets up by a graph's worth
//! per refresh thread, though nothing is held.

/// Keeps glibc from raising its mmap threshold after the first big free: every allocation of
/// 128 KiB or more (the JSON buffer, the graph's arrays) then gets pages of its own that go
/// back to the system the moment it is freed, instead of landing in a heap that fragments.
/// Called once at plugin start.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_MMAP_THRESHOLD: i32 = -3;
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt with a documented parameter; called before any other thread runs.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}

/// Returns free heap pages to the system (glibc's `malloc_trim`); a no-op elsewhere.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only walks glibc's own arenas; it is thread-safe.
        unsafe {
            malloc_trim(0);
        }
    }
}
