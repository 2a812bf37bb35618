//! The layout's rules, held by the code (`make lint` runs this file):
//! - no two files of src/ import each other, directly or around a circle;
//! - nothing in `core/` imports anything outside `core/`;
//! - the edge (`params`, `error`, `lightningd/`) imports nothing from `commands/`,
//!   `rebalance/` or `state/`;
//! - no file of src/ is over [`MAX_LINES`] lines before its tests.
//!
//! An import is any `crate::`, `super::` or `self::` path in a file's code before its
//! `#[cfg(test)]` (comments and strings left out), `use` trees with braces expanded. A path
//! names the deepest file it reaches (`crate::core::graph::Scid` -> `src/core/graph.rs`), so
//! a re-export in a `mod.rs` is an import of that `mod.rs`: a child that imports what its
//! `mod.rs` re-exports closes a circle, and must import the sibling that defines it instead.
//! `main.rs` is the binary's root (it reaches the library by its crate name) and is only held
//! to the length rule. A module of tests in a file of its own (`tests.rs`, `tests_*.rs`) is
//! tests: held to none.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Lines a file of src/ may have before its tests.
const MAX_LINES: usize = 600;

/// Files of src/ by path relative to src/ ("core/graph.rs"), with their text.
type Tree = BTreeMap<String, String>;

fn read_tree(dir: &Path) -> Tree {
    fn walk(root: &Path, dir: &Path, out: &mut Tree) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read src/")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p.strip_prefix(root).expect("under src/");
                let rel = rel.to_string_lossy().replace('\\', "/");
                out.insert(
                    rel,
                    std::fs::read_to_string(&p).expect("read a source file"),
                );
            }
        }
    }
    let mut t = Tree::new();
    walk(dir, dir, &mut t);
    t
}

/// The module path a file defines: `core/graph.rs` -> [core, graph], `core/mod.rs` -> [core].
fn module_of(file: &str) -> Vec<String> {
    let mut segs: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if matches!(segs.last().map(String::as_str), Some("mod" | "lib")) {
        segs.pop();
    }
    segs
}

/// The deepest file a module path reaches (`lib.rs` for the crate root).
fn file_of(tree: &Tree, path: &[String]) -> String {
    for n in (1..=path.len()).rev() {
        let base = path[..n].join("/");
        for candidate in [format!("{base}.rs"), format!("{base}/mod.rs")] {
            if tree.contains_key(&candidate) {
                return candidate;
            }
        }
    }
    "lib.rs".into()
}

/// Where a file's own tests start: the first `#[cfg(test)]` over an inline module
/// (`mod tests {`), not one over a declaration of tests kept in a file of their own
/// (`mod tests;`, code that goes on after it).
fn tests_start(text: &str) -> Option<usize> {
    let mut at = 0;
    while let Some(i) = text[at..].find("#[cfg(test)]") {
        let start = at + i;
        let after = text[start + "#[cfg(test)]".len()..].trim_start();
        let decl = after.split('{').next().unwrap_or_default();
        if after.contains('{') && !decl.contains(';') && decl.contains("mod ") {
            return Some(start);
        }
        at = start + 1;
    }
    None
}

/// Lines before a file's own tests.
fn lines_before_tests(text: &str) -> usize {
    let code = match tests_start(text) {
        Some(i) => &text[..i],
        None => text,
    };
    code.lines().count()
}

