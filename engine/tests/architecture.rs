//! The architecture's rules, checked on every build: which crate may depend on which (from
//! `cargo metadata`), no import cycle between the engine's modules but a dispatcher's with its
//! handlers, and pipeline functions short enough to read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const FAKES: [&str; 3] = ["fake-exchange", "fake-imap", "fake-target"];

/// Each workspace crate's normal (non-dev, non-build) dependencies on other workspace crates.
fn workspace_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let members: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .filter(|n| members.contains(n))
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

#[test]
fn the_engine_never_depends_on_a_fake_and_no_fake_on_another() {
    let deps = workspace_dependencies();
    let engine = &deps["mailmig-engine"];
    for fake in FAKES {
        assert!(
            !engine.contains(fake),
            "the engine depends on the test double {fake}: {engine:?}"
        );
        let others: Vec<_> = deps[fake]
            .iter()
            .filter(|d| FAKES.contains(&d.as_str()) || d.as_str() == "mailmig-engine")
            .collect();
        assert!(
            others.is_empty(),
            "{fake} depends on {others:?}; fakes stand alone"
        );
    }
    assert!(
        !engine.contains("mailmig-harness"),
        "the harness wires the engine to the fakes, not the reverse"
    );
    for neutral in ["mailmig-model", "mailmig-xml"] {
        assert!(
            deps[neutral].is_empty(),
            "the neutral {neutral} depends on no workspace crate: {:?}",
            deps[neutral]
        );
    }
}

/// A source file's module path: `lib.rs` is ``, `a/mod.rs` and `a.rs` are `a`, `a/b.rs` is
/// `a::b`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its test module (which goes last).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn parent(module: &str) -> String {
    module.rsplit_once("::").map_or("", |(p, _)| p).to_string()
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}::{name}")
    }
}

/// Every module a file's paths (`crate::`, `super::`, `self::`) name, resolved to the longest
/// prefix that is a module; the crate root's re-exports are followed to their module.
fn references(
    module: &str,
    code: &str,
    modules: &BTreeSet<String>,
    reexports: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = code.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < code.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &code[i..];
        let Some(kw) = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|k| rest.starts_with(k))
        else {
            i += 1;
            continue;
        };
        if i > 0 && (is_ident(bytes[i - 1]) || bytes[i - 1] == b':') {
            i += 1;
            continue;
        }
        let mut base = match kw {
            "crate::" => String::new(),
            "super::" => parent(module),
            _ => module.to_string(),
        };
        let mut j = i + kw.len();
        // Further `super::` steps, then plain segments.
        while code[j..].starts_with("super::") {
            base = parent(&base);
            j += "super::".len();
        }
        let mut segments = Vec::new();
        loop {
            let start = j;
            while j < code.len() && is_ident(bytes[j]) {
                j += 1;
            }
            if j == start {
                break;
            }
            segments.push(code[start..j].to_string());
            if code[j..].starts_with("::") && !code[j + 2..].starts_with('{') {
                j += 2;
            } else {
                break;
            }
        }
        let mut names = vec![segments];
        if code[j..].starts_with("::{") {
            let end = code[j..].find('}').map_or(code.len(), |e| j + e);
            let prefix = names.pop().unwrap();
            for item in code[j + 3..end].split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                let first = first.split_whitespace().next().unwrap_or("");
                if !first.is_empty() {
                    let mut path = prefix.clone();
                    path.push(first.to_string());
                    names.push(path);
                }
            }
            j = end;
        }
        for path in names {
            let mut resolved = base.clone();
            for (n, seg) in path.iter().enumerate() {
                let next = join(&resolved, seg);
                if modules.contains(&next) {
                    resolved = next;
                } else {
                    if n == 0
                        && resolved.is_empty()
                        && let Some(m) = reexports.get(seg)
                    {
                        resolved = m.clone();
                    }
                    break;
                }
            }
            if resolved != module && !resolved.is_empty() {
                out.insert(resolved);
            }
        }
        i = j.max(i + 1);
    }
    out
}

