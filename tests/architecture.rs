//! Architecture guard: keeps `src/` layered (imports point down or sideways) and free of import circles.
//!
//! The check reads every file under `src/` as plain text (no cargo tooling) and collects every module
//! path it names outside comments and string/char literals: `crate::…` (grouped uses such as
//! `use crate::{a::b, c::{d, e}}` expanded), `super::…` and `self::…` (resolved against the module the
//! text sits in, inline `mod tests { … }` included). A path is resolved to the longest module prefix that
//! is a file. Then:
//!
//! 1. every top-level module under `src/` must be on a floor of [`LAYERS`] (`lib.rs`, `main.rs` exempt);
//! 2. a file may name modules on its own floor or below, never a higher floor;
//! 3. files must not import each other in a circle (a module naming its own descendants is the module
//!    tree, not an import, and is left out of the graph).
//!
//! Reading a failure: all problems are listed at once, one per line, e.g.
//! `src/core/tokens.rs:31 imports crate::actors::Tokens: floor 2 (core) may not import floor 4 (actors)`.
//! Fix it by moving the code down, or by inverting the dependency (a trait or a parameter owned by the
//! lower floor); change [`LAYERS`] only when the layering itself is wrong. A circle lists its files and
//! the import lines that close it: break one of them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Floors, bottom to top: a file may import modules on its own floor and below.
const LAYERS: &[&[&str]] = &[
    // 0: hashing, random tokens, secret newtypes
    &["secret"],
    // 1: typed settings, loading, validation
    &["config"],
    // 2: ground floor: clock, model + storage key schema, store trait, JWT and keys, OAuth services; no actix
    &["core"],
    // 3: Redis / Vault backends, guarded outbound fetches, the identity-provider client
    &["storage", "fetch", "upstream"],
    // 4: thin adapters over core services, storage supervisor
    &["actors"],
    // 5: handles every handler shares
    &["state"],
    // 6: HTTP plumbing shared by handlers: error responses, pages, extractors
    &["web"],
    // 7: HTTP handlers
    &["oauth", "proxy", "info", "admin"],
    // 8: wiring
    &["startup"],
];

fn floor_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|floor| floor.contains(&top))
}

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// Blanks comments and string/char literals with spaces; newlines stay, so offsets and lines stay valid.
fn strip(src: &str) -> Vec<char> {
    let c: Vec<char> = src.chars().collect();
    let mut out = c.clone();
    let mut i = 0;
    while i < c.len() {
        let word_start = i == 0 || !is_ident(c[i - 1]);
        let end = if c[i..].starts_with(&['/', '/']) {
            c[i..].iter().position(|&ch| ch == '\n').map_or(c.len(), |n| i + n)
        } else if c[i..].starts_with(&['/', '*']) {
            let (mut depth, mut j) = (1, i + 2); // block comments nest
            while depth > 0 && j < c.len() {
                let (open, close) = (c[j..].starts_with(&['/', '*']), c[j..].starts_with(&['*', '/']));
                depth += i32::from(open) - i32::from(close);
                j += if open || close { 2 } else { 1 };
            }
            j
        } else if let Some(end) = raw_string_end(&c, i).filter(|_| word_start) {
            end
        } else if c[i] == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            j + 1
        } else if c[i] == '\'' && c.get(i + 1) == Some(&'\\') {
            // '\n', '\'', '\u{1F600}': runs to the next quote after the escaped character.
            (i + 3..c.len()).find(|&j| c[j] == '\'').map_or(c.len(), |j| j + 1)
        } else if c[i] == '\'' && c.get(i + 2) == Some(&'\'') {
            i + 3 // 'x'; a lifetime or label ('a, 'static) has no closing quote there
        } else {
            i += 1;
            continue;
        };
        let end = end.min(c.len());
        out[i..end].iter_mut().filter(|ch| **ch != '\n').for_each(|ch| *ch = ' ');
        i = end;
    }
    out
}

/// If a raw string (`r"…"`, `r#"…"#`, `br##"…"##`) starts at `i`, where it ends (exclusive).
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut j = i + usize::from(c[i] == 'b');
    if c.get(j) != Some(&'r') {
        return None;
    }
    let hashes = c[j + 1..].iter().take_while(|&&ch| ch == '#').count();
    j += 1 + hashes;
    if c.get(j) != Some(&'"') {
        return None;
    }
    let close: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
    Some((j + 1..c.len()).find(|&k| c[k..].starts_with(&close)).map_or(c.len(), |k| k + close.len()))
}