/// `text` with comments and string/char literals blanked out, and cut where its own tests
/// start (the tests may reach anywhere).
fn code_of(text: &str) -> String {
    let text = match tests_start(text) {
        Some(i) => &text[..i],
        None => text,
    };
    let b = text.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                // Raw string r"..." / r#"..."#.
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                j += 1;
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = (j + close.len()).min(b.len());
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{..}'), or a lifetime ('a): keep lifetimes.
                let lit = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 2..]
                        .iter()
                        .position(|&c| c == b'\'')
                        .map(|p| i + 3 + p)
                } else if b.get(i + 2) == Some(&b'\'') {
                    Some(i + 3)
                } else {
                    None
                };
                match lit {
                    Some(end) => {
                        out.push_str("' '");
                        i = end;
                    }
                    None => {
                        out.push('\'');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Reads a path tree at `code[i..]` (`a::b::{c, d::e}`, `a::*`), expanding groups; returns the
/// paths (segments after the start) and where it ended.
fn read_tree_at(code: &[u8], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let skip_ws = |i: &mut usize| {
        while *i < code.len() && code[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let mut prefix: Vec<String> = Vec::new();
    loop {
        skip_ws(&mut i);
        if code.get(i) == Some(&b'{') {
            i += 1;
            let mut out = Vec::new();
            loop {
                skip_ws(&mut i);
                match code.get(i) {
                    Some(b'}') => {
                        i += 1;
                        break;
                    }
                    Some(b',') => i += 1,
                    None => break,
                    _ => {
                        let (paths, end) = read_tree_at(code, i);
                        if end == i {
                            i += 1; // not a path: step over it
                        } else {
                            i = end;
                        }
                        for p in paths {
                            let mut full = prefix.clone();
                            full.extend(p);
                            out.push(full);
                        }
                    }
                }
            }
            return (out, i);
        }
        let start = i;
        while i < code.len() && is_ident(code[i]) {
            i += 1;
        }
        if i == start {
            // `*`, or the end of the path.
            if code.get(i) == Some(&b'*') {
                i += 1;
            }
            return (vec![prefix], i);
        }
        let seg = String::from_utf8_lossy(&code[start..i]).to_string();
        if seg != "self" {
            prefix.push(seg);
        }
        let save = i;
        skip_ws(&mut i);
        if code[i..].starts_with(b"::") {
            i += 2;
        } else {
            return (vec![prefix], save);
        }
    }
}

/// Every module path `file`'s code names, made absolute.
fn imports(file: &str, text: &str) -> Vec<Vec<String>> {
    let code = code_of(text);
    let b = code.as_bytes();
    let here = module_of(file);
    // Child modules declared here (`mod types;`): a path may start with their names.
    let children: Vec<String> = code
        .split(';')
        .filter_map(|stmt| {
            let words: Vec<&str> = stmt.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "mod")?;
            let name = *words.get(at + 1)?;
            (words.len() == at + 2 && name.bytes().all(is_ident)).then(|| name.to_string())
        })
        .collect();
    // `super` of a file's module: its parent (for `x/mod.rs` the module is x, its parent the root).
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !is_ident(b[i - 1]) && b[i - 1] != b':';
        if !starts_word || !is_ident(b[i]) {
            i += 1;
            continue;
        }
        let rest = &b[i..];
        let (base, len) = if rest.starts_with(b"crate::") {
            (Vec::new(), 7)
        } else if rest.starts_with(b"super::") {
            let mut base = here.clone();
            let mut len = 0;
            while b[i + len..].starts_with(b"super::") {
                base.pop();
                len += 7;
            }
            (base, len)
        } else if rest.starts_with(b"self::") {
            (here.clone(), 6)
        } else if children.iter().any(|c| {
            rest.starts_with(c.as_bytes())
                && !b.get(i + c.len()).copied().is_some_and(is_ident)
                && code[i + c.len()..].trim_start().starts_with("::")
        }) {
            // A path through a child module this file declares (`pub use types::T;`).
            (here.clone(), 0)
        } else {
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            continue;
        };
        let (paths, end) = read_tree_at(b, i + len);
        for p in paths {
            let mut full = base.clone();
            full.extend(p);
            out.push(full);
        }
        i = end.max(i + len);
    }
    out
}

/// A file that holds only a module of tests (`#[cfg(test)] mod tests;` in its parent).
fn is_tests(file: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file);
    name == "tests.rs" || name.starts_with("tests_")
}

/// File -> the files it imports (never itself).
fn edges(tree: &Tree) -> BTreeMap<String, BTreeSet<String>> {
    let mut g = BTreeMap::new();
    for (file, text) in tree {
        let mut to = BTreeSet::new();
        if file != "main.rs" && !is_tests(file) {
            for p in imports(file, text) {
                let target = file_of(tree, &p);
                if &target != file {
                    to.insert(target);
                }
            }
        }
        g.insert(file.clone(), to);
    }
    g
}

/// The import circles: each strongly connected group of two or more files, as one circle
/// through it (a -> b -> ... -> a).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<(Vec<String>, Vec<String>)> {
    // Tarjan's algorithm, iterative enough for a source tree.
    struct S<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        groups: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(s: &mut S<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        for w in s.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.g.contains_key(w) {
                continue;
            }
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                group.push(w);
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.groups.push(group);
            }
        }
    }
    let mut s = S {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        groups: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    // One circle per group: a breadth-first walk inside the group from its first file back to it.
    s.groups
        .iter()
        .map(|group| {
            let inside: BTreeSet<&str> = group.iter().copied().collect();
            let start = group[0];
            let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut found = None;
            while let Some(v) = queue.pop_front() {
                for w in &g[v] {
                    let w = w.as_str();
                    if w == start {
                        found = Some(v);
                        break;
                    }
                    if inside.contains(w) && !prev.contains_key(w) {
                        prev.insert(w, v);
                        queue.push_back(w);
                    }
                }
                if found.is_some() {
                    break;
                }
            }
            let mut circle = vec![start.to_string()];
            let mut v = found.expect("a strongly connected group has a circle");
            let mut back = vec![v];
            while v != start {
                v = prev[v];
                back.push(v);
            }
            back.pop();
            circle.extend(back.into_iter().rev().map(String::from));
            circle.push(start.to_string());
            (group.iter().map(|f| f.to_string()).collect(), circle)
        })
        .collect()
}

