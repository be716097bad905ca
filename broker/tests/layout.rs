//! The source layout the project promises (issue 15, README "Layout"): no import circle
//! between files, layers that import downward only, a `//!` header on every file, and no
//! file over 500 lines without a reason written at its top.
//!
//! The module graph is read from the source itself: every `crate::…` and `super::…` path
//! (in `use` trees and in expressions) resolved to the file that defines it, following
//! `pub use` re-exports. A module declaring or re-exporting its own children is not an
//! import. Unit-test modules (`#[cfg(test)]` to the end of a file) are left out: they may
//! reach anywhere.

mod module_graph {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    /// One source file as a module: its path segments (`storage::engine`) and its text.
    pub struct Module {
        pub file: PathBuf,
        pub segments: Vec<String>,
        pub text: String,
    }

    /// The crate's modules and the file-to-file imports between them.
    pub struct Graph {
        pub modules: Vec<Module>,
        /// importer index -> imported indices.
        pub edges: BTreeMap<usize, BTreeSet<usize>>,
    }

    pub fn load(src: &Path) -> Graph {
        let mut files = Vec::new();
        collect_rs(src, &mut files);
        files.sort();
        let modules: Vec<Module> = files
            .into_iter()
            .filter(|f| {
                f.file_name().is_some_and(|n| n != "main.rs") && !f.starts_with(src.join("bin"))
            })
            .map(|file| {
                let text = std::fs::read_to_string(&file).unwrap();
                Module {
                    segments: segments_of(src, &file),
                    file,
                    text,
                }
            })
            .collect();
        // Test-only files (`#[cfg(test)] mod x;`) are left out like inline test modules.
        let test_only: BTreeSet<Vec<String>> = modules
            .iter()
            .flat_map(|m| {
                test_only_children(&m.text).into_iter().map(|child| {
                    let mut segs = m.segments.clone();
                    segs.push(child);
                    segs
                })
            })
            .collect();
        let modules: Vec<Module> = modules
            .into_iter()
            .filter(|m| !test_only.iter().any(|t| m.segments.starts_with(t)))
            .collect();
        let index: BTreeMap<Vec<String>, usize> = modules
            .iter()
            .enumerate()
            .map(|(i, m)| (m.segments.clone(), i))
            .collect();
        let reexports: Vec<BTreeMap<String, Vec<String>>> = modules.iter().map(pub_uses).collect();

        let mut edges: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for (i, m) in modules.iter().enumerate() {
            let code = without_tests(&strip(&m.text));
            for path in crate_paths(&code, &m.segments) {
                if let Some(target) = resolve(&path, &index, &reexports, 0) {
                    let declaring_a_child = modules[target].segments.starts_with(&m.segments);
                    if target != i && !declaring_a_child {
                        edges.entry(i).or_default().insert(target);
                    }
                }
            }
        }
        Graph { modules, edges }
    }

    fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                collect_rs(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    fn segments_of(src: &Path, file: &Path) -> Vec<String> {
        let rel = file.strip_prefix(src).unwrap();
        let mut segs: Vec<String> = rel
            .iter()
            .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if matches!(segs.last().map(String::as_str), Some("mod" | "lib")) {
            segs.pop();
        }
        segs
    }

    const CFG_TEST: &str = "#[cfg(test)]";

    /// The file's text without its `#[cfg(test)]` items (an inline `mod tests { … }`, a
    /// test-only `use` or `mod x;`): everything from the attribute to the end of the item.
    fn without_tests(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find(CFG_TEST) {
            out.push_str(&rest[..at]);
            rest = &rest[at + CFG_TEST.len()..];
            // The item ends at its first `;` outside braces, or at its closing brace.
            let mut depth = 0usize;
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    ';' if depth == 0 => {
                        end = i + 1;
                        break;
                    }
                    _ => {}
                }
            }
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }

    /// Children declared `#[cfg(test)] mod name;` in `text`.
    fn test_only_children(text: &str) -> Vec<String> {
        text.match_indices(CFG_TEST)
            .filter_map(|(at, _)| {
                let item = text[at + CFG_TEST.len()..].trim_start();
                let item = item.strip_prefix("pub ").unwrap_or(item);
                let name = item.strip_prefix("mod ")?.split(';').next()?;
                let name = name.trim();
                name.chars().all(is_ident).then(|| name.to_string())
            })
            .collect()
    }

    /// The code with comments and string literals blanked, so paths in prose don't count.
    fn strip(text: &str) -> String {
        let b = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < b.len() {
            if b[i..].starts_with(b"//") {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            } else if b[i..].starts_with(b"/*") {
                let end = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
                i = end;
            } else if b[i] == b'"' {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
                // A char literal ('"' or '\n'); lifetimes ('a) are left alone.
                let close = text[i + 1..].find('\'').map_or(b.len(), |e| i + 1 + e + 1);
                i = close;
            } else {
                let ch = text[i..].chars().next().unwrap();
                out.push(ch);
                i += ch.len_utf8();
            }
        }
        out
    }

    fn is_ident(c: char) -> bool {
        c.is_alphanumeric() || c == '_'
    }

