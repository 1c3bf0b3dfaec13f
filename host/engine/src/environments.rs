//! Environments: the hosts that Run calls are carried out on. A dSource's
//! `source.environment` / `source.host` / `source.environmentUser`
//! (and the staging ones) are opaque references to these.
//!
//! Two kinds: this machine (`--local`) and a host reached over SSH
//! (`--ssh USER@HOST[:PORT]`, see [`lunabox_run::executors::ssh`]).
//! An [`ExecutorFactory`] picks the executor for an environment: the
//! engine's default, [`StandardExecutors`], runs local environments on this
//! machine and SSH ones over one connection per host shared in the process
//! (every hook of a command or of the daemon reuses it); an embedder brings
//! its own through [`EngineBuilder::executors`](crate::EngineBuilder::executors).
//! [`EnvironmentRouter`] is the executor a hook gets: it sends each Run call
//! to the executor of the environment the call names.

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::error::{EngineError, Result};
use super::state::{State, now_ms};
use lunabox_run::executors::local::LocalExecutor;
use lunabox_run::executors::ssh::{SshExecutor, SshTarget};
use lunabox_run::{ExecError, Executor, RawResult, RunCall, RunContext};

/// What kind of host an environment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvKind {
    /// This machine.
    Local,
    /// A host reached over SSH.
    Ssh,
}

impl EnvKind {
    /// The name stored and shown (`local`, `ssh`).
    pub fn as_str(self) -> &'static str {
        match self {
            EnvKind::Local => "local",
            EnvKind::Ssh => "ssh",
        }
    }

    fn from_str(s: &str) -> EnvKind {
        match s {
            "ssh" => EnvKind::Ssh,
            _ => EnvKind::Local,
        }
    }
}

/// How an SSH environment is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SshAddress {
    /// The user to log in as.
    pub user: String,
    /// The host name or address.
    pub host: String,
    /// The SSH port (22 by default).
    pub port: u16,
    /// The private key file (absolute).
    pub identity: String,
    /// The known_hosts file the host key is checked against (absolute).
    pub known_hosts: String,
}

impl SshAddress {
    /// The executor's target.
    pub fn target(&self) -> SshTarget {
        SshTarget {
            user: self.user.clone(),
            host: self.host.clone(),
            port: self.port,
            identity: self.identity.clone().into(),
            known_hosts: self.known_hosts.clone().into(),
        }
    }
}

/// An environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// The environment's name (unique; what dSources and Run calls refer to).
    pub name: String,
    /// What kind of host it is.
    pub kind: EnvKind,
    /// The host reference hooks see (`source.host`).
    pub host: String,
    /// The environment user (`source.environmentUser` by default).
    pub user: String,
    /// When it was added, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// How to reach an SSH environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshAddress>,
    /// The host's OS (`uname -s`), recorded when it was added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// The environment user's home directory on the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    /// When discovery last ran on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refreshed_ms: Option<i64>,
}

/// Check a name of an environment or dSource: it becomes a file name.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "`{name}` is not a valid {what} name: use 1-64 letters, digits, `_`, `-` or `.`, starting with a letter or digit"
        )))
    }
}

fn passwd_name(uid: Option<libc::uid_t>, name: Option<&str>) -> Option<(String, libc::uid_t)> {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid out-parameter.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    let cname = name.map(|n| std::ffi::CString::new(n).ok());
    // SAFETY: buffers are valid for the given lengths; `out` is checked.
    let rc = unsafe {
        match (uid, &cname) {
            (Some(u), _) => {
                libc::getpwuid_r(u, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out)
            }
            (None, Some(Some(c))) => libc::getpwnam_r(
                c.as_ptr(),
                &mut pw,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut out,
            ),
            _ => return None,
        }
    };
    if rc != 0 || out.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points into `buf`, NUL-terminated.
    let n = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
    Some((n.to_string_lossy().into_owned(), pw.pw_uid))
}

/// The name of the user running lunabox.
pub fn current_user() -> String {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    passwd_name(Some(uid), None)
        .map(|(n, _)| n)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| uid.to_string())
}

