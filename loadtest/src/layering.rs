//! Holds the layering of `# Layout` (lib.rs): every `crate::` and `super::` path in `src/**` —
//! `use` lines, `pub use` re-exports and paths inline in code alike, doc comments excepted — may
//! name only its own layer, the layers below it, and the leaves its layer may use.

use std::path::{Path, PathBuf};

/// Each layer (a top-level module of the crate) and the modules it may name, its own aside. The
/// order is bottom up; `error` and `net` are leaves.
const RULES: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("net", &[]),
    ("schema", &[]),
    ("cli", &["schema"]),
    // `plan` builds the run's TLS client once (`net::TlsClient`), so a bad `--ca-cert` is a usage
    // error before any socket opens.
    ("plan", &["error", "net", "schema", "cli"]),
    ("measure", &["error", "net", "schema", "cli", "plan"]),
    (
        "session",
        &["error", "net", "schema", "cli", "plan", "measure"],
    ),
    (
        "report",
        &[
            "error", "net", "schema", "cli", "plan", "measure", "session",
        ],
    ),
    (
        "jobs",
        &[
            "error", "net", "schema", "cli", "plan", "measure", "session", "report",
        ],
    ),
];

/// Files that may name any layer: the crate root and the binary sit above every layer, and this
/// check quotes forbidden paths in its own test.
const EXEMPT: &[&str] = &["lib.rs", "main.rs", "layering.rs"];

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The module path of `file` (relative to `src`): `session/publisher/lane.rs` →
/// `[session, publisher, lane]`; a `mod.rs` is its folder. A `#[path]` test file
/// (`frame_tests.rs`) counts as its parent's child, which is what `super::` resolves against.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a line: nothing of a comment (doc comments included) and nothing inside a string
/// or a character literal; what is dropped becomes spaces, so offsets keep their place.
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_str => {
                chars.next();
                out.push_str("  ");
                continue;
            }
            '"' => in_str = !in_str,
            '/' if !in_str && chars.peek() == Some(&'/') => break,
            // `'"'` or `'\''`: a character literal, not the start of a string (a lifetime has
            // no closing quote and is kept).
            '\'' if !in_str => {
                let mut ahead = chars.clone();
                let literal = match (ahead.next(), ahead.next(), ahead.next()) {
                    (Some('\\'), Some(_), Some('\'')) => 3,
                    (Some(_), Some('\''), _) => 2,
                    _ => 0,
                };
                for _ in 0..literal {
                    chars.next();
                }
                out.push_str(&" ".repeat(literal + 1));
                continue;
            }
            _ => {}
        }
        out.push(if in_str || c == '"' { ' ' } else { c });
    }
    out
}

