//! The in-memory toolkit: the manifest (main.json without embedded scripts),
//! the hook scripts by [`HookId`], the resources and the messages.
//!
//! A [`Toolkit`] is the same value whether it was loaded from a directory or
//! from its built JSON form (see [`super::load`](mod@super::load)); where it came from lives
//! in [`super::load::Origin`], not here.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

/// Which part of a toolkit a hook belongs to (its folder in a toolkit
/// directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HookGroup {
    /// `discovery/`: repositoryDiscovery, sourceConfigDiscovery.
    Discovery,
    /// `staged/`: hooks of a `ToolkitLinkedStagedSource`.
    Staged,
    /// `direct/`: hooks of a `ToolkitLinkedDirectSource`.
    Direct,
    /// `virtual/`: hooks of virtual sources (VDBs).
    Virtual,
    /// `upgrade/<X.Y>/`: upgrade scripts.
    Upgrade,
}

impl HookGroup {
    /// Every group, in folder order.
    pub const ALL: [HookGroup; 5] = [
        HookGroup::Discovery,
        HookGroup::Staged,
        HookGroup::Direct,
        HookGroup::Virtual,
        HookGroup::Upgrade,
    ];

    /// The folder name (`staged`, ...).
    pub fn folder(self) -> &'static str {
        match self {
            HookGroup::Discovery => "discovery",
            HookGroup::Staged => "staged",
            HookGroup::Direct => "direct",
            HookGroup::Virtual => "virtual",
            HookGroup::Upgrade => "upgrade",
        }
    }

    /// The manifest object a built toolkit embeds this group's scripts in.
    pub fn definition_key(self) -> &'static str {
        match self {
            HookGroup::Discovery => "discoveryDefinition",
            HookGroup::Staged | HookGroup::Direct => "linkedSourceDefinition",
            HookGroup::Virtual => "virtualSourceDefinition",
            HookGroup::Upgrade => "upgradeDefinition",
        }
    }

    /// The group whose folder is `name`.
    pub fn from_folder(name: &str) -> Option<HookGroup> {
        HookGroup::ALL.into_iter().find(|g| g.folder() == name)
    }
}

impl fmt::Display for HookGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.folder())
    }
}

/// A hook, written as its path in a toolkit: `staged/resync`,
/// `discovery/repositoryDiscovery`, `virtual/configure`,
/// `upgrade/upgradeSnapshot` (the `X.Y` folder is left out).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HookId {
    /// The hook's kind (its folder).
    pub group: HookGroup,
    /// The hook's name within its kind (`resync`).
    pub name: String,
}

impl HookId {
    /// A hook id from its parts.
    pub fn new(group: HookGroup, name: impl Into<String>) -> HookId {
        HookId {
            group,
            name: name.into(),
        }
    }
}

impl fmt::Display for HookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.group, self.name)
    }
}

/// Why a hook path could not be parsed.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "`{0}` is not a hook path; write it as GROUP/HOOK, e.g. `staged/resync`, \
     `discovery/repositoryDiscovery` or `virtual/configure` \
     (groups: discovery, staged, direct, virtual, upgrade)"
)]
pub struct BadHookPath(pub String);

impl FromStr for HookId {
    type Err = BadHookPath;

    /// Parse `staged/resync`, `staged/resync.lua`, or
    /// `upgrade/1.0/upgradeSnapshot` (the version folder is accepted and
    /// dropped).
    fn from_str(s: &str) -> Result<HookId, BadHookPath> {
        let bad = || BadHookPath(s.to_string());
        let parts: Vec<&str> = s.trim_matches('/').split('/').collect();
        let (group, name) = match parts.as_slice() {
            [g, n] => (*g, *n),
            ["upgrade", _version, n] => ("upgrade", *n),
            _ => return Err(bad()),
        };
        let group = HookGroup::from_folder(group).ok_or_else(bad)?;
        let name = name.strip_suffix(".lua").unwrap_or(name);
        if name.is_empty() {
            return Err(bad());
        }
        Ok(HookId::new(group, name))
    }
}

