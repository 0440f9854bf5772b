//! The module structure of `src/`: no module imports one that imports it
//! back (directly or round a circle), and the layers point one way only:
//! leaf types, then settings, then storage, the domain, HTTP, wiring and the
//! command line. Read from the source text, so a `use` that breaks either
//! rule fails here before a reader stumbles over it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module's layer; a module may use its own layer and those
/// below, never one above.
const LAYERS: &[(&str, u8)] = &[
    ("types", 0),
    ("config", 1),
    ("metrics", 1),
    ("telemetry", 1),
    ("shards", 1),
    ("db", 2),
    ("cache", 2),
    ("domain", 3),
    ("http", 4),
    ("services", 5),
    ("startup", 6),
    ("cli", 7),
    ("fuzzing", 8),
];

type Module = Vec<String>;

/// Every module of `src/` (by path from the crate root) and its source,
/// without its unit tests.
fn modules() -> BTreeMap<Module, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Module, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            if path.is_dir() {
                let mut inner = prefix.to_vec();
                inner.push(name);
                walk(&path, &inner, out);
            } else if path.extension().is_some_and(|e| e == "rs") && name != "main" {
                let mut module = prefix.to_vec();
                if name != "mod" && name != "lib" {
                    module.push(name);
                }
                let text = std::fs::read_to_string(&path).unwrap();
                // Unit tests sit at the end, behind `#[cfg(test)]` on a `mod`.
                let tests = text.match_indices("#[cfg(test)]\n").find(|(at, attr)| {
                    let next = text[at + attr.len()..].lines().next().unwrap_or("");
                    next.trim_start_matches("pub(crate) ").starts_with("mod ")
                });
                let code = match tests {
                    Some((at, _)) => text[..at].to_owned(),
                    None => text,
                };
                let code: String = code
                    .lines()
                    .map(|line| line.split("//").next().unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join("\n");
                out.insert(module, code);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut out,
    );
    out
}

/// The module a path names: its longest prefix that is a module.
fn resolve(modules: &BTreeMap<Module, String>, path: &[String]) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains_key(prefix))
        .unwrap_or_default()
}

fn ident_at(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The modules `module`'s code names through `crate::` or `super::` paths,
/// brace groups included.
fn uses(modules: &BTreeMap<Module, String>, module: &Module, code: &str) -> BTreeSet<Module> {
    let mut found = BTreeSet::new();
    for (base, root) in [
        ("crate::", Vec::new()),
        ("super::", module[..module.len().saturating_sub(1)].to_vec()),
    ] {
        for (at, _) in code.match_indices(base) {
            let preceded = code[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            if preceded {
                continue;
            }
            let mut path = root.clone();
            let mut rest = &code[at + base.len()..];
            loop {
                if let Some(group) = rest.strip_prefix('{') {
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    for item in group.split(',') {
                        let item = ident_at(item.trim());
                        let mut full = path.clone();
                        if item != "self" && !item.is_empty() {
                            full.push(item.to_owned());
                        }
                        found.insert(resolve(modules, &full));
                    }
                    break;
                }
                let ident = ident_at(rest);
                if ident.is_empty() {
                    break;
                }
                path.push(ident.to_owned());
                rest = &rest[ident.len()..];
                match rest.strip_prefix("::") {
                    Some(more) => rest = more,
                    None => break,
                }
            }
            found.insert(resolve(modules, &path));
        }
    }
    // The crate root only declares the top-level modules.
    found.remove(&Module::new());
    found.remove(module);
    found
}

fn layer(module: &Module) -> u8 {
    let top = module.first().map_or("", String::as_str);
    LAYERS
        .iter()
        .find(|(name, _)| *name == top)
        .map_or(u8::MAX, |(_, layer)| *layer)
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let modules = modules();
    modules
        .iter()
        .map(|(module, code)| (module.clone(), uses(&modules, module, code)))
        .collect()
}

fn name(module: &Module) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = graph();
    // A depth-first search; a grey module met again closes a cycle.
    fn visit(
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        at: &Module,
        path: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(start) = path.iter().position(|m| m == at) {
            return Some(path[start..].to_vec());
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.clone());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(cycle) = visit(graph, next, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(at.clone());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        let cycle = visit(&graph, module, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle
                .unwrap()
                .iter()
                .map(name)
                .collect::<Vec<_>>()
                .join(" -> ")
        );
    }
    assert!(graph.len() > 40, "found only {} modules", graph.len());
}

#[test]
fn layers_point_down_only() {
    let mut upward = Vec::new();
    for (module, used) in graph() {
        for target in used {
            if layer(&target) > layer(&module) {
                upward.push(format!("{} -> {}", name(&module), name(&target)));
            }
        }
    }
    assert!(upward.is_empty(), "imports that point up: {upward:#?}");
    for module in modules().keys().filter(|m| !m.is_empty()) {
        assert_ne!(layer(module), u8::MAX, "{} has no layer", name(module));
    }
}

/// The domain's capabilities (its folders and shared files), in the order
/// they may use each other: each only those before it. `error` is apart:
/// it names every capability's error to wrap it, and every one returns it.
const CAPABILITIES: &[&str] = &[
    "page",
    "events",
    "audit",
    "keys",
    "tokens",
    "accounts",
    "credentials",
    "admin",
    "authz",
    "webhooks",
    "sample",
];

#[test]
fn domain_capabilities_use_only_those_below_them() {
    let rank = |module: &Module| -> Option<usize> {
        (module.first().map(String::as_str) == Some("domain") && module.len() > 1)
            .then(|| CAPABILITIES.iter().position(|c| *c == module[1]))
            .flatten()
    };
    let mut wrong = Vec::new();
    for (module, used) in graph() {
        let Some(own) = rank(&module) else { continue };
        for target in used {
            if let Some(other) = rank(&target)
                && other > own
            {
                wrong.push(format!("{} -> {}", name(&module), name(&target)));
            }
        }
    }
    assert!(wrong.is_empty(), "capabilities used upwards: {wrong:#?}");
    for module in modules().keys() {
        if module.first().map(String::as_str) == Some("domain") && module.len() > 1 {
            assert!(
                module[1] == "error" || rank(module).is_some(),
                "{} is in no capability: add it to CAPABILITIES",
                name(module)
            );
        }
    }
}

#[test]
fn no_source_file_is_over_450_lines() {
    fn walk(dir: &Path, long: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, long);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                if lines > 450 {
                    long.push(format!("{}: {lines} lines", path.display()));
                }
            }
        }
    }
    let mut long = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["src", "tests/api", "benches", "examples"] {
        walk(&root.join(dir), &mut long);
    }
    assert!(long.is_empty(), "files over 450 lines: {long:#?}");
}
