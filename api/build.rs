//! Embeds every file of `migrations/sqlite` and `migrations/postgres`, in version order, as
//! `sqlx::migrate!` would (without building sqlx's macro crate and its two drivers a second time
//! for the compiler): a migration file cannot be left out of the binary.
//! A file is named `NNNN_description.sql`; the number is its version.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let mut code = String::new();
    for backend in ["sqlite", "postgres"] {
        let dir = Path::new(&manifest).join("migrations").join(backend);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        writeln!(
            code,
            "pub(super) const {}: &[(i64, &str, &str)] = &[",
            backend.to_uppercase()
        )
        .expect("writing to a string");
        for file in files {
            let stem = file
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("a UTF-8 file name");
            let (version, description) = stem
                .split_once('_')
                .unwrap_or_else(|| panic!("{stem}: name migrations NNNN_description.sql"));
            let version: i64 = version
                .parse()
                .unwrap_or_else(|_| panic!("{stem}: a migration's name starts with its version"));
            writeln!(
                code,
                "    ({version}, {:?}, include_str!({:?})),",
                description.replace('_', " "),
                file.display().to_string()
            )
            .expect("writing to a string");
        }
        code.push_str("];\n");
    }
    std::fs::write(Path::new(&out).join("migrations.rs"), code).expect("writing migrations.rs");
}
