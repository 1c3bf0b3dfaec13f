//! Builder rules on the toolkit's parts (spec section 1): the linked hook
//! folder matches `linkedSourceDefinition.type`, discovery scripts exist
//! exactly when `discoveryDefinition` does, the upgrade scripts, and the
//! messages (default locale present, ids well formed).

use std::collections::BTreeSet;

use super::super::diag::Diagnostic;
use super::super::load::{Form, Loaded};
use super::super::model::HookGroup;
use crate::hook::catalog::{self, Presence};

pub(super) fn check(loaded: &Loaded, out: &mut Vec<Diagnostic>) {
    let tk = &loaded.toolkit;
    let origin = &loaded.origin;

    // The linked hook folder must match the declared type.
    if let Some(kind) = tk.linked_kind() {
        let wrong: BTreeSet<HookGroup> = tk
            .scripts
            .keys()
            .map(|h| h.group)
            .filter(|g| matches!(g, HookGroup::Staged | HookGroup::Direct) && *g != kind.group())
            .collect();
        for g in wrong {
            let (file, field) = match origin.form {
                Form::Directory => (
                    format!("{g}/"),
                    Some("/linkedSourceDefinition/type".to_string()),
                ),
                Form::Built => (
                    origin.manifest_file(),
                    Some("/linkedSourceDefinition/type".to_string()),
                ),
            };
            out.push(Diagnostic::error(
                "linked-folder",
                file,
                field,
                format!(
                    "linkedSourceDefinition.type is {} so the hooks belong in {}/, but {g}/ has hooks; \
                     move them to {}/ or change the type to {}",
                    kind.type_name(),
                    kind.group(),
                    kind.group(),
                    match g {
                        HookGroup::Direct => "ToolkitLinkedDirectSource",
                        _ => "ToolkitLinkedStagedSource",
                    }
                ),
            ));
        }
    }

    // Discovery scripts exist exactly when discoveryDefinition does.
    let has_def = tk.manifest.contains_key("discoveryDefinition");
    for spec in catalog::hooks_of(HookGroup::Discovery) {
        let id = spec.id();
        let present = tk.scripts.contains_key(&id);
        let (file, field) = origin.script_location(tk, &id);
        if has_def && !present {
            let what = match origin.form {
                Form::Directory => format!("discovery/{}.lua", spec.name),
                Form::Built => format!("discoveryDefinition.{}", spec.name),
            };
            out.push(Diagnostic::error(
                "discovery-scripts",
                file,
                field,
                format!(
                    "discoveryDefinition is present, so {what} is required; write it \
                     (it returns an array of {}) or remove discoveryDefinition",
                    if spec.name == "repositoryDiscovery" {
                        "repositories"
                    } else {
                        "source configs"
                    }
                ),
            ));
        } else if !has_def && present {
            out.push(Diagnostic::error(
                "discovery-without-definition",
                file,
                field,
                "there is no discoveryDefinition in main.json, so there must be no discovery scripts; \
                 add discoveryDefinition (schemas, identity and name fields) or remove the script",
            ));
        }
    }

    // Upgrade: the three required scripts when upgrading at all.
    let upgrading = tk.manifest.contains_key("upgradeDefinition")
        || tk.scripts.keys().any(|h| h.group == HookGroup::Upgrade);
    if upgrading {
        for spec in catalog::hooks_of(HookGroup::Upgrade) {
            if spec.presence == Presence::Required && !tk.scripts.contains_key(&spec.id()) {
                let (file, field) = match (origin.form, tk.upgrade_from()) {
                    (Form::Directory, Some(_)) => origin.script_location(tk, &spec.id()),
                    (Form::Directory, None) => (format!("upgrade/X.Y/{}.lua", spec.name), None),
                    (Form::Built, _) => origin.script_location(tk, &spec.id()),
                };
                out.push(Diagnostic::error(
                    "upgrade-scripts",
                    file,
                    field,
                    format!(
                        "an upgrade needs upgradeSnapshot, upgradeVirtualSource and upgradeLinkedSource; \
                         {} is missing — write it (it returns the upgraded `parameters`)",
                        spec.name
                    ),
                ));
            }
        }
    }

    // Hooks a toolkit can't have (e.g. a built file with an unknown group).
    for id in tk.scripts.keys() {
        if catalog::spec_of(id).is_none() {
            let (file, field) = origin.script_location(tk, id);
            out.push(Diagnostic::warning(
                "unknown-hook-file",
                file,
                field,
                format!("`{id}` is not a known hook; it will never run"),
            ));
        }
    }

    check_messages(loaded, out);
}

fn message_id_ok(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

fn check_messages(loaded: &Loaded, out: &mut Vec<Diagnostic>) {
    let tk = &loaded.toolkit;
    if tk.messages.is_empty() {
        return;
    }
    if let Some(locale) = tk.default_locale()
        && !tk.messages.contains_key(locale)
    {
        let have: Vec<&str> = tk.messages.keys().map(String::as_str).collect();
        out.push(Diagnostic::error(
            "messages-default-locale",
            loaded.origin.messages_file(locale),
            Some("/defaultLocale".into()),
            format!(
                "there are messages ({}) but none for the default locale `{locale}`; add messages/{locale}.txt \
                 or change defaultLocale",
                have.join(", ")
            ),
        ));
    }
    for (locale, ids) in &tk.messages {
        for id in ids.keys() {
            if !message_id_ok(id) {
                out.push(Diagnostic::error(
                    "message-id",
                    loaded.origin.messages_file(locale),
                    Some(id.clone()),
                    format!(
                        "message id `{id}` must start with a letter and have only letters, digits and `_` \
                         (^[A-Za-z]\\w*$); rename it"
                    ),
                ));
            }
        }
    }
}