fn skip_ws(c: &[char], i: usize) -> usize {
    (i..c.len()).find(|&j| !c[j].is_whitespace()).unwrap_or(c.len().max(i))
}

fn ident_at(c: &[char], i: usize) -> (String, usize) {
    let end = (i..c.len()).find(|&j| !is_ident(c[j])).unwrap_or(c.len());
    (c[i..end].iter().collect(), end)
}

/// True when `::` (not a turbofish `::<`) follows at `i`, whitespace allowed.
fn path_sep(c: &[char], i: usize) -> Option<usize> {
    let i = skip_ws(c, i);
    (c[i.min(c.len())..].starts_with(&[':', ':']) && c.get(skip_ws(c, i + 2)) != Some(&'<')).then_some(i + 2)
}

/// A module path named in a file: absolute segments (without `crate`) and the offset of its last segment.
#[derive(Debug)]
struct Ref {
    path: Vec<String>,
    at: usize,
}

/// Parses what follows `prefix::` at `i` (a segment, `{group}` or `*`); pushes one `Ref` per leaf.
fn tail(c: &[char], i: usize, prefix: &[String], out: &mut Vec<Ref>) -> usize {
    let i = skip_ws(c, i);
    match c.get(i) {
        Some('{') => {
            let mut j = i + 1;
            loop {
                j = skip_ws(c, j);
                match c.get(j) {
                    None => return j,
                    Some('}') => return j + 1,
                    Some(',') => j += 1,
                    Some(_) => {
                        let k = tail(c, j, prefix, out);
                        if k == j {
                            return j; // not a path: give up on this group
                        }
                        j = skip_ws(c, k);
                        if ident_at(c, j).0 == "as" {
                            j = ident_at(c, skip_ws(c, j + 2)).1;
                        }
                    }
                }
            }
        }
        Some('*') => {
            out.push(Ref { path: prefix.to_vec(), at: i });
            i + 1
        }
        Some(&ch) if is_ident(ch) => {
            let (word, end) = ident_at(c, i);
            if word == "self" {
                out.push(Ref { path: prefix.to_vec(), at: i });
                return end;
            }
            let path = [prefix, &[word]].concat();
            match path_sep(c, end) {
                Some(next) => tail(c, next, &path, out),
                None => {
                    out.push(Ref { path, at: i });
                    end
                }
            }
        }
        _ => i,
    }
}

/// Every module path named in the stripped text `c` of a file whose module is `module`.
fn refs(c: &[char], module: &[String]) -> Vec<Ref> {
    let mut inline: Vec<(String, usize, usize)> = Vec::new(); // inline `mod name { … }`: name, braces
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if !is_ident(c[i]) || (i > 0 && is_ident(c[i - 1])) {
            i += 1;
            continue;
        }
        let (word, end) = ident_at(c, i);
        let mut here = module.to_vec();
        here.extend(inline.iter().filter(|(_, o, e)| *o < i && i < *e).map(|(n, ..)| n.clone()));
        let (mut base, mut next) = match (word.as_str(), path_sep(c, end)) {
            ("mod", _) => {
                let (name, name_end) = ident_at(c, skip_ws(c, end));
                let open = skip_ws(c, name_end);
                if !name.is_empty() && c.get(open) == Some(&'{') {
                    let mut depth = 0;
                    let close = (open..c.len()).find(|&j| {
                        depth += i32::from(c[j] == '{') - i32::from(c[j] == '}');
                        depth == 0
                    });
                    inline.push((name, open, close.unwrap_or(c.len())));
                }
                (None, end)
            }
            ("crate", Some(next)) => (Some(Vec::new()), next),
            ("self", Some(next)) => (Some(here), next),
            ("super", Some(next)) => (here.pop().map(|_| here), next),
            _ => (None, end),
        };
        while let Some(b) = base.as_mut() {
            let (word, after) = ident_at(c, skip_ws(c, next));
            if word != "super" {
                break;
            }
            base = b.pop().map(|_| b.clone()); // super::super::…
            next = path_sep(c, after).unwrap_or(after);
        }
        i = match base {
            Some(base) => tail(c, next, &base, &mut out).max(end),
            None => end,
        };
    }
    out
}

