//! How long each engine hook may run: a default per hook kind fitting what
//! it does, overridden per dSource (`lunabox policy NAME --timeout
//! HOOK=DURATION`, stored with the dSource) and per command (`--timeout
//! [HOOK=]DURATION` on `link`, `sync`, `enable`, `disable`, `status`,
//! `daemon`). The command's setting wins over the dSource's, which wins over
//! the default.
//!
//! | hooks | default |
//! |---|---|
//! | status (staged, virtual) | 30 s |
//! | worker | 60 s |
//! | mountSpec, ownershipSpec | 60 s |
//! | discovery | 5 min |
//! | upgrade scripts | 5 min |
//! | startStaging, stopStaging, virtual start/stop/unconfigure | 30 min |
//! | staged preSnapshot, postSnapshot, virtual pre/postSnapshot | 1 h |
//! | direct preSnapshot (it copies the data with RunSync) | 12 h |
//! | resync, virtual configure/reconfigure/initialize | 12 h |
//!
//! A key names a hook as `status` (any kind), `staged/status` (one kind) or
//! `*` (every hook the command runs).

use std::collections::BTreeMap;
use std::time::Duration;

use lunabox_toolkit::{HookGroup, HookId};

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// The default deadline of `hook`.
pub fn default_for(hook: &HookId) -> Duration {
    match (hook.group, hook.name.as_str()) {
        (_, "status") => 30 * SECOND,
        (_, "worker" | "mountSpec" | "ownershipSpec") => 60 * SECOND,
        (HookGroup::Discovery | HookGroup::Upgrade, _) => 5 * MINUTE,
        (_, "startStaging" | "stopStaging" | "start" | "stop" | "unconfigure") => 30 * MINUTE,
        (HookGroup::Direct, "preSnapshot") => 12 * HOUR,
        (_, "preSnapshot" | "postSnapshot") => HOUR,
        (_, "resync" | "configure" | "reconfigure" | "initialize") => 12 * HOUR,
        _ => HOUR,
    }
}

/// Deadlines set for some hooks (by a command or a dSource).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookTimeouts(BTreeMap<String, Duration>);

impl HookTimeouts {
    /// No overrides.
    pub fn none() -> HookTimeouts {
        HookTimeouts::default()
    }

    /// Parse `--timeout` values: `DURATION` (every hook) or `HOOK=DURATION`.
    pub fn parse(values: &[String]) -> Result<HookTimeouts, String> {
        let mut map = BTreeMap::new();
        for v in values {
            let (key, d) = match v.split_once('=') {
                Some((k, d)) => (k.trim().to_string(), d),
                None => ("*".to_string(), v.as_str()),
            };
            check_key(&key).map_err(|m| format!("--timeout `{v}`: {m}"))?;
            let d = lunabox_toolkit::units::parse_duration(d)
                .map_err(|m| format!("--timeout `{v}`: {m}"))?;
            if d.is_zero() {
                return Err(format!(
                    "--timeout `{v}`: a hook needs some time; give a duration above zero"
                ));
            }
            map.insert(key, d);
        }
        Ok(HookTimeouts(map))
    }

    /// The deadline set for `hook`, if any (`group/name`, then `name`, then `*`).
    pub fn get(&self, hook: &HookId) -> Option<Duration> {
        self.0
            .get(&hook.to_string())
            .or_else(|| self.0.get(&hook.name))
            .or_else(|| self.0.get("*"))
            .copied()
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Set (`Some`) or clear (`None`) the deadline of `key`.
    pub fn set(&mut self, key: &str, d: Option<Duration>) -> Result<(), String> {
        check_key(key)?;
        match d {
            Some(d) => self.0.insert(key.to_string(), d),
            None => self.0.remove(key),
        };
        Ok(())
    }

    /// As stored: `{"status": 10000, ...}` (milliseconds).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(k, d)| (k.clone(), serde_json::json!(d.as_millis() as u64)))
                .collect(),
        )
    }

    /// Read what [`Self::to_json`] wrote (anything else reads as none).
    pub fn from_json(v: &serde_json::Value) -> HookTimeouts {
        let map = v
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), Duration::from_millis(v.as_u64()?))))
                    .collect()
            })
            .unwrap_or_default();
        HookTimeouts(map)
    }

    /// The entries, for display.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Duration)> {
        self.0.iter().map(|(k, d)| (k.as_str(), *d))
    }
}

impl serde::Serialize for HookTimeouts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

fn check_key(key: &str) -> Result<(), String> {
    if key == "*" {
        return Ok(());
    }
    let ok = match key.split_once('/') {
        Some((g, name)) => HookGroup::from_folder(g)
            .is_some_and(|g| lunabox_toolkit::hook::catalog::spec(g, name).is_some()),
        None => !lunabox_toolkit::hook::catalog::groups_with(key).is_empty(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{key}` is not a hook; write a hook name (status, worker, resync, preSnapshot, ...), \
             KIND/NAME (e.g. virtual/status) or `*`"
        ))
    }
}

/// The deadline of `hook`: the command's setting, else the dSource's, else
/// the default.
pub fn timeout_for(hook: &HookId, command: &HookTimeouts, dsource: &HookTimeouts) -> Duration {
    command
        .get(hook)
        .or_else(|| dsource.get(hook))
        .unwrap_or_else(|| default_for(hook))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_short_resync_long_and_overrides_win_in_order() {
        let status: HookId = "staged/status".parse().unwrap();
        let resync: HookId = "staged/resync".parse().unwrap();
        let none = HookTimeouts::none();
        assert_eq!(timeout_for(&status, &none, &none), 30 * SECOND);
        assert_eq!(timeout_for(&resync, &none, &none), 12 * HOUR);
        let ds = HookTimeouts::parse(&["status=10s".into()]).unwrap();
        assert_eq!(timeout_for(&status, &none, &ds), 10 * SECOND);
        let cmd = HookTimeouts::parse(&["2s".into()]).unwrap();
        assert_eq!(timeout_for(&status, &cmd, &ds), 2 * SECOND);
        assert_eq!(timeout_for(&resync, &cmd, &ds), 2 * SECOND);
        let cmd = HookTimeouts::parse(&["staged/resync=1h".into()]).unwrap();
        assert_eq!(timeout_for(&resync, &cmd, &ds), HOUR);
        assert_eq!(
            HookTimeouts::from_json(&ds.to_json()),
            ds,
            "stored and read back"
        );
        assert!(
            HookTimeouts::parse(&["statsu=1s".into()])
                .unwrap_err()
                .contains("not a hook")
        );
        assert!(HookTimeouts::parse(&["status=0s".into()]).is_err());
        assert!(HookTimeouts::parse(&["status=soon".into()]).is_err());
    }
}
