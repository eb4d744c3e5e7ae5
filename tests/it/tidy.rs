//! Tidy checks that read the sources: the dependency rule of
//! `docs/ARCHITECTURE.md` ("nothing imports upward") and the log seam
//! ("the log names no ticket; nothing outside the log names a segment").

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each layer of the library and the layers it may import from. A layer
/// may always import from itself.
const LAYERS: &[(&str, &[&str])] = &[
    // The bottom: no crate imports at all.
    ("error", &[]),
    ("progress", &[]),
    ("rng", &[]),
    ("storage", &["error", "rng"]),
    ("log", &["error", "storage", "progress"]),
    ("domain", &["error"]),
    ("state", &["domain", "error"]),
    (
        "snapshot",
        &["state", "domain", "error", "storage", "progress"],
    ),
    ("options", &["log", "storage", "progress", "error"]),
    (
        "engine",
        &[
            "options", "snapshot", "state", "domain", "log", "storage", "progress", "error",
        ],
    ),
    (
        "api",
        &[
            "engine", "options", "snapshot", "state", "domain", "log", "storage", "progress",
            "error",
        ],
    ),
];

/// Bottom-level helpers every layer may use (the one RNG: test code in
/// any layer draws from it).
const EVERYWHERE: &[&str] = &["rng"];

/// Modules above the library's layers (test and fuzz support, the crate
/// root): they may import anything.
const UNRESTRICTED: &[&str] = &["lib", "arbitrary", "fuzzing", "testing"];

/// Files outside `src/log/` that may name the local backend: the ones that
/// choose it (opening a store, inspecting one offline).
const CHOOSE_THE_LOCAL_LOG: &[&str] = &["src/api/store.rs", "src/api/inspect.rs", "src/lib.rs"];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file of the library under `src/` (not the binary's `cli/`,
/// `serve/` or `main.rs`, which use only the public API).
fn library_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src_dir(), &mut files);
    files.retain(|path| {
        let rel = path.strip_prefix(src_dir()).unwrap();
        let top = rel.components().next().unwrap().as_os_str();
        top != "cli" && top != "serve" && top != "main.rs"
    });
    files.sort();
    files
}

/// The layer a file belongs to: its first path component under `src/`.
fn layer_of(path: &Path) -> String {
    let rel = path.strip_prefix(src_dir()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The file's code with comments, doc comments and string literals blanked
/// out (a simple scanner: enough for this codebase's sources).
fn code_only(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if bytes[i] == b'"' {
            out.push(' ');
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}

/// The crate-level modules a file's code names through `crate::…`.
fn crate_imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `crate::{a, b}` groups: take every first segment inside.
        if name.is_empty() && after.starts_with('{') {
            let group: String = after[1..].chars().take_while(|c| *c != '}').collect();
            for item in group.split(',') {
                let first: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !first.is_empty() {
                    found.insert(first);
                }
            }
        } else if !name.is_empty() {
            found.insert(name);
        }
        rest = after;
    }
    found
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let rules: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut violations = Vec::new();
    let mut checked = 0;
    for path in library_files() {
        let layer = layer_of(&path);
        if UNRESTRICTED.contains(&layer.as_str()) {
            continue;
        }
        let Some(allowed) = rules.get(layer.as_str()) else {
            violations.push(format!(
                "{}: layer {layer:?} is not in the table in tests/it/tidy.rs",
                path.display()
            ));
            continue;
        };
        checked += 1;
        let code = code_only(&fs::read_to_string(&path).unwrap());
        for import in crate_imports(&code) {
            if import != layer
                && !allowed.contains(&import.as_str())
                && !EVERYWHERE.contains(&import.as_str())
            {
                violations.push(format!(
                    "{} (layer {layer}) imports crate::{import}",
                    path.strip_prefix(src_dir()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        checked > 20,
        "the walk found the library's files ({checked})"
    );
    assert!(
        violations.is_empty(),
        "imports against the dependency rule of docs/ARCHITECTURE.md:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_log_layer_names_no_ticket_state_change_or_snapshot() {
    let forbidden = ["Ticket", "State", "Change", "Snapshot", "snapshot"];
    let mut violations = Vec::new();
    for path in library_files() {
        if layer_of(&path) != "log" {
            continue;
        }
        let code = code_only(&fs::read_to_string(&path).unwrap());
        for word in code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            // `RandomState` is the standard library's hasher seed.
            if word != "RandomState" && forbidden.iter().any(|f| word.contains(f)) {
                violations.push(format!("{}: {word}", path.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "the log layer names what is above it:\n{}",
        violations.join("\n")
    );
}

#[test]
fn nothing_outside_the_log_layer_names_a_segment_file() {
    let mut violations = Vec::new();
    for path in library_files() {
        let rel = path
            .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if layer_of(&path) == "log" || CHOOSE_THE_LOCAL_LOG.contains(&rel.as_str()) {
            continue;
        }
        let source = fs::read_to_string(&path).unwrap();
        let code = code_only(&source);
        for needle in [
            "log::local",
            "segment_file_name",
            "list_segments",
            "SEGMENT_EXTENSION",
        ] {
            if code.contains(needle) {
                violations.push(format!("{rel}: {needle}"));
            }
        }
        if source.contains("\".wal\"") || source.contains(".wal\")") {
            violations.push(format!("{rel}: a .wal file name"));
        }
    }
    assert!(
        violations.is_empty(),
        "segment files named outside src/log/:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_scanner_sees_imports_and_ignores_comments_and_strings() {
    let code = code_only(
        "use crate::state::State; // crate::engine\n\
         let s = \"crate::api\";\n\
         use crate::{domain::ticket, log};\n",
    );
    let imports = crate_imports(&code);
    assert_eq!(
        imports,
        ["domain", "log", "state"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}