/// Add a local environment. `user` defaults to the current user and must
/// exist on this machine.
pub fn add_local(state: &State, name: &str, user: Option<&str>) -> Result<Environment> {
    check_name("environment", name)?;
    let user = match user {
        Some(u) => {
            if passwd_name(None, Some(u)).is_none() {
                return Err(EngineError::Invalid(format!(
                    "there is no user `{u}` on this machine; pass an existing user to --user (or leave it out for `{}`)",
                    current_user()
                )));
            }
            u.to_string()
        }
        None => current_user(),
    };
    if get_opt(state, name)?.is_some() {
        return Err(EngineError::Conflict(format!(
            "an environment named `{name}` already exists; `lunabox env list` shows it, `lunabox env rm {name}` removes it"
        )));
    }
    let home = passwd_home(&user);
    let env = Environment {
        name: name.to_string(),
        kind: EnvKind::Local,
        host: "localhost".to_string(),
        user,
        created_ms: now_ms(),
        ssh: None,
        os: Some(uname_s()),
        home,
        refreshed_ms: None,
    };
    insert(state, &env)?;
    Ok(env)
}

fn uname_s() -> String {
    // SAFETY: an all-zero utsname is a valid out-parameter.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is valid for writing.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    // SAFETY: sysname is NUL-terminated on success.
    unsafe { std::ffi::CStr::from_ptr(u.sysname.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn passwd_home(user: &str) -> Option<String> {
    lunabox_run::executors::account::by_name(user)
        .ok()
        .flatten()
        .map(|a| a.home.display().to_string())
}

fn insert(state: &State, env: &Environment) -> Result<()> {
    let ssh = env
        .ssh
        .as_ref()
        .map(|s| serde_json::to_string(s).unwrap_or_default());
    state
        .conn()
        .execute(
            "INSERT INTO environments (name, kind, host, user, created_ms, ssh, os, home) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![env.name, env.kind.as_str(), env.host, env.user, env.created_ms, ssh, env.os, env.home],
        )
        .map_err(EngineError::db("adding an environment"))?;
    Ok(())
}

/// Add an SSH environment: `spec` is `USER@HOST[:PORT]`. Connects once,
/// checks the host key against `known_hosts` (strictly) and the user, and
/// records the host's OS and the user's home. Nothing is recorded when any
/// of that fails.
pub fn add_ssh(
    state: &State,
    name: &str,
    spec: &str,
    identity: &std::path::Path,
    known_hosts: &std::path::Path,
) -> Result<Environment> {
    check_name("environment", name)?;
    if get_opt(state, name)?.is_some() {
        return Err(EngineError::Conflict(format!(
            "an environment named `{name}` already exists; `lunabox env list` shows it, `lunabox env rm {name}` removes it"
        )));
    }
    let abs = |p: &std::path::Path, what: &str| -> Result<String> {
        let a = std::path::absolute(p)
            .map_err(|e| EngineError::Invalid(format!("{what} {}: {e}", p.display())))?;
        Ok(a.display().to_string())
    };
    let identity = abs(identity, "--identity")?;
    let known_hosts = abs(known_hosts, "--known-hosts")?;
    let target = SshTarget::parse(spec, identity.clone().into(), known_hosts.clone().into())
        .map_err(EngineError::Invalid)?;
    let exec = SshExecutor::shared(target.clone());
    let info = exec
        .probe()
        .map_err(|e| EngineError::Invalid(format!("environment `{name}` was not added: {e}")))?;
    if !info.sftp {
        tracing::warn!(
            "{} offers no SFTP subsystem: each Run call there starts a few more processes to make, watch and read back its output file (add `Subsystem sftp /usr/lib/openssh/sftp-server` to the host's sshd_config, or the path of its sftp-server, to avoid it)",
            target.label()
        );
    }
    if info.user != target.user {
        return Err(EngineError::Invalid(format!(
            "environment `{name}` was not added: the session on {} runs as `{}`, not `{}`",
            target.label(),
            info.user,
            target.user
        )));
    }
    let env = Environment {
        name: name.to_string(),
        kind: EnvKind::Ssh,
        host: target.host.clone(),
        user: target.user.clone(),
        created_ms: now_ms(),
        ssh: Some(SshAddress {
            user: target.user.clone(),
            host: target.host.clone(),
            port: target.port,
            identity,
            known_hosts,
        }),
        os: Some(info.os),
        home: Some(info.home),
        refreshed_ms: None,
    };
    insert(state, &env)?;
    Ok(env)
}

/// Record that discovery ran on `name` now.
pub fn mark_refreshed(state: &State, name: &str, ms: i64) -> Result<()> {
    state
        .conn()
        .execute(
            "UPDATE environments SET refreshed_ms = ?2 WHERE name = ?1",
            params![name, ms],
        )
        .map_err(EngineError::db("recording a refresh"))?;
    Ok(())
}

const ENV_COLUMNS: &str = "name, kind, host, user, created_ms, ssh, os, home, refreshed_ms";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Environment> {
    let kind: String = r.get(1)?;
    let ssh: Option<String> = r.get(5)?;
    Ok(Environment {
        name: r.get(0)?,
        kind: EnvKind::from_str(&kind),
        host: r.get(2)?,
        user: r.get(3)?,
        created_ms: r.get(4)?,
        ssh: ssh.and_then(|s| serde_json::from_str(&s).ok()),
        os: r.get(6)?,
        home: r.get(7)?,
        refreshed_ms: r.get(8)?,
    })
}

/// One environment, if it exists.
pub fn get_opt(state: &State, name: &str) -> Result<Option<Environment>> {
    state
        .conn()
        .query_row(
            &format!("SELECT {ENV_COLUMNS} FROM environments WHERE name = ?1"),
            [name],
            row,
        )
        .optional()
        .map_err(EngineError::db("reading an environment"))
}

/// One environment; an error naming the fix if it does not exist.
pub fn get(state: &State, name: &str) -> Result<Environment> {
    get_opt(state, name)?.ok_or_else(|| {
        EngineError::NotFound(format!(
            "there is no environment `{name}`; add it with `lunabox env add {name} --local` (`lunabox env list` shows the others)"
        ))
    })
}

/// All environments, by name.
pub fn list(state: &State) -> Result<Vec<Environment>> {
    let mut st = state
        .conn()
        .prepare(&format!(
            "SELECT {ENV_COLUMNS} FROM environments ORDER BY name"
        ))
        .map_err(EngineError::db("listing environments"))?;
    st.query_map([], row)
        .map_err(EngineError::db("listing environments"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(EngineError::db("listing environments"))
}

/// Remove an environment; refused while a dSource uses it.
pub fn remove(state: &mut State, name: &str) -> Result<()> {
    get(state, name)?;
    state.write("removing an environment", |tx| {
        let users: Vec<String> = {
            let mut st = tx
                .prepare("SELECT name FROM dsources WHERE environment = ?1 OR staging_environment = ?1 ORDER BY name")
                .map_err(EngineError::db("finding dSources of an environment"))?;
            st.query_map([name], |r| r.get(0))
                .map_err(EngineError::db("finding dSources of an environment"))?
                .collect::<rusqlite::Result<_>>()
                .map_err(EngineError::db("finding dSources of an environment"))?
        };
        let vdbs: Vec<String> = {
            let mut st = tx
                .prepare("SELECT name FROM vdbs WHERE environment = ?1 ORDER BY name")
                .map_err(EngineError::db("finding VDBs of an environment"))?;
            st.query_map([name], |r| r.get(0))
                .map_err(EngineError::db("finding VDBs of an environment"))?
                .collect::<rusqlite::Result<_>>()
                .map_err(EngineError::db("finding VDBs of an environment"))?
        };
        if !vdbs.is_empty() {
            return Err(EngineError::Conflict(format!(
                "environment `{name}` runs VDB(s) {}; remove them first (`lunabox vdb rm NAME`)",
                vdbs.join(", ")
            )));
        }
        if !users.is_empty() {
            return Err(EngineError::Conflict(format!(
                "environment `{name}` is used by dSource(s) {}; it cannot be removed while they exist",
                users.join(", ")
            )));
        }
        tx.execute("DELETE FROM discovered WHERE environment = ?1", [name])
            .map_err(EngineError::db("removing an environment"))?;
        tx.execute("DELETE FROM environments WHERE name = ?1", [name])
            .map_err(EngineError::db("removing an environment"))?;
        Ok(())
    })
}

/// Who carries out Run calls on an environment: the engine asks its factory
/// once per environment for each hook it runs.
///
/// ```
/// use std::sync::Arc;
/// use lunabox_engine::environments::{Environment, ExecutorFactory};
/// use lunabox_run::Executor;
/// use lunabox_run::executors::scripted::ScriptedExecutor;
///
/// /// Every environment answered from scripted responses (a test double an
/// /// embedder might use to dry-run its toolkits).
/// struct Scripted(Arc<ScriptedExecutor>);
///
/// impl ExecutorFactory for Scripted {
///     fn executor_for(&self, _env: &Environment) -> Arc<dyn Executor> {
///         self.0.clone()
///     }
/// }
/// ```
pub trait ExecutorFactory: Send + Sync {
    /// The executor for Run calls on `env`.
    fn executor_for(&self, env: &Environment) -> Arc<dyn Executor>;
}

/// The engine's default executors: a local environment's Run calls run on
/// this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardExecutors;

impl ExecutorFactory for StandardExecutors {
    fn executor_for(&self, env: &Environment) -> Arc<dyn Executor> {
        match env.kind {
            EnvKind::Local => Arc::new(LocalExecutor::new()),
            EnvKind::Ssh => match &env.ssh {
                Some(a) => Arc::new(SshExecutor::shared(a.target())),
                None => Arc::new(Unreachable(env.name.clone())),
            },
        }
    }
}

/// The executor of an SSH environment whose address is unreadable.
struct Unreachable(String);

impl Executor for Unreachable {
    fn execute(&self, _: &RunCall, _: &RunContext) -> std::result::Result<RawResult, ExecError> {
        Err(ExecError::Unavailable(format!(
            "environment `{}` has no readable SSH address in the state; remove it and add it again",
            self.0
        )))
    }
}

/// The executor a dSource's hooks get: routes each Run call to the
/// executor of the environment it names (`environment`, else `host`), or
/// to the default environment when the call names none.
pub struct EnvironmentRouter {
    envs: BTreeMap<String, Arc<dyn Executor>>,
    hosts: BTreeMap<String, String>,
    default: String,
}

impl EnvironmentRouter {
    /// A router over `envs`, each served by the executor `factory` gives;
    /// calls naming no environment go to `default` (one of `envs`).
    pub fn new(
        envs: &[Environment],
        default: &str,
        factory: &dyn ExecutorFactory,
    ) -> EnvironmentRouter {
        EnvironmentRouter {
            envs: envs
                .iter()
                .map(|e| (e.name.clone(), factory.executor_for(e)))
                .collect(),
            hosts: envs
                .iter()
                .map(|e| (e.host.clone(), e.name.clone()))
                .collect(),
            default: default.to_string(),
        }
    }
}

impl Executor for EnvironmentRouter {
    fn execute(
        &self,
        call: &RunCall,
        ctx: &RunContext,
    ) -> std::result::Result<RawResult, ExecError> {
        let name = match (&call.target.environment, &call.target.host) {
            (Some(e), _) => e.clone(),
            (None, Some(h)) => self.hosts.get(h).cloned().unwrap_or_else(|| h.clone()),
            (None, None) => self.default.clone(),
        };
        match self.envs.get(&name) {
            Some(ex) => ex.execute(call, ctx),
            None => Err(ExecError::Unavailable(format!(
                "{} names environment `{name}`, which is not one of this dSource's environments ({}); pass `environment = source.environment` or `source.stagingEnvironment`",
                call.function.name(),
                self.envs.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(&dir.path().join("s.db")).unwrap();
        let e = add_local(&s, "local", None).unwrap();
        assert_eq!(e.user, current_user());
        assert!(
            add_local(&s, "local", None)
                .unwrap_err()
                .to_string()
                .contains("already exists")
        );
        assert!(add_local(&s, "bad name", None).is_err());
        assert!(
            add_local(&s, "x", Some("no-such-user-zz"))
                .unwrap_err()
                .to_string()
                .contains("no user")
        );
        assert_eq!(list(&s).unwrap().len(), 1);
        remove(&mut s, "local").unwrap();
        assert!(
            get(&s, "local")
                .unwrap_err()
                .to_string()
                .contains("env add local")
        );
    }
}