/// `linkedSourceDefinition.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LinkedKind {
    /// `ToolkitLinkedStagedSource`: hooks in `staged/`.
    Staged,
    /// `ToolkitLinkedDirectSource`: hooks in `direct/`.
    Direct,
}

impl LinkedKind {
    /// The manifest type name.
    pub fn type_name(self) -> &'static str {
        match self {
            LinkedKind::Staged => "ToolkitLinkedStagedSource",
            LinkedKind::Direct => "ToolkitLinkedDirectSource",
        }
    }

    /// The hook group (folder) of this kind.
    pub fn group(self) -> HookGroup {
        match self {
            LinkedKind::Staged => HookGroup::Staged,
            LinkedKind::Direct => HookGroup::Direct,
        }
    }

    /// The kind for a manifest type name.
    pub fn from_type_name(name: &str) -> Option<LinkedKind> {
        match name {
            "ToolkitLinkedStagedSource" => Some(LinkedKind::Staged),
            "ToolkitLinkedDirectSource" => Some(LinkedKind::Direct),
            _ => None,
        }
    }
}

/// `buildApi` / `engineApi`: written as `"1.7.0"` or as
/// `{"type": "APIVersion", "major": 1, "minor": 7, "micro": 0}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    /// The major version (`1` in `1.7.0`).
    pub major: u32,
    /// The minor version (`7` in `1.7.0`).
    pub minor: u32,
    /// The micro version (`0` in `1.7.0`).
    pub micro: u32,
}