/// Every broken rule, one line each.
fn violations(tree: &Tree) -> Vec<String> {
    let g = edges(tree);
    let mut out: Vec<String> = cycles(&g)
        .into_iter()
        .map(|(group, c)| {
            if group.len() + 1 == c.len() {
                format!("import circle: {}", c.join(" -> "))
            } else {
                format!(
                    "import circle among {}: for one, {}",
                    group.join(", "),
                    c.join(" -> ")
                )
            }
        })
        .collect();
    let layer = |f: &str| {
        f.split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_string()
    };
    for (file, to) in &g {
        for t in to {
            let (from_layer, to_layer) = (layer(file), layer(t));
            if from_layer == "core" && to_layer != "core" {
                out.push(format!(
                    "{file} (core) imports {t}: the core imports only the core"
                ));
            }
            if matches!(from_layer.as_str(), "params" | "error" | "lightningd")
                && matches!(to_layer.as_str(), "commands" | "rebalance" | "state")
            {
                out.push(format!(
                    "{file} (the edge) imports {t}: params, error and lightningd/ import nothing from commands/, rebalance/ or state/"
                ));
            }
        }
    }
    for (file, text) in tree.iter().filter(|(f, _)| !is_tests(f)) {
        let before_tests = lines_before_tests(text);
        if before_tests > MAX_LINES {
            out.push(format!(
                "{file} has {before_tests} lines before its tests (at most {MAX_LINES}): split it into named parts"
            ));
        }
    }
    out
}

#[test]
fn src_keeps_its_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let tree = read_tree(&src);
    assert!(
        tree.contains_key("lib.rs"),
        "no src/lib.rs under {}",
        src.display()
    );
    let v = violations(&tree);
    assert!(
        v.is_empty(),
        "the layout's rules are broken:\n  {}",
        v.join("\n  ")
    );
}