    /// Every absolute path that `crate::` / `super::` expressions in `code` name, with
    /// `super` resolved against `here` (the module of the file; a mod.rs is its own parent's
    /// child, so `super` in it leaves the folder).
    fn crate_paths(code: &str, here: &[String]) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let chars: Vec<char> = code.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let starts_word = i == 0 || !is_ident(chars[i - 1]) && chars[i - 1] != ':';
            if starts_word {
                let rest: String = chars[i..chars.len().min(i + 7)].iter().collect();
                let base = if rest.starts_with("crate::") {
                    i += "crate::".len();
                    Some(Vec::new())
                } else if rest.starts_with("super::") {
                    let mut base = here.to_vec();
                    while chars[i..].starts_with(&['s', 'u', 'p', 'e', 'r', ':', ':']) {
                        base.pop();
                        i += "super::".len();
                    }
                    Some(base)
                } else {
                    None
                };
                if let Some(base) = base {
                    let (paths, end) = parse_tree(&chars, i, base);
                    out.extend(paths);
                    i = end;
                    continue;
                }
            }
            i += 1;
        }
        out
    }

    /// Parses a use tree (`a::b`, `a::{b, c::d}`, `a::*`, `a as b`) starting at `i`.
    fn parse_tree(chars: &[char], mut i: usize, prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
        let skip_ws = |i: &mut usize| {
            while *i < chars.len() && chars[*i].is_whitespace() {
                *i += 1;
            }
        };
        let mut path = prefix;
        loop {
            skip_ws(&mut i);
            if i < chars.len() && chars[i] == '{' {
                i += 1;
                let mut out = Vec::new();
                loop {
                    skip_ws(&mut i);
                    if i >= chars.len() || chars[i] == '}' {
                        return (out, i + 1);
                    }
                    let (paths, end) = parse_tree(chars, i, path.clone());
                    out.extend(paths);
                    i = end;
                    skip_ws(&mut i);
                    if i < chars.len() && chars[i] == ',' {
                        i += 1;
                    }
                }
            }
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            if start == i {
                // `*` or the end of the path.
                if i < chars.len() && chars[i] == '*' {
                    i += 1;
                }
                return (vec![path], i);
            }
            let word: String = chars[start..i].iter().collect();
            if word != "self" {
                path.push(word);
            }
            if chars[i..].starts_with(&[':', ':']) {
                i += 2;
            } else {
                // Skip `as alias`, then the tree ends.
                let mut j = i;
                skip_ws(&mut j);
                if chars[j..].starts_with(&['a', 's', ' ']) {
                    j += 3;
                    skip_ws(&mut j);
                    while j < chars.len() && is_ident(chars[j]) {
                        j += 1;
                    }
                    i = j;
                }
                return (vec![path], i);
            }
        }
    }

    /// The names each module re-exports with `pub use` (name -> absolute path).
    fn pub_uses(m: &Module) -> BTreeMap<String, Vec<String>> {
        let code = without_tests(&strip(&m.text));
        let mut out = BTreeMap::new();
        for stmt in code.split(';') {
            let stmt = stmt.trim();
            let Some(tree) = stmt.strip_prefix("pub use ") else {
                continue;
            };
            let tree: Vec<char> = tree.chars().collect();
            let (base, start) = if tree.starts_with(&['c', 'r', 'a', 't', 'e', ':', ':']) {
                (Vec::new(), 7)
            } else if tree.starts_with(&['s', 'u', 'p', 'e', 'r', ':', ':']) {
                let mut b = m.segments.clone();
                b.pop();
                (b, 7)
            } else {
                // A child: `pub use engine::LogEngine`.
                (m.segments.clone(), 0)
            };
            let (paths, _) = parse_tree(&tree, start, base);
            for p in paths {
                if let Some(name) = p.last() {
                    out.insert(name.clone(), p.clone());
                }
            }
        }
        out
    }

    /// The file that defines `path`: the longest module prefix, through re-exports.
    fn resolve(
        path: &[String],
        index: &BTreeMap<Vec<String>, usize>,
        reexports: &[BTreeMap<String, Vec<String>>],
        depth: usize,
    ) -> Option<usize> {
        let (len, module) = (0..=path.len())
            .rev()
            .find_map(|n| index.get(&path[..n]).map(|&m| (n, m)))?;
        if depth < 8 && len < path.len() {
            if let Some(target) = reexports[module].get(&path[len]) {
                let mut full = target.clone();
                full.extend_from_slice(&path[len + 1..]);
                if full != path {
                    return resolve(&full, index, reexports, depth + 1).or(Some(module));
                }
            }
        }
        Some(module)
    }

    /// Strongly connected components with more than one file: the import circles.
    pub fn circles(g: &Graph) -> Vec<Vec<usize>> {
        struct Tarjan<'a> {
            g: &'a BTreeMap<usize, BTreeSet<usize>>,
            index: Vec<Option<usize>>,
            low: Vec<usize>,
            on_stack: Vec<bool>,
            stack: Vec<usize>,
            next: usize,
            out: Vec<Vec<usize>>,
        }
        impl Tarjan<'_> {
            fn visit(&mut self, v: usize) {
                self.index[v] = Some(self.next);
                self.low[v] = self.next;
                self.next += 1;
                self.stack.push(v);
                self.on_stack[v] = true;
                for &w in self.g.get(&v).into_iter().flatten() {
                    match self.index[w] {
                        None => {
                            self.visit(w);
                            self.low[v] = self.low[v].min(self.low[w]);
                        }
                        Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                        _ => {}
                    }
                }
                if Some(self.low[v]) == self.index[v] {
                    let mut scc = Vec::new();
                    while let Some(w) = self.stack.pop() {
                        self.on_stack[w] = false;
                        scc.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if scc.len() > 1 {
                        scc.sort();
                        self.out.push(scc);
                    }
                }
            }
        }
        let n = g.modules.len();
        let mut t = Tarjan {
            g: &g.edges,
            index: vec![None; n],
            low: vec![0; n],
            on_stack: vec![false; n],
            stack: Vec::new(),
            next: 0,
            out: Vec::new(),
        };
        for v in 0..n {
            if t.index[v].is_none() {
                t.visit(v);
            }
        }
        t.out
    }

    pub fn name(g: &Graph, i: usize) -> String {
        let s = g.modules[i].segments.join("::");
        if s.is_empty() {
            "crate".into()
        } else {
            s
        }
    }
}

