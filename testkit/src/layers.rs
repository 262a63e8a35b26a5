//! The module graph of a crate, read from its sources: which top-level modules name which
//! (`crate::x` outside comments), so a test can prove that no module imports a module that
//! imports it back.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The cycles among the top-level modules of the crate whose sources are in `src`: each a
/// strongly connected set of two or more modules, sorted. Empty when the edges point one way.
pub fn module_cycles(src: &Path) -> Vec<Vec<String>> {
    let graph = module_graph(src);
    strongly_connected(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect()
}

/// Top-level module -> the top-level modules its files name.
pub fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in fs::read_dir(src).unwrap_or_else(|e| panic!("{}: {e}", src.display())) {
        let path = entry.expect("a directory entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        if path.is_dir() {
            files.insert(stem, sources_under(&path));
        } else if path.extension().is_some_and(|e| e == "rs") && stem != "lib" && stem != "main" {
            let text = fs::read_to_string(&path).expect("a source file");
            files.insert(stem, vec![text]);
        }
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    files
        .into_iter()
        .map(|(module, texts)| {
            let mut named = BTreeSet::new();
            for text in &texts {
                for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                    for (at, _) in line.match_indices("crate::") {
                        let rest = &line[at + "crate::".len()..];
                        let end = rest
                            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .unwrap_or(rest.len());
                        let target = &rest[..end];
                        if target != module && modules.contains(target) {
                            named.insert(target.to_owned());
                        }
                    }
                }
            }
            (module, named)
        })
        .collect()
}

fn sources_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(sources_under(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(fs::read_to_string(&path).expect("a source file"));
        }
    }
    out
}

/// Tarjan's strongly connected components.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            component.sort();
            s.out.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn finds_a_cycle_through_three_modules_and_not_a_one_way_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path();
        fs::write(
            src.join("lib.rs"),
            "pub mod a; pub mod b; pub mod c; pub mod d;",
        )
        .expect("w");
        fs::write(
            src.join("a.rs"),
            "use crate::b::B;\n// crate::d is only named in a comment\n",
        )
        .expect("w");
        fs::create_dir(src.join("b")).expect("mkdir");
        fs::write(src.join("b/mod.rs"), "mod inner;").expect("w");
        fs::write(src.join("b/inner.rs"), "fn f() { crate::c::g() }").expect("w");
        fs::write(src.join("c.rs"), "use crate::a::A; use crate::d;").expect("w");
        fs::write(src.join("d.rs"), "").expect("w");
        assert_eq!(module_cycles(src), vec![vec!["a", "b", "c"]]);
        fs::write(src.join("c.rs"), "use crate::d;").expect("w");
        assert!(module_cycles(src).is_empty());
    }

    /// Every crate of the workspace: no module imports a module that imports it back.
    #[test]
    fn no_crate_of_the_workspace_has_a_module_cycle() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut crates = 0;
        for entry in fs::read_dir(&root).expect("the workspace") {
            let src = entry.expect("an entry").path().join("src");
            if !src.join("lib.rs").exists() {
                continue;
            }
            crates += 1;
            let cycles = module_cycles(&src);
            assert!(
                cycles.is_empty(),
                "{}: modules that import each other: {cycles:?}\n{:#?}",
                src.display(),
                module_graph(&src)
            );
        }
        assert!(crates >= 8, "read {crates} crates");
    }
}