/// Module path of a file relative to `src/`: `core/tokens.rs` -> core::tokens, `actors/mod.rs` -> actors.
fn module_of(rel: &str) -> Option<Vec<String>> {
    let stem = rel.strip_suffix(".rs")?;
    if stem == "lib" || stem == "main" || stem.starts_with("bin/") {
        return None;
    }
    Some(stem.strip_suffix("/mod").unwrap_or(stem).split('/').map(String::from).collect())
}

/// Files that import each other in a circle: strongly connected components of more than one node.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let reach = |from: &String| {
        let (mut seen, mut todo) = (BTreeSet::new(), vec![from]);
        while let Some(n) = todo.pop() {
            todo.extend(graph.get(n).into_iter().flatten().filter(|m| seen.insert((*m).clone())));
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|n| (n, reach(n))).collect();
    let mut found: Vec<BTreeSet<String>> = Vec::new();
    for (n, r) in &reach {
        let back = |m: &&String| reach.get(m).is_some_and(|rm| rm.contains(*n));
        let scc: BTreeSet<String> = r.iter().filter(back).cloned().chain([(*n).clone()]).collect();
        if scc.len() > 1 && !found.contains(&scc) {
            found.push(scc);
        }
    }
    found
}

/// All problems in `files` (path relative to `src/`, text): unknown modules, upward imports, circles.
fn check(files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let modules: BTreeMap<String, &str> =
        files.iter().filter_map(|(rel, _)| Some((module_of(rel)?.join("::"), rel.as_str()))).collect();
    let mut unknown = BTreeSet::new();
    for (module, rel) in &modules {
        let top = module.split("::").next().unwrap_or_default();
        if floor_of(top).is_none() && unknown.insert(top) {
            let hint = "add it to LAYERS in tests/architecture.rs";
            problems.push(format!("src/{rel}: module `{top}` is not in the layer table: {hint}"));
        }
    }
    let floor = |m: &str| m.split("::").next().and_then(|top| Some((floor_of(top)?, top.to_string())));
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Each edge of the graph, with where it is first seen: "src/file.rs:line imports crate::path".
    let mut first_use: BTreeMap<(String, String), String> = BTreeMap::new();
    for (rel, text) in files {
        let Some(module) = module_of(rel) else { continue };
        let from = module.join("::");
        let c = strip(text);
        for r in refs(&c, &module) {
            let target =
                (1..=r.path.len()).rev().map(|n| r.path[..n].join("::")).find(|m| modules.contains_key(m));
            let Some(to) = target else { continue }; // an item of lib.rs or the crate root
            let line = c[..r.at].iter().filter(|&&ch| ch == '\n').count() + 1;
            let seen = format!("src/{rel}:{line} imports crate::{}", r.path.join("::"));
            if let (Some((nf, nm)), Some((tf, tm))) = (floor(&from), floor(&to)) {
                if tf > nf {
                    problems.push(format!("{seen}: floor {nf} ({nm}) may not import floor {tf} ({tm})"));
                }
            }
            if to != from && !to.starts_with(&format!("{from}::")) {
                graph.entry(from.clone()).or_default().insert(to.clone());
                first_use.entry((from.clone(), to)).or_insert(seen);
            }
        }
    }
    for scc in circles(&graph) {
        let names: Vec<String> = scc.iter().map(|m| format!("src/{}", modules[m.as_str()])).collect();
        problems.push(format!("circle between {} files: {}", scc.len(), names.join(", ")));
        for ((from, to), seen) in &first_use {
            if scc.contains(from) && scc.contains(to) {
                problems.push(format!("    {seen}"));
            }
        }
    }
    problems
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for path in entries.map(|e| e.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())).path()) {
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"));
            out.push((rel, text));
        }
    }
}

#[test]
fn src_is_layered_without_circles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let problems = check(&files);
    let summary = format!("{} architecture problem(s), see tests/architecture.rs", problems.len());
    assert!(problems.is_empty(), "{summary}:\n{}", problems.join("\n"));
}

mod checker {
    use super::*;

