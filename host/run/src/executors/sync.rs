//! `RunSync` on this machine: copy `sourceDirectory` into the dSource's
//! data directory with real `rsync`.
//!
//! The copy mirrors the source: the *contents* of the source directory
//! (`SRC/` with its trailing slash) land in the data directory, with
//! `rsync -a --delete --delete-excluded`, so files gone from the source and
//! excluded paths are removed from the copy.
//!
//! - `excludePaths` are anchored to the source root (`--exclude=/logs`);
//!   wildcard characters in a path are escaped so they match literally.
//! - Symlinks are copied as symlinks, except the `followSymlinkPaths`,
//!   which are copied as what they point to. rsync has no per-path "follow"
//!   switch, so the copy runs in passes: the first copies the tree with each
//!   followed path excluded (and protected from deletion); then each
//!   followed path, parents before children, is copied on its own as
//!   `SRC/PATH/` (a directory: the trailing slash makes the kernel follow
//!   the link; links inside it are again kept) or with `--copy-links` (a
//!   file). Before a pass, whatever sits at that path in the copy is removed
//!   if it is a symlink or of the other kind, so a pass never writes through
//!   a link left by an earlier copy. A followed path that does not exist is
//!   skipped; one under an excluded path is excluded; one inside a symlink
//!   that is itself kept as a link is a bad call (list the outer link).
//! - User: when lunabox is root and the environment user is another
//!   account, the reading side of rsync runs as that user (rsync's remote
//!   shell is `setpriv` to the user, with `--secluded-args`), and the
//!   writing side as lunabox, which owns the data directory. So the copy
//!   reads only what the environment user can read.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::account::RunAs;
use super::local::{LocalExecutor, supervise};
use crate::{ExecError, RawResult, RunCall, RunContext};

/// One rsync run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pass {
    /// Path relative to the source root ("" for the whole tree).
    pub root: String,
    /// Copy a directory's contents (`SRC/root/`), else one file with
    /// `--copy-links`.
    pub dir: bool,
    /// Filter arguments (`--exclude=...`, `--filter=P ...`).
    pub filters: Vec<String>,
}

/// Run the passes of a `RunSync` call.
pub(super) fn run(
    exec: &LocalExecutor,
    call: &RunCall,
    ctx: &RunContext,
    run_as: &RunAs,
    rsync: &Path,
    setpriv: Option<&Path>,
) -> Result<RawResult, ExecError> {
    let dest = data_directory(ctx)?;
    let source = call.source_directory.as_deref().unwrap_or_default();
    let src_local = run_as.account.home.join(source);
    let passes = plan(&src_local, &call.exclude_paths, &call.follow_symlink_paths)?;

    // The rsync client runs as lunabox (it writes the data directory) in the
    // user's home and environment; with `setpriv` the reading side runs as
    // the user.
    let client = RunAs {
        account: run_as.account.clone(),
        switch_groups: None,
    };
    let mut build = |mut args: Vec<OsString>, src_text: &str, dest: OsString| {
        if let (Some(setpriv), Some(groups)) = (setpriv, run_as.switch_groups.as_ref()) {
            let groups = if groups.is_empty() {
                "--clear-groups".to_string()
            } else {
                format!(
                    "--groups={}",
                    groups
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                )
            };
            args.push("--secluded-args".into());
            args.push(
                format!(
                    "--rsh='{}' --reuid={} --regid={} {groups} -- /bin/sh -c 'shift; exec \"$@\"' lunabox-rsync",
                    setpriv.display(),
                    run_as.account.uid,
                    run_as.account.gid
                )
                .into(),
            );
            args.push(format!("--rsync-path={}", rsync.display()).into());
            args.push("--".into());
            args.push(format!("lunabox:{src_text}").into());
        } else {
            args.push("--".into());
            args.push(src_text.into());
        }
        args.push(dest);
        exec.command(rsync, &args, call, &client, None)
    };
    run_passes(ctx, dest, source, &passes, &mut build, rsync, &client)
}

/// Run the passes of a `RunSync` call whose source is elsewhere: `stat`
/// tells what a path relative to the source is (symlink, directory) or
/// `None` when it is missing; `build` makes the rsync command from the
/// options, the source path text and the destination (see
/// [`run_passes`]).
pub(crate) fn run_with(
    call: &RunCall,
    ctx: &RunContext,
    stat: &dyn Fn(&str) -> Option<(bool, bool)>,
    build: &mut dyn FnMut(Vec<OsString>, &str, OsString) -> std::process::Command,
    rsync: &Path,
    client: &RunAs,
) -> Result<RawResult, ExecError> {
    let dest = data_directory(ctx)?;
    let source = call.source_directory.as_deref().unwrap_or_default();
    let passes = plan_with(stat, &call.exclude_paths, &call.follow_symlink_paths)?;
    run_passes(ctx, dest, source, &passes, build, rsync, client)
}

