//! The built form: one JSON document, the manifest with each hook script
//! embedded under its definition (`linkedSourceDefinition.resync`,
//! `virtualSourceDefinition.configure`, `discoveryDefinition.repositoryDiscovery`,
//! `upgradeDefinition.upgradeSnapshot`), `resources` as path -> text and
//! `messages` as locale -> id -> text. Loading it gives back the same
//! [`Toolkit`] (see `super::load::from_built_json`).

use serde_json::{Map, Value};

use super::model::{HookGroup, Toolkit};

/// The built JSON document of a toolkit.
pub fn to_built_json(toolkit: &Toolkit) -> Value {
    let mut doc = toolkit.manifest.clone();
    for (hook, script) in &toolkit.scripts {
        let key = hook.group.definition_key();
        let def = doc.entry(key).or_insert_with(|| Value::Object(Map::new()));
        if !def.is_object() {
            // The manifest is broken here (validate reports it); keep the
            // script rather than lose it.
            *def = Value::Object(Map::new());
        }
        if let Value::Object(def) = def {
            if hook.group == HookGroup::Upgrade {
                def.entry("type")
                    .or_insert_with(|| Value::String("ToolkitUpgradeDefinition".into()));
            }
            def.insert(hook.name.clone(), Value::String(script.clone()));
        }
    }
    let resources: Map<String, Value> = toolkit
        .resources
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    doc.insert("resources".into(), Value::Object(resources));
    if !toolkit.messages.is_empty() {
        let messages: Map<String, Value> = toolkit
            .messages
            .iter()
            .map(|(locale, ids)| {
                let ids: Map<String, Value> = ids
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                (locale.clone(), Value::Object(ids))
            })
            .collect();
        doc.insert("messages".into(), Value::Object(messages));
    }
    Value::Object(doc)
}

/// The built document as pretty-printed text (what `lunabox build` writes).
pub fn to_built_text(toolkit: &Toolkit) -> String {
    let mut text =
        serde_json::to_string_pretty(&to_built_json(toolkit)).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}