/// The first module each path in `code` reaches from the crate root, with its offset and the path
/// as written:
/// `crate::plan::Plan` → `plan`; `super::super::x` from `session/publisher/lane` → `session`;
/// `use crate::{plan::Plan, schema::Report}` → `plan` and `schema`.
fn targets(code: &str, here: &[String]) -> Vec<(usize, String, String)> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let ident_end = |from: usize| {
        code[from..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(code.len(), |n| from + n)
    };
    let mut i = 0;
    while i < code.len() {
        let at_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let rest = &code[i..];
        let (mut base, mut j): (Vec<String>, usize) = if at_word && rest.starts_with("crate::") {
            (Vec::new(), i + "crate::".len())
        } else if at_word && rest.starts_with("super::") {
            let mut base = here.to_vec();
            let mut j = i;
            while code[j..].starts_with("super::") {
                base.pop();
                j += "super::".len();
            }
            (base, j)
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        // `self::` after a `super::` chain stays where it is.
        while code[j..].starts_with("self::") {
            j += "self::".len();
        }
        let written_end = ident_end(j).max(j);
        if base.is_empty() && code[j..].starts_with('{') {
            // A braced group at the root: every top-level name in it.
            let mut depth = 0;
            let mut start = j + 1;
            for (k, c) in code[j..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' | ',' if depth == 1 => {
                        let name = code[start..j + k].trim();
                        let first = name.split("::").next().unwrap_or("").trim();
                        if !first.is_empty() && first != "self" {
                            let at =
                                start + (code[start..].len() - code[start..].trim_start().len());
                            found.push((at, first.to_owned(), format!("crate::{name}")));
                        }
                        start = j + k + 1;
                        if c == '}' {
                            break;
                        }
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
        } else if base.is_empty() {
            let first = &code[j..written_end];
            if !first.is_empty() {
                found.push((i, first.to_owned(), code[i..written_end].to_owned()));
            }
        } else {
            base.truncate(1);
            if let Some(first) = base.pop() {
                found.push((i, first, code[i..written_end].to_owned()));
            }
        }
        i = written_end.max(i + 1);
    }
    found
}

/// Every forbidden path under `src`, as `file:line: path (layer may not name target)`.
fn violations(src: &Path) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap_or(&file).to_path_buf();
        if rel.components().count() == 1 && EXEMPT.iter().any(|e| rel == Path::new(e)) {
            continue;
        }
        let here = module_path(&rel);
        let Some(layer) = here.first() else { continue };
        let Some((_, allowed)) = RULES.iter().find(|(name, _)| name == layer) else {
            out.push(format!(
                "{}: the module {layer} is in no layer (add it to RULES and # Layout)",
                rel.display()
            ));
            continue;
        };
        // Scanned whole, so a `use crate::{…}` spread over lines is read as one.
        let text = std::fs::read_to_string(&file)?;
        let code: Vec<String> = text.lines().map(code_of).collect();
        let code = code.join("\n");
        for (at, target, written) in targets(&code, &here) {
            if &target != layer && !allowed.contains(&target.as_str()) {
                let line = code[..at].matches('\n').count() + 1;
                let written = written.split_whitespace().collect::<Vec<_>>().join(" ");
                out.push(format!(
                    "{}:{line}: {written} ({layer} may not name {target})",
                    rel.display()
                ));
            }
        }
    }
    Ok(out)
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_layer_names_only_the_layers_below_it() {
    let found = violations(&src_dir()).expect("read src");
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
}

/// Plants one violation of each kind (a `use`, an inline path, a braced `pub use`, a `super::`
/// chain) in scratch copies of four files, beside a doc comment and a string that may name
/// anything; only the scratch copies are scanned, so this test costs the parallel ones little CPU.
#[test]
fn a_planted_violation_is_caught() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let plant = |rel: &str, text: &str| {
        let (from, to) = (src_dir().join(rel), scratch.path().join(rel));
        let mut body = std::fs::read_to_string(from).expect("read");
        body.push_str(text);
        std::fs::create_dir_all(to.parent().expect("a folder")).expect("mkdir");
        std::fs::write(&to, &body).expect("write");
        body.lines().count()
    };
    let n_use = plant("schema/mod.rs", "use crate::plan::Plan;\n");
    let n_inline = plant(
        "plan/limits.rs",
        "fn f() { let _ = crate::session::NoGate; }\n",
    );
    let n_braced = plant(
        "measure/seq.rs",
        "pub use crate::{error::Error, report::render};\n",
    );
    let n_super = plant(
        "session/publisher/lane.rs",
        "use super::super::super::jobs::run;\n",
    );
    plant(
        "cli/commands.rs",
        "/// A doc comment may name [`crate::jobs`].\n",
    );
    plant("net/mod.rs", "const S: &str = \"crate::jobs\";\n");
    let mut found = violations(scratch.path()).expect("scan");
    found.sort();
    let mut expected = [
        format!("schema/mod.rs:{n_use}: crate::plan (schema may not name plan)"),
        format!("plan/limits.rs:{n_inline}: crate::session (plan may not name session)"),
        format!("measure/seq.rs:{n_braced}: crate::report::render (measure may not name report)"),
        format!(
            "session/publisher/lane.rs:{n_super}: super::super::super::jobs (session may not name jobs)"
        ),
    ];
    expected.sort();
    assert_eq!(found, expected, "exactly the planted lines");
}
