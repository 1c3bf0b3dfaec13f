//! The hook catalog: every hook a toolkit can have (spec sections 1 and 4),
//! whether a toolkit must, may or need not write it, which globals it sees
//! and what it must return.

use crate::{HookGroup, HookId};

/// What happens when a toolkit does not write a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The builder fills it in with this script (`""` or `return {}`).
    Filled(&'static str),
    /// It may be left out; the engine then does without it (a staged
    /// source without `status` is ACTIVE while enabled).
    Optional,
    /// It must be written (discovery scripts when `discoveryDefinition`
    /// exists; the three upgrade scripts when `upgrade/` exists).
    Required,
}

/// One engine-provided global.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Global {
    /// Resource path -> text (every hook).
    Resources,
    /// The user's parameters, defaults applied.
    Parameters,
    /// The source config (the guest also offers it as `sourceConfig`).
    Config,
    /// The repository (e.g. `installPath`).
    Repository,
    /// The `source` object (environment, host, dataDirectory, ...).
    Source,
    /// Discovery's `remote` (environment, environmentUser, host).
    Remote,
    /// The snapshot's metadata as a JSON string.
    SnapshotJson,
}

impl Global {
    /// The Lua global's name.
    pub fn name(self) -> &'static str {
        match self {
            Global::Resources => "resources",
            Global::Parameters => "parameters",
            Global::Config => "config",
            Global::Repository => "repository",
            Global::Source => "source",
            Global::Remote => "remote",
            Global::SnapshotJson => "snapshotJson",
        }
    }
}

/// What a hook must return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    /// Anything (the value is ignored).
    Nothing,
    /// `"ACTIVE"`, `"INACTIVE"` or `"UNKNOWN"`.
    Status,
    /// A table valid against `snapshotSchema`.
    Snapshot,
    /// An array of repositories valid against `repositorySchema`.
    Repositories,
    /// An array of source configs valid against `sourceConfigSchema`.
    SourceConfigs,
    /// One source config valid against `sourceConfigSchema`.
    SourceConfig,
    /// Staged mountSpec: a path string.
    MountPath,
    /// Virtual mountSpec: an array of tables.
    Mounts,
    /// ownershipSpec: a table (e.g. `{uid = 1000, gid = 1000}`).
    Ownership,
    /// An upgrade script: the upgraded object, valid against the current
    /// schema of what it upgrades.
    Upgraded(UpgradeTarget),
}

/// What an upgrade script upgrades (and so which schema its result meets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeTarget {
    /// `upgradeSnapshot`: snapshot metadata -> `snapshotSchema`.
    Snapshot,
    /// `upgradeVirtualSource`: provisioning parameters.
    VirtualParameters,
    /// `upgradeLinkedSource`: linking parameters.
    LinkedParameters,
    /// `upgradeSourceConfig`: a source config.
    SourceConfig,
}

/// One entry of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct HookSpec {
    /// The hook's kind (its folder: `staged`, `discovery`, ...).
    pub group: HookGroup,
    /// The hook's name within its kind (`resync`, `repositoryDiscovery`, ...).
    pub name: &'static str,
    /// Whether a toolkit must write it, may leave it out, or gets a default
    /// script.
    pub presence: Presence,
    /// The globals it sees.
    pub globals: &'static [Global],
    /// What its script must return.
    pub returns: Returns,
    /// One line on when it runs.
    pub summary: &'static str,
}

impl HookSpec {
    /// The hook's id.
    pub fn id(&self) -> HookId {
        HookId::new(self.group, self.name)
    }

    /// Whether it sees `global`.
    pub fn sees(&self, global: Global) -> bool {
        self.globals.contains(&global)
    }
}

use Global::*;

const SOURCE_HOOK: &[Global] = &[Resources, Parameters, Config, Repository, Source];
const CONFIGURE_HOOK: &[Global] = &[
    Resources,
    Parameters,
    Config,
    Repository,
    Source,
    SnapshotJson,
];
const UPGRADE_HOOK: &[Global] = &[Resources, Parameters];

const fn h(
    group: HookGroup,
    name: &'static str,
    presence: Presence,
    globals: &'static [Global],
    returns: Returns,
    summary: &'static str,
) -> HookSpec {
    HookSpec {
        group,
        name,
        presence,
        globals,
        returns,
        summary,
    }
}

const EMPTY: Presence = Presence::Filled("");
const RETURN_TABLE: Presence = Presence::Filled("return {}");

