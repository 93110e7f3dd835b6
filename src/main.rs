//! The `parkflow` binary: everything it does is in the library's [`parkflow::cli`].

/// Every allocation of the binary goes to mimalloc's per-thread heaps. With glibc's malloc, a
/// block allocated on one tokio worker and freed on the other (a request's task moves between
/// them) took the owning arena's lock: under the API's load the workers spent a third of their
/// context switches waiting on it (BENCHMARKS.md "Stop 37"). SQLite keeps glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    parkflow::cli::main()
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
}