impl ApiVersion {
    /// Read either form; `None` when the value is neither.
    pub fn from_json(value: &Value) -> Option<ApiVersion> {
        match value {
            Value::String(s) => {
                let mut it = s.trim().split('.');
                let major = it.next()?.parse().ok()?;
                let minor = it.next()?.parse().ok()?;
                let micro = it.next().map(str::parse).unwrap_or(Ok(0)).ok()?;
                if it.next().is_some() {
                    return None;
                }
                Some(ApiVersion {
                    major,
                    minor,
                    micro,
                })
            }
            Value::Object(o) => {
                if let Some(t) = o.get("type")
                    && t != "APIVersion"
                {
                    return None;
                }
                let num = |k: &str| {
                    o.get(k)
                        .and_then(Value::as_u64)
                        .and_then(|n| u32::try_from(n).ok())
                };
                Some(ApiVersion {
                    major: num("major")?,
                    minor: num("minor")?,
                    micro: o.get("micro").map(|_| num("micro")).unwrap_or(Some(0))?,
                })
            }
            _ => None,
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// A loaded toolkit.
///
/// Scripts are keyed by [`HookId`]. Loading fills in the scripts the
/// builder fills in (a missing linked or virtual hook is an empty script;
/// postSnapshot, configure and reconfigure default to `return {}`), so a
/// toolkit directory and its built form load to equal values. Hooks that
/// are optional by nature (`status`, `mountSpec`, `ownershipSpec`,
/// `initialize`, `upgradeSourceConfig`) stay absent when not written.
///
/// ```
/// use lunabox_toolkit::{HookId, Toolkit};
/// let built = serde_json::json!({
///     "type": "Toolkit", "name": "demo", "prettyName": "Demo", "version": "1.0.0",
///     "hostTypes": ["UNIX"], "defaultLocale": "en-us",
///     "linkedSourceDefinition": {"type": "ToolkitLinkedStagedSource",
///         "parameters": {"type": "object"}, "resync": "print('hi')"},
///     "virtualSourceDefinition": {"type": "ToolkitVirtualSource", "parameters": {"type": "object"}},
///     "snapshotSchema": {"type": "object"},
///     "resources": {"lib/a.sh": "echo a"}
/// });
/// let loaded = lunabox_toolkit::load::from_built_json(built, "demo.json".into()).unwrap();
/// let tk: &Toolkit = &loaded.toolkit;
/// assert_eq!(tk.name(), Some("demo"));
/// assert_eq!(tk.script(&"staged/resync".parse::<HookId>().unwrap()), Some("print('hi')"));
/// assert_eq!(tk.script(&"staged/postSnapshot".parse::<HookId>().unwrap()), Some("return {}"));
/// assert_eq!(tk.resources["lib/a.sh"], "echo a");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Toolkit {
    /// main.json without embedded scripts, `resources` or `messages`. For a
    /// toolkit with an `upgrade/X.Y/` folder, `upgradeDefinition` holds
    /// `{type, fromVersion}`.
    pub manifest: Map<String, Value>,
    /// Hook scripts (Lua source text, exactly as written).
    pub scripts: BTreeMap<HookId, String>,
    /// Resource path (relative to `resources/`, `/`-separated) -> text;
    /// shared, so each hook run gets it without a copy.
    pub resources: std::sync::Arc<BTreeMap<String, String>>,
    /// Locale -> message id -> text.
    pub messages: BTreeMap<String, BTreeMap<String, String>>,
}

impl Toolkit {
    fn str_field(&self, key: &str) -> Option<&str> {
        self.manifest.get(key).and_then(Value::as_str)
    }

    /// `name`.
    pub fn name(&self) -> Option<&str> {
        self.str_field("name")
    }

    /// `prettyName`.
    pub fn pretty_name(&self) -> Option<&str> {
        self.str_field("prettyName")
    }

    /// `version`.
    pub fn version(&self) -> Option<&str> {
        self.str_field("version")
    }

    /// `defaultLocale`.
    pub fn default_locale(&self) -> Option<&str> {
        self.str_field("defaultLocale")
    }

    /// `buildApi`, in either of its forms.
    pub fn build_api(&self) -> Option<ApiVersion> {
        self.manifest
            .get("buildApi")
            .and_then(ApiVersion::from_json)
    }

    /// `engineApi`, in either of its forms.
    pub fn engine_api(&self) -> Option<ApiVersion> {
        self.manifest
            .get("engineApi")
            .and_then(ApiVersion::from_json)
    }

    /// A manifest value by JSON pointer (`/linkedSourceDefinition/parameters`).
    pub fn pointer(&self, pointer: &str) -> Option<&Value> {
        let rest = pointer.strip_prefix('/')?;
        let (first, tail) = match rest.split_once('/') {
            Some((f, t)) => (f, Some(t)),
            None => (rest, None),
        };
        let v = self.manifest.get(first)?;
        match tail {
            None => Some(v),
            Some(t) => v.pointer(&format!("/{t}")),
        }
    }

    /// The linked source kind from `linkedSourceDefinition.type`.
    pub fn linked_kind(&self) -> Option<LinkedKind> {
        self.pointer("/linkedSourceDefinition/type")
            .and_then(Value::as_str)
            .and_then(LinkedKind::from_type_name)
    }

    /// The linking parameters schema (`linkedSourceDefinition.parameters`).
    pub fn linked_parameters_schema(&self) -> Option<&Value> {
        self.pointer("/linkedSourceDefinition/parameters")
    }

    /// The provisioning parameters schema (`virtualSourceDefinition.parameters`).
    pub fn virtual_parameters_schema(&self) -> Option<&Value> {
        self.pointer("/virtualSourceDefinition/parameters")
    }

    /// `snapshotSchema`.
    pub fn snapshot_schema(&self) -> Option<&Value> {
        self.manifest.get("snapshotSchema")
    }

    /// `discoveryDefinition`, when the toolkit has discovery.
    pub fn discovery(&self) -> Option<&Map<String, Value>> {
        self.manifest
            .get("discoveryDefinition")
            .and_then(Value::as_object)
    }

    /// `discoveryDefinition.repositorySchema`.
    pub fn repository_schema(&self) -> Option<&Value> {
        self.pointer("/discoveryDefinition/repositorySchema")
    }

    /// `discoveryDefinition.sourceConfigSchema`.
    pub fn source_config_schema(&self) -> Option<&Value> {
        self.pointer("/discoveryDefinition/sourceConfigSchema")
    }

    /// `upgradeDefinition.fromVersion` (the `upgrade/X.Y` folder name).
    pub fn upgrade_from(&self) -> Option<&str> {
        self.pointer("/upgradeDefinition/fromVersion")
            .and_then(Value::as_str)
    }

    /// A hook's script text, if the toolkit has the hook.
    pub fn script(&self, hook: &HookId) -> Option<&str> {
        self.scripts.get(hook).map(String::as_str)
    }

    /// The chunk name of a hook, as tracebacks and faults show it:
    /// `<toolkit>/<group>/<hook>.lua` (`<toolkit>/upgrade/<X.Y>/<hook>.lua`).
    pub fn chunk_name(&self, hook: &HookId) -> String {
        let name = self.name().unwrap_or("toolkit");
        match (hook.group, self.upgrade_from()) {
            (HookGroup::Upgrade, Some(v)) => format!("{name}/upgrade/{v}/{}.lua", hook.name),
            _ => format!("{name}/{}/{}.lua", hook.group, hook.name),
        }
    }

    /// The group (folder) of this toolkit's linked hooks: from
    /// `linkedSourceDefinition.type`, else from the scripts present.
    pub fn linked_group(&self) -> Option<HookGroup> {
        if let Some(kind) = self.linked_kind() {
            return Some(kind.group());
        }
        [HookGroup::Staged, HookGroup::Direct]
            .into_iter()
            .find(|g| self.scripts.keys().any(|h| h.group == *g))
    }
}

/// Lua source to hand to the sandbox for a script: a leading `#` line
/// (real toolkits have one) is blanked, keeping line numbers.
pub fn lua_source(script: &str) -> std::borrow::Cow<'_, str> {
    let body = script.strip_prefix('\u{feff}').unwrap_or(script);
    if body.starts_with('#') {
        let rest = body.find('\n').map(|i| &body[i..]).unwrap_or("");
        std::borrow::Cow::Borrowed(rest)
    } else {
        std::borrow::Cow::Borrowed(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hook_paths() {
        let h: HookId = "staged/resync".parse().unwrap();
        assert_eq!(h, HookId::new(HookGroup::Staged, "resync"));
        let h: HookId = "upgrade/1.2/upgradeSnapshot.lua".parse().unwrap();
        assert_eq!(h, HookId::new(HookGroup::Upgrade, "upgradeSnapshot"));
        assert!("resync".parse::<HookId>().is_err());
        assert!("nope/resync".parse::<HookId>().is_err());
        assert_eq!(h.to_string(), "upgrade/upgradeSnapshot");
    }

    #[test]
    fn api_versions_both_forms() {
        let a = ApiVersion::from_json(&json!("1.7.0")).unwrap();
        let b = ApiVersion::from_json(
            &json!({"type": "APIVersion", "major": 1, "minor": 7, "micro": 0}),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "1.7.0");
        assert!(ApiVersion::from_json(&json!("one")).is_none());
        assert!(ApiVersion::from_json(&json!({"type": "Other", "major": 1, "minor": 0})).is_none());
    }

    #[test]
    fn shebang_line_blanked_keeping_lines() {
        let src = lua_source("#!/usr/bin/lua\nreturn 1\n");
        assert_eq!(src.lines().count(), 2);
        assert_eq!(src.lines().next(), Some(""));
        assert_eq!(src.lines().nth(1), Some("return 1"));
        assert_eq!(lua_source("return 2"), "return 2");
    }
}
