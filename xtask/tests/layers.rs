//! The layers of `xtask/src` import only downward, and tasks never import tasks:
//! `tasks` → `release` → `images` → `host` → `model` → `support`. Read from the
//! source as text (every `crate::<layer>` path a file names), so a new upward import
//! fails `cargo xtask verify` with the file, the line and the layers involved.

use std::path::{Path, PathBuf};

/// Each layer, lowest first, by the top-level modules that belong to it.
const LAYERS: &[(&str, &[&str])] = &[
    ("support", &["support"]),
    ("model", &["model"]),
    ("host", &["host"]),
    ("images", &["images"]),
    ("release", &["release"]),
    ("tasks", &["tasks"]),
];

fn layer_of_module(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module))
}

/// The layer a source file belongs to: its top-level module.
fn layer_of_file(src: &Path, file: &Path) -> Option<(usize, String)> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_string_lossy().into_owned();
    let module = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    Some((layer_of_module(&module)?, module))
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// Every `crate::<module>` a line names, with the module.
fn crate_paths(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            found.push(name);
        }
        rest = after;
    }
    found
}

/// A test-only file (unit tests may reach across layers to build their fixtures).
fn is_test_file(file: &Path) -> bool {
    file.file_name().is_some_and(|n| n == "tests.rs") || file.components().any(|c| c.as_os_str() == "tests")
}

#[test]
fn layers_import_only_downward_and_tasks_never_import_tasks() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let Some((layer, module)) = layer_of_file(&src, file) else { continue };
        if is_test_file(file) {
            continue;
        }
        checked += 1;
        let text = std::fs::read_to_string(file).unwrap();
        let mut in_tests = false;
        for (number, line) in text.lines().enumerate() {
            // Inline `#[cfg(test)] mod tests { … }` at the end of a file.
            if line.starts_with("#[cfg(test)]") {
                in_tests = true;
            }
            if in_tests || line.trim_start().starts_with("//") {
                continue;
            }
            for target in crate_paths(line) {
                let Some(target_layer) = layer_of_module(&target) else { continue };
                let shown = file.strip_prefix(&src).unwrap().display();
                if target_layer > layer {
                    problems.push(format!(
                        "{shown}:{}: `{module}` ({}) imports `{target}` ({}), a higher layer: {}",
                        number + 1,
                        LAYERS[layer].0,
                        LAYERS[target_layer].0,
                        line.trim()
                    ));
                }
                if layer == LAYERS.len() - 1 && target == "tasks" {
                    problems.push(format!("{shown}:{}: a task imports a task: {}", number + 1, line.trim()));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} files were checked: is the layer list current?");
    assert!(problems.is_empty(), "imports against the layers:\n{}", problems.join("\n"));
}

#[test]
fn every_top_level_module_belongs_to_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(module) = line.strip_prefix("pub mod ").and_then(|m| m.strip_suffix(';')) {
            assert!(layer_of_module(module).is_some(), "`{module}` in lib.rs belongs to no layer of this test");
        }
    }
}

#[test]
fn the_checker_sees_an_upward_import() {
    assert_eq!(crate_paths("use crate::tasks::deploy::run; crate::host::x"), ["tasks", "host"]);
    assert!(layer_of_module("tasks") > layer_of_module("release"));
    assert!(layer_of_module("model") < layer_of_module("host"));
}