/// A cycle in `edges`, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if !state.contains_key(n.as_str())
            && let Some(c) = visit(n, edges, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

fn engine_sources() -> (PathBuf, Vec<PathBuf>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    (src, files)
}

fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let (src, files) = engine_sources();
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let reexports: BTreeMap<String, String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub use "))
        .filter_map(|l| {
            let (m, item) = l.trim_end_matches(';').split_once("::")?;
            Some((item.rsplit("::").next()?.to_string(), m.to_string()))
        })
        .collect();
    files
        .iter()
        .map(|f| {
            let module = module_of(&src, f);
            let text = std::fs::read_to_string(f).unwrap();
            let refs = references(&module, &code(&text), &modules, &reexports);
            (module, refs)
        })
        .filter(|(m, _)| !m.is_empty())
        .collect()
}

#[test]
fn the_engine_modules_form_no_import_cycle() {
    let graph = module_graph();
    // Between top-level modules (layers), no cycle at all.
    let top = |m: &str| m.split("::").next().unwrap().to_string();
    let mut layers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, refs) in &graph {
        let entry = layers.entry(top(m)).or_default();
        entry.extend(refs.iter().map(|r| top(r)).filter(|r| *r != top(m)));
    }
    assert_eq!(
        find_cycle(&layers),
        None,
        "an import cycle between the engine's layers: {layers:#?}"
    );
    // Inside a layer, a module and its parent (a dispatcher and its handlers) may use each
    // other; nothing else may go round.
    let mut files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, refs) in &graph {
        let kept = refs
            .iter()
            .filter(|r| parent(m) != **r && parent(r) != *m)
            .cloned()
            .collect();
        files.insert(m.clone(), kept);
    }
    assert_eq!(find_cycle(&files), None, "an import cycle between modules");
}

#[test]
fn the_cycle_check_sees_cycles() {
    // The checker itself, on a made-up graph: a -> b -> c -> a.
    let modules: BTreeSet<String> = ["a", "b", "c", "c::d"].map(String::from).into();
    let none = BTreeMap::new();
    let refs = references("c::d", "use super::super::a::X;", &modules, &none);
    assert_eq!(refs, ["a".to_string()].into());
    let refs = references("b", "use crate::c::{d::Y, Z};\n", &modules, &none);
    assert_eq!(refs, ["c", "c::d"].map(String::from).into());
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_string()].into());
    g.insert("b".into(), ["c".to_string()].into());
    g.insert("c".into(), ["a".to_string()].into());
    assert!(find_cycle(&g).is_some());
    g.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&g), None);
}

/// (file, function, lines) of every function in `dir` longer than `max` lines.
fn long_functions(dir: &Path, max: usize) -> Vec<(String, String, usize)> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let is_fn = [
                "fn ",
                "pub fn ",
                "async fn ",
                "pub async fn ",
                "pub(super) fn ",
            ]
            .iter()
            .chain(&[
                "pub(super) async fn ",
                "pub(crate) fn ",
                "pub(crate) async fn ",
            ])
            .any(|p| t.starts_with(p));
            if !is_fn {
                continue;
            }
            let indent = line.len() - t.len();
            let close = format!("{}}}", " ".repeat(indent));
            let Some(len) = lines[i..].iter().position(|l| *l == close) else {
                continue; // a declaration without a body
            };
            if len + 1 > max {
                let name = t.split('(').next().unwrap_or(t).to_string();
                out.push((f.display().to_string(), name, len + 1));
            }
        }
    }
    out
}

#[test]
fn pipeline_functions_stay_short() {
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pipeline");
    let long = long_functions(&pipeline, 100);
    assert!(long.is_empty(), "functions over 100 lines: {long:#?}");
    // The measure itself: the whole pipeline has functions of more than 20 lines.
    assert!(!long_functions(&pipeline, 20).is_empty());
}