use std::path::{Path, PathBuf};

use module_graph::{circles, load, name, Graph};

fn crate_src(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir)
        .join("src")
}

/// The broker's layers, lowest first: a module may import its own layer or lower ones.
const BROKER_LAYERS: &[&[&str]] = &[
    &["clock", "metrics"],
    &["storage"],
    &["security"],
    &["coordination"],
    &["governance"],
    &["lake"],
    &["evidence"],
    &["server", "config"],
];

fn describe_circles(g: &Graph) -> Vec<String> {
    circles(g)
        .into_iter()
        .map(|c| {
            c.iter()
                .map(|&i| name(g, i))
                .collect::<Vec<_>>()
                .join(" <-> ")
        })
        .collect()
}

#[test]
fn no_import_circle_between_files() {
    let mut found = Vec::new();
    for krate in ["broker", "protocol", "operator"] {
        let src = crate_src(krate);
        if !src.exists() {
            continue;
        }
        for c in describe_circles(&load(&src)) {
            found.push(format!("{krate}: {c}"));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn broker_layers_import_downward_only() {
    let g = load(&crate_src("broker"));
    let rank = |i: usize| {
        let top = g.modules[i].segments.first().cloned().unwrap_or_default();
        BROKER_LAYERS
            .iter()
            .position(|layer| layer.contains(&top.as_str()))
    };
    let mut upward = Vec::new();
    for (&from, targets) in &g.edges {
        for &to in targets {
            if let (Some(a), Some(b)) = (rank(from), rank(to)) {
                if b > a {
                    upward.push(format!("{} -> {}", name(&g, from), name(&g, to)));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that go up a layer:\n{}",
        upward.join("\n")
    );
}

#[test]
fn every_broker_file_has_a_header_and_long_files_say_why() {
    let g = load(&crate_src("broker"));
    let mut problems = Vec::new();
    for m in &g.modules {
        let rel = m
            .file
            .strip_prefix(crate_src("broker"))
            .unwrap()
            .display()
            .to_string();
        if !m.text.trim_start().starts_with("//!") {
            problems.push(format!("{rel}: no //! header"));
        }
        let lines = m.text.lines().count();
        let header: Vec<&str> = m
            .text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect();
        if lines > 500 && !header.iter().any(|l| l.starts_with("//! Long because:")) {
            problems.push(format!(
                "{rel}: {lines} lines and no `//! Long because:` line"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_graph_reader_resolves_paths_and_finds_a_planted_circle() {
    let dir = std::env::temp_dir().join(format!("sluice-layout-{}", std::process::id()));
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("lib.rs", "//! root\npub mod a;\npub mod b;\n");
    // The test-only child declared before the re-export must not hide it.
    write(
        "a/mod.rs",
        "//! a\n#[cfg(test)]\nmod tests;\npub mod inner;\npub use inner::Thing;\n",
    );
    write("a/tests.rs", "//! a::tests\nuse crate::b::other::X;\n");
    write(
        "a/inner.rs",
        "//! a::inner\nuse crate::b::{self, other::{X, Y}};\npub struct Thing;\n",
    );
    write(
        "b/mod.rs",
        "//! b\npub mod other;\n// crate::a::Thing in a comment is not an import\nconst S: &str = \"crate::a::Thing\";\n",
    );
    write("b/other.rs", "//! b::other\npub struct X;\npub struct Y;\nfn f() { let _ = crate::a::Thing; }\n#[cfg(test)]\nmod tests { use super::super::super::a; }\n");
    let g = load(&dir);
    let found = describe_circles(&g);
    // a::inner -> b (via `self`) and b::other; b::other -> a::inner through a's re-export.
    assert_eq!(
        found,
        vec!["a::inner <-> b::other".to_string()],
        "{found:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
