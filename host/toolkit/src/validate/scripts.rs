//! Hook scripts: each compiled by Lua through a [`SyntaxCheck`] (errors
//! name file and line), and resource references found by a text search:
//! a resource no script names is a warning, and so is a
//! `resources["x"]` / `resources.x` naming a resource that does not exist.

use std::collections::BTreeSet;

use super::super::diag::Diagnostic;
use super::super::load::Loaded;
use super::super::model::lua_source;
use super::SyntaxCheck;

pub(super) fn check(loaded: &Loaded, syntax: Option<&dyn SyntaxCheck>, out: &mut Vec<Diagnostic>) {
    let tk = &loaded.toolkit;
    if let Some(checker) = syntax {
        for (hook, script) in &tk.scripts {
            if loaded.origin.defaulted.contains(hook) {
                continue;
            }
            let chunk = tk.chunk_name(hook);
            if let Err(e) = checker.check_syntax(&lua_source(script), &chunk) {
                let (file, field) = loaded.origin.script_location(tk, hook);
                out.push(
                    Diagnostic::error(
                        "lua-syntax",
                        file,
                        field,
                        format!("Lua syntax error: {}; fix the script", e.message),
                    )
                    .at_line(e.line),
                );
            }
        }
    }

    let all_scripts: String = tk
        .scripts
        .values()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n");
    for name in tk.resources.keys() {
        if !mentions_resource(&all_scripts, name) {
            let (file, field) = loaded.origin.resource_location(name);
            out.push(Diagnostic::warning(
                "resource-unused",
                file,
                field,
                format!(
                    "no hook refers to this resource (no resources[\"{name}\"] in any script); \
                     use it or remove it"
                ),
            ));
        }
    }

    for (hook, script) in &tk.scripts {
        let mut reported = BTreeSet::new();
        for (name, line) in resource_references(script) {
            if !tk.resources.contains_key(&name) && reported.insert(name.clone()) {
                let (file, field) = loaded.origin.script_location(tk, hook);
                let have: Vec<&str> = tk.resources.keys().map(String::as_str).collect();
                out.push(
                    Diagnostic::warning(
                        "resource-missing",
                        file,
                        field.or(Some(format!("resources[\"{name}\"]"))),
                        format!(
                            "the script uses resources[\"{name}\"] but there is no resources/{name}; \
                             add the file or fix the name (have: {})",
                            if have.is_empty() { "none".into() } else { have.join(", ") }
                        ),
                    )
                    .at_line(Some(line)),
                );
            }
        }
    }
}

/// Whether the scripts name resource `name`: as a quoted string anywhere
/// (`resources["x"]`, a variable holding `"x"`) or as `resources.x`.
pub fn mentions_resource(scripts: &str, name: &str) -> bool {
    scripts.contains(&format!("\"{name}\""))
        || scripts.contains(&format!("'{name}'"))
        || scripts.contains(&format!("[[{name}]]"))
        || resource_references(scripts).iter().any(|(n, _)| n == name)
}

/// Every `resources["x"]`, `resources['x']` and `resources.x` in a script,
/// with its line number.
pub fn resource_references(script: &str) -> Vec<(String, u32)> {
    let mut refs = Vec::new();
    let bytes = script.as_bytes();
    let word = b"resources";
    let mut i = 0;
    while let Some(pos) = script[i..].find("resources") {
        let start = i + pos;
        let end = start + word.len();
        i = end;
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        if start > 0 && (ident(bytes[start - 1]) || bytes[start - 1] == b'.') {
            continue;
        }
        let line = u32::try_from(script[..start].matches('\n').count() + 1).unwrap_or(u32::MAX);
        let mut j = end;
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        if j >= bytes.len() {
            break;
        }
        if bytes[j] == b'.' {
            let k0 = j + 1;
            let mut k = k0;
            while k < bytes.len() && ident(bytes[k]) {
                k += 1;
            }
            if k > k0 {
                refs.push((script[k0..k].to_string(), line));
            }
        } else if bytes[j] == b'[' {
            let mut k = j + 1;
            while k < bytes.len() && (bytes[k] == b' ' || bytes[k] == b'\t') {
                k += 1;
            }
            if k < bytes.len() && (bytes[k] == b'"' || bytes[k] == b'\'') {
                let q = bytes[k];
                if let Some(close) = script[k + 1..].find(q as char) {
                    let name = &script[k + 1..k + 1 + close];
                    let after = script[k + 2 + close..].trim_start_matches([' ', '\t']);
                    if after.starts_with(']') && !name.contains('\\') {
                        refs.push((name.to_string(), line));
                    }
                }
            }
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_references() {
        let s = "a = resources[\"x.sh\"]\nb = resources [ 'lib/y.sh' ]\nc = resources.z\nd = myresources.no\n";
        let r = resource_references(s);
        assert_eq!(
            r,
            vec![
                ("x.sh".to_string(), 1),
                ("lib/y.sh".to_string(), 2),
                ("z".to_string(), 3)
            ]
        );
        assert!(mentions_resource(s, "x.sh"));
        assert!(mentions_resource(
            "local n = \"q.sh\"\nRunBash{command=resources[n]}",
            "q.sh"
        ));
        assert!(!mentions_resource(s, "other.sh"));
    }
}
