//! Local user accounts: who a command runs as on this machine.
//!
//! Rule (spec section 5, issue 3 item 5): a command runs as the environment
//! user, from that user's home directory. When lunabox runs as root it
//! switches to any local account; otherwise it can only run commands as
//! itself, so the user must be absent or the current user's name.

use std::ffi::{CStr, CString};
use std::io;
use std::path::PathBuf;

use crate::ExecError;

/// A local account (from the passwd database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The login name.
    pub name: String,
    /// The numeric user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// The home directory (where commands run from).
    pub home: PathBuf,
    /// The login shell.
    pub shell: PathBuf,
}

/// Who a command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The account the command runs as.
    pub account: Account,
    /// `Some(supplementary groups)` when the child must switch to
    /// `account` (lunabox is root and `account` is another user).
    pub switch_groups: Option<Vec<u32>>,
}

impl RunAs {
    /// Whether the child changes user.
    pub fn switches(&self) -> bool {
        self.switch_groups.is_some()
    }
}

/// Look an account up by name. `Ok(None)` when there is none.
pub fn by_name(name: &str) -> io::Result<Option<Account>> {
    let Ok(c) = CString::new(name) else {
        return Ok(None);
    };
    lookup(|pw, buf, res| unsafe {
        // SAFETY: all pointers are valid for the call; buf has buf.len() bytes.
        libc::getpwnam_r(c.as_ptr(), pw, buf.as_mut_ptr(), buf.len(), res)
    })
}

/// Look an account up by uid. `Ok(None)` when there is none.
pub fn by_uid(uid: u32) -> io::Result<Option<Account>> {
    lookup(|pw, buf, res| unsafe {
        // SAFETY: as in by_name.
        libc::getpwuid_r(uid, pw, buf.as_mut_ptr(), buf.len(), res)
    })
}

fn lookup(
    mut call: impl FnMut(*mut libc::passwd, &mut [libc::c_char], *mut *mut libc::passwd) -> libc::c_int,
) -> io::Result<Option<Account>> {
    let mut size = 1024usize;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: passwd is a plain C struct; zeroed is a valid initial value.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pw, &mut buf, &mut res);
        if rc == libc::ERANGE && size < (1 << 22) {
            size *= 4;
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if res.is_null() {
            return Ok(None);
        }
        // SAFETY: on success the strings point into buf, NUL-terminated.
        let text = |p: *const libc::c_char| {
            if p.is_null() {
                String::new()
            } else {
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
            }
        };
        return Ok(Some(Account {
            name: text(pw.pw_name),
            uid: pw.pw_uid,
            gid: pw.pw_gid,
            home: PathBuf::from(text(pw.pw_dir)),
            shell: PathBuf::from(text(pw.pw_shell)),
        }));
    }
}

/// The supplementary groups of `account` (as `initgroups` would set them).
pub fn groups_of(account: &Account) -> io::Result<Vec<u32>> {
    let name = CString::new(account.name.as_str())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut n: libc::c_int = 32;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let mut count = n;
        // SAFETY: groups has `count` entries; getgrouplist writes at most that many.
        let rc = unsafe {
            libc::getgrouplist(name.as_ptr(), account.gid, groups.as_mut_ptr(), &mut count)
        };
        if rc >= 0 {
            groups.truncate(count as usize);
            return Ok(groups);
        }
        if count <= n || n > 65536 {
            return Err(io::Error::other(format!(
                "could not list the groups of `{}`",
                account.name
            )));
        }
        n = count;
    }
}

/// The account lunabox runs as. Without a passwd entry (a container with
/// an arbitrary uid) the name is the uid and the home is `$HOME` or `/`.
pub fn current() -> Account {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    // SAFETY: getegid cannot fail.
    let gid = unsafe { libc::getegid() };
    match by_uid(uid) {
        Ok(Some(a)) => a,
        _ => Account {
            name: uid.to_string(),
            uid,
            gid,
            home: std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from),
            shell: PathBuf::from("/bin/sh"),
        },
    }
}

/// Decide who runs a call that asks for `requested` (the call's `user`).
/// `me` is the account lunabox runs as; `lookup` finds accounts by name.
pub fn resolve(
    requested: Option<&str>,
    me: &Account,
    lookup: &dyn Fn(&str) -> io::Result<Option<Account>>,
) -> Result<RunAs, ExecError> {
    let current = || RunAs {
        account: me.clone(),
        switch_groups: None,
    };
    let name = match requested.map(str::trim) {
        None | Some("") => return Ok(current()),
        Some(n) => n,
    };
    if name == me.name {
        return Ok(current());
    }
    let account = match lookup(name) {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Err(ExecError::Unavailable(format!(
                "the environment user `{name}` does not exist on this machine; \
                 the local executor runs commands as a local account, so use an existing user name"
            )));
        }
        Err(e) => {
            return Err(ExecError::Unavailable(format!(
                "could not look up the environment user `{name}`: {e}"
            )));
        }
    };
    if account.uid == me.uid {
        return Ok(current());
    }
    if me.uid != 0 {
        return Err(ExecError::Unavailable(format!(
            "the call asks to run as `{name}`, but lunabox runs as `{}` and is not root, so it can only run \
             commands as `{}`; run lunabox as root, or make the environment user `{}`",
            me.name, me.name, me.name
        )));
    }
    let groups = groups_of(&account).map_err(|e| {
        ExecError::Unavailable(format!(
            "could not list the groups of the environment user `{name}`: {e}"
        ))
    })?;
    Ok(RunAs {
        account,
        switch_groups: Some(groups),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(name: &str, uid: u32) -> Account {
        Account {
            name: name.into(),
            uid,
            gid: uid,
            home: PathBuf::from(format!("/home/{name}")),
            shell: PathBuf::from("/bin/bash"),
        }
    }

    fn fake(name: &str) -> io::Result<Option<Account>> {
        Ok(match name {
            "alice" => Some(acct("alice", 1001)),
            "bob" => Some(acct("bob", 1002)),
            "alice2" => Some(acct("alice2", 1001)),
            _ => None,
        })
    }

    #[test]
    fn not_root_runs_only_as_itself() {
        let me = acct("alice", 1001);
        assert_eq!(resolve(None, &me, &fake).unwrap().account, me);
        assert_eq!(resolve(Some(""), &me, &fake).unwrap().account, me);
        let same = resolve(Some("alice"), &me, &fake).unwrap();
        assert!(!same.switches());
        // Another name for the same uid is the same user.
        assert!(!resolve(Some("alice2"), &me, &fake).unwrap().switches());
        let ExecError::Unavailable(m) = resolve(Some("bob"), &me, &fake).unwrap_err() else {
            panic!()
        };
        assert!(
            m.contains("asks to run as `bob`, but lunabox runs as `alice` and is not root"),
            "{m}"
        );
        let ExecError::Unavailable(m) = resolve(Some("nosuch"), &me, &fake).unwrap_err() else {
            panic!()
        };
        assert!(m.contains("`nosuch` does not exist"), "{m}");
    }

    #[test]
    fn real_lookups() {
        let root = by_name("root").unwrap().unwrap();
        assert_eq!(root.uid, 0);
        assert_eq!(by_uid(0).unwrap().unwrap().name, "root");
        assert_eq!(by_name("no-such-user-lunabox").unwrap(), None);
        assert_eq!(by_name("a\0b").unwrap(), None);
        assert!(groups_of(&root).unwrap().contains(&0));
    }
}