#[cfg(test)]
mod checks {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Tree {
        files
            .iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn reads_use_trees_inline_paths_super_and_self() {
        let text = "use crate::core::{graph::{self, Scid}, amount::*};\n\
                    use super::sibling::Thing;\n\
                    fn f() { let x = crate::error::PLUGIN_ERROR; self::g(); }\n\
                    // use crate::commands::x;\n\
                    const S: &str = \"crate::state::y\";\n\
                    #[cfg(test)]\nmod tests { use crate::commands::auto; }";
        let mut got = imports("rebalance/pay.rs", text);
        got.sort();
        let want: Vec<Vec<String>> = vec![
            vec!["core", "amount"],
            vec!["core", "graph"],
            vec!["core", "graph", "Scid"],
            vec!["error", "PLUGIN_ERROR"],
            vec!["rebalance", "pay", "g"],
            vec!["rebalance", "sibling", "Thing"],
        ]
        .into_iter()
        .map(|v| v.into_iter().map(String::from).collect())
        .collect();
        assert_eq!(got, want);
        // super of a mod.rs is the crate root's child's parent.
        assert_eq!(
            imports("state/mod.rs", "use super::clock::Clock;"),
            vec![vec!["clock".to_string(), "Clock".into()]]
        );
    }

    #[test]
    fn tests_in_a_file_of_their_own_do_not_hide_the_code_after_them() {
        let t = tree(&[
            ("lib.rs", "pub mod x;"),
            (
                "x/mod.rs",
                "mod a;\n#[cfg(test)]\nmod tests;\npub struct S(a::T);",
            ),
            ("x/a.rs", "pub struct T; fn f(_: super::S) {}"),
        ]);
        assert_eq!(
            violations(&t),
            vec!["import circle: x/a.rs -> x/mod.rs -> x/a.rs".to_string()]
        );
        assert_eq!(
            lines_before_tests("fn a() {}\n#[cfg(test)]\nmod tests;\nfn b() {}\n"),
            4
        );
        assert_eq!(
            lines_before_tests("fn a() {}\n#[cfg(test)]\nmod tests {\n}\n"),
            1
        );
    }

    #[test]
    fn finds_a_circle_and_names_it() {
        let t = tree(&[
            ("lib.rs", "pub mod a; pub mod b; pub mod c;"),
            ("a.rs", "use crate::b::X;"),
            ("b.rs", "use crate::c::Y;"),
            ("c.rs", "fn f() { crate::a::z(); }"),
        ]);
        let v = violations(&t);
        assert_eq!(
            v,
            vec!["import circle: a.rs -> b.rs -> c.rs -> a.rs".to_string()]
        );
    }

    #[test]
    fn a_child_importing_its_mod_rs_reexport_is_a_circle() {
        let t = tree(&[
            ("lib.rs", "pub mod x;"),
            ("x/mod.rs", "mod types; pub use types::T; pub fn f() {}"),
            ("x/types.rs", "pub struct T; fn g() { super::f(); }"),
        ]);
        assert_eq!(
            violations(&t),
            vec!["import circle: x/mod.rs -> x/types.rs -> x/mod.rs".to_string()]
        );
    }

    #[test]
    fn layer_rules_and_length() {
        let long = "fn f() {}\n".repeat(MAX_LINES + 1) + "#[cfg(test)]\nmod tests {}\n";
        let t = tree(&[
            ("lib.rs", ""),
            ("core/mod.rs", "pub mod graph;"),
            ("core/graph.rs", "use crate::lightningd::Node;"),
            ("lightningd/mod.rs", "use crate::commands::auto::Job;"),
            ("commands/auto.rs", &long),
            ("params.rs", "use crate::state::State;"),
            ("state/mod.rs", ""),
        ]);
        let v = violations(&t);
        assert_eq!(v.len(), 4, "{v:#?}");
        assert!(
            v.iter()
                .any(|l| l.starts_with("core/graph.rs (core) imports lightningd/mod.rs"))
        );
        assert!(
            v.iter()
                .any(|l| l.starts_with("lightningd/mod.rs (the edge) imports commands/auto.rs"))
        );
        assert!(
            v.iter()
                .any(|l| l.starts_with("params.rs (the edge) imports state/mod.rs"))
        );
        assert!(
            v.iter()
                .any(|l| l.starts_with("commands/auto.rs has 601 lines"))
        );
    }
}