/// Every hook, by group.
pub static CATALOG: &[HookSpec] = &[
    // discovery
    h(
        HookGroup::Discovery,
        "repositoryDiscovery",
        Presence::Required,
        &[Resources, Remote],
        Returns::Repositories,
        "finds the repositories (installations) on an environment",
    ),
    h(
        HookGroup::Discovery,
        "sourceConfigDiscovery",
        Presence::Required,
        &[Resources, Remote, Repository],
        Returns::SourceConfigs,
        "finds the source configs (databases) of a repository",
    ),
    // staged
    h(
        HookGroup::Staged,
        "resync",
        EMPTY,
        SOURCE_HOOK,
        Returns::Nothing,
        "initial SnapSync or a forced (hard) resync: refresh all data on the staging storage",
    ),
    h(
        HookGroup::Staged,
        "startStaging",
        EMPTY,
        SOURCE_HOOK,
        Returns::Nothing,
        "enable: start the staging copy",
    ),
    h(
        HookGroup::Staged,
        "stopStaging",
        EMPTY,
        SOURCE_HOOK,
        Returns::Nothing,
        "disable: stop the staging copy",
    ),
    h(
        HookGroup::Staged,
        "preSnapshot",
        EMPTY,
        SOURCE_HOOK,
        Returns::Nothing,
        "before a snapshot: make the staging storage consistent",
    ),
    h(
        HookGroup::Staged,
        "postSnapshot",
        RETURN_TABLE,
        SOURCE_HOOK,
        Returns::Snapshot,
        "after a snapshot (always runs): returns the snapshot metadata",
    ),
    h(
        HookGroup::Staged,
        "status",
        Presence::Optional,
        SOURCE_HOOK,
        Returns::Status,
        "periodically: ACTIVE, INACTIVE or UNKNOWN",
    ),
    h(
        HookGroup::Staged,
        "worker",
        EMPTY,
        SOURCE_HOOK,
        Returns::Nothing,
        "every 10 seconds while enabled",
    ),
    h(
        HookGroup::Staged,
        "mountSpec",
        Presence::Optional,
        SOURCE_HOOK,
        Returns::MountPath,
        "where the staging storage is mounted (a path)",
    ),
    h(
        HookGroup::Staged,
        "ownershipSpec",
        Presence::Optional,
        SOURCE_HOOK,
        Returns::Ownership,
        "who owns the staging storage",
    ),
    // direct
    h(
        HookGroup::Direct,
        "preSnapshot",
        EMPTY,
        SOURCE_HOOK,
        Returns::Nothing,
        "before a snapshot: must call RunSync to copy the data in",
    ),
    h(
        HookGroup::Direct,
        "postSnapshot",
        RETURN_TABLE,
        SOURCE_HOOK,
        Returns::Snapshot,
        "after a snapshot (always runs): returns the snapshot metadata",
    ),
    // virtual
    h(
        HookGroup::Virtual,
        "configure",
        RETURN_TABLE,
        CONFIGURE_HOOK,
        Returns::SourceConfig,
        "provision: bring up a virtual source from a snapshot; returns its source config",
    ),
    h(
        HookGroup::Virtual,
        "unconfigure",
        EMPTY,
        SOURCE_HOOK,
        Returns::Nothing,
        "take a virtual source down for good",
    ),
    h(
        HookGroup::Virtual,
        "reconfigure",
        RETURN_TABLE,
        CONFIGURE_HOOK,
        Returns::SourceConfig,
        "bring a virtual source back after unconfigure; returns its source config",
    ),
    h(
        HookGroup::Virtual,
        "start",
        EMPTY,
        SOURCE_HOOK,
        Returns::Nothing,
        "start a virtual source",
    ),
    h(
        HookGroup::Virtual,
        "stop",
        EMPTY,
        SOURCE_HOOK,
        Returns::Nothing,
        "stop a virtual source",
    ),
    h(
        HookGroup::Virtual,
        "preSnapshot",
        EMPTY,
        SOURCE_HOOK,
        Returns::Nothing,
        "before snapshotting a virtual source",
    ),
    h(
        HookGroup::Virtual,
        "postSnapshot",
        RETURN_TABLE,
        SOURCE_HOOK,
        Returns::Snapshot,
        "after snapshotting a virtual source: returns the snapshot metadata",
    ),
    h(
        HookGroup::Virtual,
        "status",
        Presence::Optional,
        SOURCE_HOOK,
        Returns::Status,
        "periodically: ACTIVE, INACTIVE or UNKNOWN",
    ),
    h(
        HookGroup::Virtual,
        "initialize",
        Presence::Optional,
        SOURCE_HOOK,
        Returns::SourceConfig,
        "create an empty virtual source; returns its source config",
    ),
    h(
        HookGroup::Virtual,
        "mountSpec",
        Presence::Optional,
        SOURCE_HOOK,
        Returns::Mounts,
        "where to mount the virtual source's storage (an array of tables)",
    ),
    h(
        HookGroup::Virtual,
        "ownershipSpec",
        Presence::Optional,
        SOURCE_HOOK,
        Returns::Ownership,
        "who owns the virtual source's storage",
    ),
    // upgrade
    h(
        HookGroup::Upgrade,
        "upgradeSnapshot",
        Presence::Required,
        UPGRADE_HOOK,
        Returns::Upgraded(UpgradeTarget::Snapshot),
        "upgrade a snapshot's metadata from the previous version",
    ),
    h(
        HookGroup::Upgrade,
        "upgradeVirtualSource",
        Presence::Required,
        UPGRADE_HOOK,
        Returns::Upgraded(UpgradeTarget::VirtualParameters),
        "upgrade a virtual source's parameters",
    ),
    h(
        HookGroup::Upgrade,
        "upgradeLinkedSource",
        Presence::Required,
        UPGRADE_HOOK,
        Returns::Upgraded(UpgradeTarget::LinkedParameters),
        "upgrade a linked source's parameters",
    ),
    h(
        HookGroup::Upgrade,
        "upgradeSourceConfig",
        Presence::Optional,
        UPGRADE_HOOK,
        Returns::Upgraded(UpgradeTarget::SourceConfig),
        "upgrade a source config",
    ),
];

