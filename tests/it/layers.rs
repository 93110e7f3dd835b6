//! The shape of the code, checked on its sources: no module of a crate reaches, through the
//! modules it uses, back to itself; no source file is over 600 lines; the API's SQL lives in
//! its store layer only. Each rule names the files that break it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | "node_modules" | ".git") {
                    todo.push(path);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The source directory of every crate of the workspace.
fn crate_sources() -> Vec<PathBuf> {
    let root = workspace();
    let mut dirs = vec![root.join("src")];
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.join("Cargo.toml").is_file() && path.join("src").is_dir() {
            dirs.push(path.join("src"));
        }
    }
    dirs.sort();
    dirs
}

/// `source` without comments, string and character literals, and without what follows the
/// first `#[cfg(test)]` (tests may reach anywhere).
fn code_of(source: &str) -> String {
    let source = source.split("#[cfg(test)]").next().unwrap_or_default();
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&chars, i) {
            // A raw string: r"…", r#"…"#, …
            let mut hashes = 0;
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3; // 'x'
        } else if c == '\'' && next == Some('\\') {
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1; // '\n', '\u{..}'
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// The top-level modules of the crate that `code` names through `crate::`.
fn modules_named(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for part in code.split("crate::").skip(1) {
        let part = part.trim_start();
        if let Some(group) = part.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the names at the group's top level.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            out.insert(ident(item.trim()));
        } else {
            out.insert(ident(part));
        }
    }
    out.remove("");
    out
}

/// The module graph of the crate whose sources are in `src`: top-level module → the modules it
/// names, and for each edge the files that name it.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn module_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for file in rust_files(src) {
        let rel = file
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        if matches!(top.as_str(), "lib" | "main") || rel.starts_with("bin/") {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        let uses = graph.entry(top.clone()).or_default();
        for named in modules_named(&code) {
            if named != top {
                uses.entry(named).or_default().insert(rel.clone());
            }
        }
    }
    // Only the crate's own modules (not `crate::SomeReExport`).
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        uses.retain(|m, _| modules.contains(m));
    }
    graph
}

/// A cycle of `graph`, as the path that closes it, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        graph: &Graph,
        at: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == at) {
            let mut cycle = path[start..].to_vec();
            cycle.push(at.to_owned());
            return Some(cycle);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_owned());
        for next in graph.get(at).into_iter().flat_map(|u| u.keys()) {
            if let Some(cycle) = visit(graph, next, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(at.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(graph, m, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_of_a_crate_reaches_back_to_itself() {
    let mut cycles = Vec::new();
    for src in crate_sources() {
        let graph = module_graph(&src);
        if let Some(cycle) = find_cycle(&graph) {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} → {} ({:?})", w[0], w[1], graph[&w[0]][&w[1]]))
                .collect();
            cycles.push(format!("{}: {}", src.display(), steps.join("; ")));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_check_sees_through_comments_strings_and_groups() {
    let code = code_of(
        "use crate::{a, b::{c, d}, e::f};\n// crate::g\nlet s = \"crate::h\"; let r = r#\"crate::i\"#;\n\
         let x = crate::j::k(); /* crate::l */ let q = '\"'; crate::m::n;\n#[cfg(test)]\nuse crate::o;",
    );
    let named: Vec<String> = modules_named(&code).into_iter().collect();
    assert_eq!(named, ["a", "b", "e", "j", "m"]);
    let mut graph = Graph::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")] {
        graph
            .entry(from.into())
            .or_default()
            .insert(to.into(), BTreeSet::new());
        graph.entry(to.into()).or_default();
    }
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
    graph.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn no_source_file_is_over_600_lines() {
    let root = workspace();
    let long: Vec<String> = rust_files(&root)
        .into_iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(&f).ok()?.lines().count();
            (lines > 600).then(|| format!("{} ({lines})", f.strip_prefix(&root).unwrap().display()))
        })
        .collect();
    assert!(long.is_empty(), "over 600 lines: {long:?}");
}

#[test]
fn the_api_writes_sql_only_in_its_store() {
    let src = workspace().join("api/src");
    let outside: Vec<String> = rust_files(&src)
        .into_iter()
        .filter(|f| !f.starts_with(src.join("store")))
        .filter(|f| {
            let code = code_of(&std::fs::read_to_string(f).unwrap());
            ["sqlx::query", "query_as(", "query_scalar("]
                .iter()
                .any(|q| code.contains(q))
        })
        .map(|f| f.strip_prefix(&src).unwrap().display().to_string())
        .collect();
    assert!(outside.is_empty(), "SQL outside api/src/store: {outside:?}");
}

#[test]
fn the_api_core_builds_no_tls_stack_and_no_mail_client() {
    let manifest = std::fs::read_to_string(workspace().join("api/Cargo.toml")).unwrap();
    let normal = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap();
    for heavy in [
        "lettre",
        "rustls",
        "hyper-rustls",
        "webpki-roots",
        "tokio-rustls",
    ] {
        assert!(
            !normal
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{heavy}."))
                    || l.trim_start().starts_with(&format!("{heavy} "))),
            "api depends on {heavy}: delivery belongs in parkflow-delivery"
        );
    }
}

/// The API's layers and what each may name (ARCHITECTURE.md "Layers"): `domain` names no other
/// module and no framework (no IO: no sqlx, axum or tokio); `store` and `services` never name
/// the HTTP edge or axum; only `http` knows status codes and the wire envelope.
#[test]
fn the_api_layers_call_downwards_only() {
    let src = workspace().join("api/src");
    let mut broken = Vec::new();
    for file in rust_files(&src) {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let layer = rel.split('/').next().unwrap().trim_end_matches(".rs");
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        let named = modules_named(&code);
        let (may_name, frameworks): (&[&str], &[&str]) = match layer {
            "domain" => (&["domain"], &["sqlx", "axum", "tokio", "StatusCode"]),
            "store" | "services" => (&[], &["axum", "StatusCode"]),
            _ => continue,
        };
        if layer == "domain" {
            for m in named.iter().filter(|m| !may_name.contains(&m.as_str())) {
                broken.push(format!("{rel} names crate::{m}"));
            }
        } else if named.contains("http") {
            broken.push(format!("{rel} names crate::http"));
        }
        for f in frameworks {
            if code.contains(&format!("{f}::")) || code.contains(&format!("use {f}")) {
                broken.push(format!("{rel} uses {f}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "layer rules broken:\n{}",
        broken.join("\n")
    );
}

/// The outbox table is spelled by the outbox crate alone (its DDL is a migration of the API):
/// no other crate's code reads or writes it by name.
#[test]
fn the_outbox_table_is_named_in_one_module() {
    let root = workspace();
    let mut outside = Vec::new();
    for src in crate_sources() {
        if src == root.join("outbox/src") {
            continue;
        }
        for file in rust_files(&src) {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let upper = code.to_uppercase();
            let names_it = ["FROM OUTBOX", "INTO OUTBOX", "UPDATE OUTBOX", "JOIN OUTBOX"]
                .iter()
                .any(|sql| {
                    upper.match_indices(sql).any(|(i, m)| {
                        // `outbox` itself, not `outbox_…` or `outboxes`.
                        !upper[i + m.len()..]
                            .chars()
                            .next()
                            .is_some_and(|c| c.is_alphanumeric() || c == '_')
                    })
                });
            if names_it {
                outside.push(file.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    assert!(
        outside.is_empty(),
        "the outbox table named outside parkflow-outbox: {outside:?}"
    );
}
