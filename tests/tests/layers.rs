//! The runtime's modules form layers: no import cycle between its top-level modules, and
//! nothing below export (assembler, semantics, encoders, exporters) imports export.
//!
//! A module "imports" another when its code (comments and unit tests aside) names
//! `crate::<other>`, or `super::` from a submodule. Read from the source, so a new cycle fails
//! here before it reaches review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("runtime sources") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its `#[cfg(test)] mod tests`.
fn code(text: &str) -> String {
    // The unit tests' module, whatever its visibility (`pub(crate)` when other modules'
    // tests share its helpers).
    let text = [
        "#[cfg(test)]\nmod tests",
        "#[cfg(test)]\npub(crate) mod tests",
    ]
    .iter()
    .filter_map(|head| text.find(head))
    .min()
    .map_or(text, |at| &text[..at]);
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level module -> the top-level modules its code names.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../honeyhive-runtime/src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let top = |path: &Path| -> String {
        let rel = path.strip_prefix(&root).expect("under src");
        let first = rel.components().next().expect("a component");
        first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned()
    };
    let modules: BTreeSet<String> = files.iter().map(|f| top(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let me = top(file);
        let code = code(&std::fs::read_to_string(file).expect("read source"));
        let deps = graph.entry(me.clone()).or_default();
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) && name != me {
                deps.insert(name);
            }
        }
        // `use crate::{a, b::c}` lists.
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::{") {
            rest = &rest[at + "crate::{".len()..];
            let list = &rest[..rest.find("};").unwrap_or(rest.len())];
            for part in list.split([',', '{', '}']) {
                let name = part.trim().split("::").next().unwrap_or("").to_owned();
                if modules.contains(&name) && name != me {
                    deps.insert(name);
                }
            }
        }
    }
    graph.remove("lib");
    graph
}

/// A cycle through `start`, if any, as the path that closes it.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(graph, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn the_runtime_modules_import_each_other_without_a_cycle() {
    let graph = imports();
    assert!(graph.len() > 15, "the scan found the modules: {graph:?}");
    assert!(graph["span"].contains("sink"), "the scan sees imports");
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn nothing_below_export_imports_it() {
    let graph = imports();
    let above = ["config", "feedback", "metrics", "testing"];
    for (module, deps) in &graph {
        if module != "export" && !above.contains(&module.as_str()) {
            assert!(
                !deps.contains("export"),
                "{module} imports export, which sits above it"
            );
        }
    }
}

#[test]
fn the_record_and_ids_sit_at_the_bottom() {
    let graph = imports();
    let bottom = ["record", "rng", "clock", "context"];
    for module in bottom {
        let deps = &graph[module];
        assert!(
            deps.iter()
                .all(|d| ["capture", "secrets", "rng", "clock"].contains(&d.as_str())),
            "{module} imports {deps:?}: a bottom module names only leaves"
        );
    }
}
