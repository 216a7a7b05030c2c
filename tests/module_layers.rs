//! Imports flow one way: no cycle between baton's top-level modules (`src/<module>` and
//! `engines/`), judged from the `crate::<module>` paths in their sources. A new cycle fails here
//! with its members named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every `crate::<module>` reference of each top-level module, to other top-level modules.
fn module_edges(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    for base in ["src", "engines"] {
        collect_rs(&root.join(base), &mut files);
    }
    for file in files {
        let rel = file.strip_prefix(root).unwrap();
        let mut parts = rel.iter().map(|p| p.to_string_lossy().into_owned());
        let base = parts.next().unwrap();
        let module = if base == "engines" {
            "engines".to_string()
        } else {
            let first = parts.next().unwrap();
            first.trim_end_matches(".rs").to_string()
        };
        if module == "main" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let targets = edges.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                targets.insert(name);
            }
        }
    }
    let modules: BTreeSet<String> = edges.keys().cloned().collect();
    for targets in edges.values_mut() {
        targets.retain(|t| modules.contains(t));
    }
    edges
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules reachable from `from`.
fn reachable(edges: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(module) = stack.pop() {
        for next in edges.get(&module).into_iter().flatten() {
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    seen
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let edges = module_edges(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(edges.contains_key("model") && edges.contains_key("engines"));
    let mut cycles = Vec::new();
    for (module, targets) in &edges {
        for target in targets {
            if reachable(&edges, target).contains(module) {
                cycles.push(format!("{module} -> {target} -> ... -> {module}"));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "imports must flow one way (see src/lib.rs); cycles:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_model_imports_nothing_of_baton_but_errors_and_uris() {
    let edges = module_edges(Path::new(env!("CARGO_MANIFEST_DIR")));
    let allowed: BTreeSet<String> = ["error", "uri"].map(String::from).into();
    let extra: Vec<_> = edges["model"].difference(&allowed).collect();
    assert!(extra.is_empty(), "model imports {extra:?}");
}