    fn paths(src: &str, module: &[&str]) -> Vec<String> {
        let module: Vec<String> = module.iter().map(|s| s.to_string()).collect();
        refs(&strip(src), &module).into_iter().map(|r| r.path.join("::")).collect()
    }

    #[test]
    fn expands_grouped_uses() {
        let src = "use crate::{a::b, c::{d, e as f, self}, g::*};\n\
                   pub use crate::h::I;\n\
                   fn x() { crate::j::k::<u8>(); }";
        assert_eq!(paths(src, &["m"]), ["a::b", "c::d", "c::e", "c", "g", "h::I", "j::k"]);
    }

    #[test]
    fn ignores_comments_strings_and_chars_but_not_lifetimes() {
        let src = r####"
            // use crate::line::X;
            /* crate::block /* nested */ crate::still_block */
            /// [`Y`](crate::doc::Y)
            const S: &str = "crate::string \" crate::escaped";
            const R: &str = r#"crate::raw "quoted" still"#;
            const B: &[u8] = br##"crate::raw_bytes"#"##;
            fn f<'a>(x: &'a str, q: char) -> bool { q == '"' || q == '\'' || x == "'" }
            use crate::real::Z;
        "####;
        assert_eq!(paths(src, &["m"]), ["real::Z"]);
        let stripped: String = strip(src).into_iter().collect();
        assert!(stripped.contains("fn f<'a>(x: &'a str"), "lifetimes must survive: {stripped}");
        assert_eq!(stripped.lines().count(), src.lines().count());
    }

    #[test]
    fn resolves_super_and_self() {
        assert_eq!(paths("use super::model::X;", &["core", "tokens"]), ["core::model::X"]);
        assert_eq!(paths("use super::config::Y;", &["core"]), ["config::Y"]);
        assert_eq!(paths("use super::super::super::secret::S;", &["core", "model", "keys"]), ["secret::S"]);
        assert_eq!(
            paths("use self::keys::K; use super::{a, b::C};", &["core", "model"]),
            ["core::model::keys::K", "core::a", "core::b::C"]
        );
        let with_tests = "fn f() {}\n#[cfg(test)]\nmod tests {\n use super::*;\n\
                          mod deep { use super::super::g; }\n}\nuse super::h;";
        assert_eq!(paths(with_tests, &["core", "tokens"]), ["core::tokens", "core::tokens::g", "core::h"]);
        assert!(paths("fn f(&self) { Self::g(self.x); pub(super) fn h() {} }", &["core"]).is_empty());
    }

    #[test]
    fn finds_circles() {
        let graph = |edges: &[(&str, &str)]| {
            let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (a, b) in edges {
                g.entry(a.to_string()).or_default().insert(b.to_string());
            }
            g
        };
        let found = circles(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("d", "a"), ("e", "d")]));
        assert_eq!(found, [BTreeSet::from(["a", "b", "c"].map(String::from))]);
        assert!(circles(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
    }

    #[test]
    fn reports_unknown_modules_upward_imports_and_circles() {
        let files: Vec<(String, String)> = [
            ("lib.rs", "pub mod core; use crate::startup::X;"),
            ("core/mod.rs", "pub mod model;\npub mod tokens;\npub use self::tokens::Tokens;"),
            ("core/model.rs", "pub struct Client;"),
            ("core/tokens.rs", "use super::{model::Client, Clock};\nuse crate::{secret::S, actors::Tokens};"),
            ("actors/mod.rs", "use crate::core::model::keys::client;"),
            ("storage/mod.rs", "use crate::state::Clock;"),
            ("state.rs", "use crate::storage::Store;"),
            ("web_util.rs", "use crate::secret::S;"),
        ]
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
        assert_eq!(
            check(&files),
            [
                "src/web_util.rs: module `web_util` is not in the layer table: \
                 add it to LAYERS in tests/architecture.rs",
                "src/core/tokens.rs:2 imports crate::actors::Tokens: \
                 floor 2 (core) may not import floor 4 (actors)",
                "src/storage/mod.rs:1 imports crate::state::Clock: \
                 floor 3 (storage) may not import floor 5 (state)",
                "circle between 2 files: src/state.rs, src/storage/mod.rs",
                "    src/state.rs:1 imports crate::storage::Store",
                "    src/storage/mod.rs:1 imports crate::state::Clock",
            ]
        );
    }
}