fn data_directory(ctx: &RunContext) -> Result<&Path, ExecError> {
    let dest = ctx.data_directory.as_deref().ok_or_else(|| {
        ExecError::Unavailable(
            "RunSync copies into the dSource's data directory, and this hook has none \
             (RunSync is for direct linked sources; give the hook a data directory)"
                .to_string(),
        )
    })?;
    std::fs::create_dir_all(dest).map_err(|e| {
        ExecError::Unavailable(format!(
            "could not create the data directory {}: {e}",
            dest.display()
        ))
    })?;
    Ok(dest)
}

/// Run `passes` one after the other; `build` gets each pass's options
/// (`-a`, deletes, filters), its source path text and its destination.
fn run_passes(
    ctx: &RunContext,
    dest: &Path,
    source: &str,
    passes: &[Pass],
    build: &mut dyn FnMut(Vec<OsString>, &str, OsString) -> std::process::Command,
    rsync: &Path,
    client: &RunAs,
) -> Result<RawResult, ExecError> {
    let mut raw = RawResult::default();
    for pass in passes {
        if ctx.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(ExecError::Deadline {
                stdout: raw.stdout,
                stderr: raw.stderr,
            });
        }
        let dest_path = if pass.root.is_empty() {
            dest.to_path_buf()
        } else {
            prepare_destination(dest, &pass.root, pass.dir)?
        };
        let mut src_text = source.trim_end_matches('/').to_string();
        if !pass.root.is_empty() {
            src_text = format!("{src_text}/{}", pass.root);
        }
        if pass.dir {
            src_text.push('/');
        }
        let mut args: Vec<OsString> = vec!["-a".into()];
        if pass.dir {
            args.extend(["--delete".into(), "--delete-excluded".into()]);
        } else {
            args.push("--copy-links".into());
        }
        args.extend(pass.filters.iter().map(OsString::from));
        let mut d: OsString = dest_path.into_os_string();
        if pass.dir {
            d.push("/");
        }
        tracing::debug!(?args, src = %src_text, "rsync pass");
        let cmd = build(args, &src_text, d);
        let finished = match supervise(cmd, rsync, client, ctx) {
            Ok(f) => f,
            Err(ExecError::Deadline { stdout, stderr }) => {
                return Err(ExecError::Deadline {
                    stdout: raw.stdout + &stdout,
                    stderr: raw.stderr + &stderr,
                });
            }
            Err(e) => return Err(e),
        };
        raw.stdout.push_str(&finished.stdout);
        raw.stderr.push_str(&finished.stderr);
        raw.stdout_truncated |= finished.stdout_truncated;
        raw.stderr_truncated |= finished.stderr_truncated;
        raw.exit_code = finished.exit_code;
        raw.signal = finished.signal;
        if finished.exit_code != 0 {
            break;
        }
    }
    Ok(raw)
}

/// Work out the rsync passes for copying `src` (as lunabox sees it).
pub(crate) fn plan(
    src: &Path,
    excludes: &[String],
    follows: &[String],
) -> Result<Vec<Pass>, ExecError> {
    let stat = |rel: &str| {
        let m = std::fs::symlink_metadata(src.join(rel)).ok()?;
        let is_dir = std::fs::metadata(src.join(rel)).is_ok_and(|m| m.is_dir());
        Some((m.file_type().is_symlink(), is_dir))
    };
    plan_with(&stat, excludes, follows)
}

/// [`plan`] with `stat` telling what a path relative to the source is:
/// `None` when missing, else (is a symlink, resolves to a directory).
pub(crate) fn plan_with(
    stat: &dyn Fn(&str) -> Option<(bool, bool)>,
    excludes: &[String],
    follows: &[String],
) -> Result<Vec<Pass>, ExecError> {
    let under = |path: &str, root: &str| {
        root.is_empty() || path == root || path.starts_with(&format!("{root}/"))
    };
    let mut follows: Vec<&String> = follows
        .iter()
        .filter(|f| {
            let excluded = excludes.iter().any(|e| under(f, e));
            if excluded {
                tracing::debug!(path = %f, "followSymlinkPaths entry lies in an excluded path; not copied");
            }
            !excluded
        })
        .collect();
    follows.sort();
    follows.dedup();

    // Which followed paths exist, and of what kind.
    let mut kept: Vec<(&str, bool)> = Vec::new();
    'outer: for f in follows {
        let parts: Vec<&str> = f.split('/').collect();
        for i in 1..parts.len() {
            let prefix = parts[..i].join("/");
            match stat(&prefix) {
                None => {
                    tracing::debug!(path = %f, "followSymlinkPaths entry does not exist; skipped");
                    continue 'outer;
                }
                Some((true, _)) if !kept.iter().any(|(k, _)| *k == prefix) => {
                    return Err(ExecError::BadCall(format!(
                        "followSymlinkPaths entry `{f}` lies inside `{prefix}`, a symlink that is copied as a link; \
                         add `{prefix}` to followSymlinkPaths too"
                    )));
                }
                Some(_) => {}
            }
        }
        let Some((_, is_dir)) = stat(f.as_str()) else {
            tracing::debug!(path = %f, "followSymlinkPaths entry does not exist; skipped");
            continue;
        };
        // A dangling link is a file pass: rsync reports it.
        kept.push((f.as_str(), is_dir));
    }

    let mut passes = Vec::with_capacity(kept.len() + 1);
    let roots = std::iter::once(("", true)).chain(kept.iter().copied());
    for (root, dir) in roots {
        let mut filters = Vec::new();
        if dir {
            let strip = |p: &str| -> Option<String> {
                if root.is_empty() {
                    Some(p.to_string())
                } else {
                    p.strip_prefix(&format!("{root}/")).map(str::to_string)
                }
            };
            for e in excludes {
                if let Some(rel) = strip(e) {
                    filters.push(format!("--exclude={}", anchored(&rel)));
                }
            }
            for (f, _) in &kept {
                if *f == root {
                    continue;
                }
                if let Some(rel) = strip(f) {
                    filters.push(format!("--filter=P {}", anchored(&rel)));
                    filters.push(format!("--exclude={}", anchored(&rel)));
                }
            }
        }
        passes.push(Pass {
            root: root.to_string(),
            dir,
            filters,
        });
    }
    Ok(passes)
}

