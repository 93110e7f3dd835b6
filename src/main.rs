//! The `parkflow` binary: everything it does is in the library's [`parkflow::cli`].

fn main() -> std::process::ExitCode {
    parkflow::cli::main()
}
