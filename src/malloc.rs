//! glibc's allocator told to keep the memory of freed large buffers, in the long-lived servers
//! (FastCGI, standalone).
//!
//! The crate denies `unsafe_code`; this module is a reviewed exception: `mallopt` has no safe
//! wrapper. By default glibc serves an allocation of 128 KiB or more (raised dynamically up to
//! 32 MiB) with its own `mmap` and unmaps it on `free`, and returns free memory at the top of a
//! heap to the kernel; so every render faulted its big buffers in again (a progressive JPEG's
//! coefficients are 32 MB for 4352×2448): bridge's decode and resize took 3.44 s for 30 in one
//! process with 371,000 page faults, and 2.30 s with 16,000 once the buffers were kept
//! (`perf stat` of the ignored test `render::jpeg::profile_one` with the equivalent
//! `GLIBC_TUNABLES`); in the standalone server, bridge went from 94 to 80 ms a miss and
//! aitzgorri (3088×2056 progressive) from 83 to 69. A CGI process renders once and exits, so
//! it is not changed.
//!
//! The cost is resident memory: each allocator arena (one a worker thread, about) keeps its
//! high-water mark, up to [`TRIM_THRESHOLD`] of free memory, instead of returning it; buffers
//! over [`MMAP_THRESHOLD`] (pictures of more than ~10 MP decoded) are still mapped and unmapped.
//! A standalone server with 2 workers after 75 misses on the five large photos: 129 MB resident
//! (peak 129) against 89 MB (peak 109) without.
#![allow(unsafe_code)]

/// Allocations from this size are mapped by themselves (and unmapped when freed): glibc's
/// largest accepted value on 64-bit systems.
pub const MMAP_THRESHOLD: usize = 32 << 20;

/// Free memory at the top of a heap is returned to the kernel from this size.
pub const TRIM_THRESHOLD: usize = 128 << 20;

/// Sets [`MMAP_THRESHOLD`] and [`TRIM_THRESHOLD`]; returns whether glibc accepted both (always
/// `false` on other C libraries, where nothing is done).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets allocator parameters (it takes the arena lock itself);
        // it is safe to call at any time, from any thread, with any value, and returns 0 for
        // a value it refuses.
        unsafe {
            let mmap = libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
            let trim = libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
            mmap == 1 && trim == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}
