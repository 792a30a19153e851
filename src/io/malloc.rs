//! How a long-lived process (the FastCGI and standalone servers, `imgserv-precache`) has glibc's
//! malloc keep the memory that renders free, instead of giving it back to the kernel after
//! every render and faulting it in again for the next.
//!
//! The crate denies `unsafe_code`; this module is a reviewed exception, for one libc call.
//! glibc serves allocations above its mmap threshold with `mmap` and returns them with `munmap`
//! on free, and returns the free top of its heaps above its trim threshold. A render allocates a
//! few large buffers: libjpeg's whole-image coefficient buffers for a progressive JPEG (32 MB
//! for a 10 MP photo, allocated by libjpeg's own `malloc` calls, out of Rust's reach), the
//! decoded pixels, the resize buffers. In a server each render therefore faulted in and zeroed
//! tens of MB of fresh pages: a fifth of the time of a 10 MP progressive render in `perf`
//! (`exc_page_fault`, `clear_page_erms`, `unmap_page_range`; BENCHMARKS.md item 13). With the
//! thresholds below, such buffers come from glibc's arenas and stay there between renders: the
//! process keeps its peak working set (per worker thread's arena) as resident memory. Renders
//! therefore run only on long-lived threads: the servers' workers (`src/web/transport/workers.rs`) and
//! the render helpers (`src/io/render/helpers.rs`).
//!
//! A CGI process renders once and exits, so it does not call this.
#![allow(unsafe_code)]

/// glibc's largest mmap threshold (`HEAP_MAX_SIZE / 2` on 64-bit): allocations up to this size
/// come from the arenas. Larger ones (a very large photo's buffers) are still mapped and
/// returned on free.
const MMAP_THRESHOLD: i32 = 32 << 20;

/// Free memory at the top of an arena that glibc keeps rather than trims (its default is
/// 128 KiB).
const TRIM_THRESHOLD: i32 = 512 << 20;

/// Makes malloc keep freed memory for reuse (see the module doc). Returns whether glibc took
/// both settings (other C libraries: nothing is done, `false`).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets one of malloc's tuning parameters, by value, under
        // malloc's own lock; callers make it at start, before their worker threads exist.
        let mmap = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        // SAFETY: as above.
        let trim = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) };
        mmap == 1 && trim == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// What a long-lived process (the servers, `imgserv-precache`) calls at start, before its
/// worker threads exist: [`keep_freed_memory`], unless `IMGSERV_KEEP_FREED=0` (for
/// comparisons).
pub fn for_long_lived_process() {
    if std::env::var_os("IMGSERV_KEEP_FREED").is_some_and(|v| v == "0") {
        return;
    }
    if !keep_freed_memory() {
        log::debug!("mallopt refused the thresholds; freed buffers are returned as before");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_takes_the_settings() {
        // glibc refuses an mmap threshold above its maximum: this one is within it.
        assert_eq!(
            super::keep_freed_memory(),
            cfg!(all(target_os = "linux", target_env = "gnu"))
        );
    }
}
