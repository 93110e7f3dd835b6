//! The `parkflow` binary: everything it does is in the library's [`parkflow::cli`].

/// Every allocation of the binary goes to mimalloc's per-thread heaps. With glibc's malloc, a
/// block allocated on one tokio worker and freed on the other (a request's task moves between
/// them) took the owning arena's lock: under the API's load 63 % of the workers'
/// context switches were waits for it (BENCHMARKS.md "Stop 37"). SQLite keeps glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    without_huge_pages();
    parkflow::cli::main()
}

/// Transparent huge pages off for this process. Where the kernel gives them to every mapping
/// (`always`), each first touch of mimalloc's sparsely used memory zeroed a whole 2 MB page: a
/// sixth of the default demo's samples, its system time 3.8 → 9–10 s. A kernel that refuses
/// the flag leaves the process as it was, slower but correct.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

#[cfg(test)]
mod tests {
    /// This test binary is built from this file, global allocator included: run again with
    /// mimalloc's verbose option, it says mimalloc started.
    #[test]
    fn the_binary_allocates_through_mimalloc() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--list")
            .env("MIMALLOC_VERBOSE", "1")
            .output()
            .unwrap();
        assert!(out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("mimalloc: process init"), "{said}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_binary_turns_transparent_huge_pages_off() {
        super::without_huge_pages();
        assert!(rustix::thread::transparent_huge_pages_are_disabled().unwrap());
    }
}