/// `/rel` as an rsync pattern matching exactly that path from the transfer
/// root: wildcard characters escaped (rsync honours `\` only in a pattern
/// that has wildcards, which an escaped one then has).
fn anchored(rel: &str) -> String {
    let wild = rel.contains(['*', '?', '[']);
    let mut out = String::with_capacity(rel.len() + 2);
    out.push('/');
    for c in rel.chars() {
        if wild && matches!(c, '*' | '?' | '[' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Make `dest/rel` safe to copy into: its parents are real directories in
/// the data directory, and a symlink or an entry of the other kind there is
/// removed. Returns the path.
fn prepare_destination(dest: &Path, rel: &str, dir: bool) -> Result<PathBuf, ExecError> {
    let changed = |e: io::Error| {
        ExecError::Unavailable(format!(
            "could not prepare {}/{rel} in the data directory: {e}",
            dest.display()
        ))
    };
    let parts: Vec<&str> = rel.split('/').collect();
    let mut at = dest.to_path_buf();
    for p in &parts[..parts.len() - 1] {
        at.push(p);
        let m = std::fs::symlink_metadata(&at).map_err(changed)?;
        if !m.is_dir() {
            return Err(ExecError::Unavailable(format!(
                "{} in the data directory is not a directory; the data directory changed during the copy",
                at.display()
            )));
        }
    }
    at.push(parts[parts.len() - 1]);
    if let Ok(m) = std::fs::symlink_metadata(&at) {
        let ft = m.file_type();
        if ft.is_symlink() || (ft.is_dir() != dir) {
            if ft.is_dir() {
                std::fs::remove_dir_all(&at).map_err(changed)?;
            } else {
                std::fs::remove_file(&at).map_err(changed)?;
            }
        }
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn patterns_are_anchored_and_escaped() {
        assert_eq!(anchored("logs"), "/logs");
        assert_eq!(anchored("a b/c\\d"), "/a b/c\\d");
        assert_eq!(anchored("x[1]*?\\"), "/x\\[1]\\*\\?\\\\");
    }

    #[test]
    fn plans_passes() {
        let t = tempfile::tempdir().unwrap();
        let s = t.path();
        std::fs::create_dir_all(s.join("data/real")).unwrap();
        std::fs::create_dir_all(s.join("outside/inner")).unwrap();
        symlink(s.join("outside"), s.join("data/link")).unwrap();
        symlink(s.join("outside/inner"), s.join("outside/innerlink")).unwrap();
        symlink("real", s.join("data/kept")).unwrap();
        let src = s.join("data");
        let passes = plan(
            &src,
            &["logs".into(), "link/cache".into()],
            &[
                "link".into(),
                "link/innerlink".into(),
                "nope".into(),
                "logs/x".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            passes,
            vec![
                Pass {
                    root: String::new(),
                    dir: true,
                    filters: vec![
                        "--exclude=/logs".into(),
                        "--exclude=/link/cache".into(),
                        "--filter=P /link".into(),
                        "--exclude=/link".into(),
                        "--filter=P /link/innerlink".into(),
                        "--exclude=/link/innerlink".into(),
                    ]
                },
                Pass {
                    root: "link".into(),
                    dir: true,
                    filters: vec![
                        "--exclude=/cache".into(),
                        "--filter=P /innerlink".into(),
                        "--exclude=/innerlink".into()
                    ]
                },
                Pass {
                    root: "link/innerlink".into(),
                    dir: true,
                    filters: vec![]
                },
            ]
        );
        let e = plan(&src, &[], &["kept/x".into()]).unwrap_err();
        assert!(matches!(e, ExecError::BadCall(m) if m.contains("inside `kept`, a symlink")));
    }
}