/// The catalog entry of a hook.
pub fn spec(group: HookGroup, name: &str) -> Option<&'static HookSpec> {
    CATALOG.iter().find(|s| s.group == group && s.name == name)
}

/// The catalog entry of a hook id.
pub fn spec_of(hook: &HookId) -> Option<&'static HookSpec> {
    spec(hook.group, &hook.name)
}

/// The hooks of one group, in catalog order.
pub fn hooks_of(group: HookGroup) -> impl Iterator<Item = &'static HookSpec> {
    CATALOG.iter().filter(move |s| s.group == group)
}

/// The groups that have a hook called `name` (for "wrong folder" hints).
pub fn groups_with(name: &str) -> Vec<HookGroup> {
    let mut groups: Vec<HookGroup> = CATALOG
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.group)
        .collect();
    groups.dedup();
    groups
}

/// The hook names of a group, comma-separated (for messages).
pub fn names_of(group: HookGroup) -> String {
    hooks_of(group)
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hook_of_the_spec_is_listed() {
        let staged = names_of(HookGroup::Staged);
        assert_eq!(
            staged,
            "resync, startStaging, stopStaging, preSnapshot, postSnapshot, status, worker, mountSpec, ownershipSpec"
        );
        assert_eq!(names_of(HookGroup::Direct), "preSnapshot, postSnapshot");
        assert_eq!(hooks_of(HookGroup::Virtual).count(), 11);
        assert_eq!(hooks_of(HookGroup::Upgrade).count(), 4);
        assert_eq!(groups_with("configure"), vec![HookGroup::Virtual]);
        assert_eq!(
            groups_with("preSnapshot"),
            vec![HookGroup::Staged, HookGroup::Direct, HookGroup::Virtual]
        );
    }

    #[test]
    fn globals_follow_the_table() {
        let cfg = spec(HookGroup::Virtual, "configure").unwrap();
        assert!(cfg.sees(Global::SnapshotJson));
        assert!(
            !spec(HookGroup::Virtual, "start")
                .unwrap()
                .sees(Global::SnapshotJson)
        );
        let rd = spec(HookGroup::Discovery, "repositoryDiscovery").unwrap();
        assert!(
            rd.sees(Global::Remote) && !rd.sees(Global::Repository) && !rd.sees(Global::Parameters)
        );
        assert!(
            spec(HookGroup::Discovery, "sourceConfigDiscovery")
                .unwrap()
                .sees(Global::Repository)
        );
        let up = spec(HookGroup::Upgrade, "upgradeSnapshot").unwrap();
        assert!(up.sees(Global::Parameters) && !up.sees(Global::Source));
    }
}
