//! `RunSync` with the real `LocalExecutor` and real rsync: excludes,
//! symlinks kept or followed, mirroring, users.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lunabox_run::executors::LocalExecutor;
use lunabox_run::{self, RunContext, RunFailure, RunFunction, TranscriptEntry};
use serde_json::{Value, json};

#[path = "../../../tests/common/skip.rs"]
mod skip;

fn sync(call: Value, data: &Path) -> (Result<Option<Value>, RunFailure>, TranscriptEntry) {
    let ctx = RunContext {
        deadline: Some(Instant::now() + Duration::from_secs(60)),
        data_directory: Some(data.to_path_buf()),
        ..RunContext::default()
    };
    lunabox_run::perform(
        RunFunction::RunSync,
        &call.to_string(),
        &LocalExecutor::new(),
        &ctx,
    )
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// A source tree with files to exclude, links to keep and links to follow,
/// and things outside it that links point to.
struct Fixture {
    _t: tempfile::TempDir,
    src: PathBuf,
    outside: PathBuf,
    data: PathBuf,
}

fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let outside = t.path().join("outside");
    let data = t.path().join("data");
    write(&src.join("db/base.dat"), "base");
    write(&src.join("db/conf/db.conf"), "port=5432");
    write(&src.join("logs/today.log"), "log");
    write(&src.join("db/tmp/scratch"), "tmp");
    write(&src.join("odd [1]*/keep.txt"), "odd");
    write(&src.join("odd [1]x/also.txt"), "similar name, not excluded");
    write(&src.join("name with space.txt"), "space");
    write(&outside.join("wal/000001"), "wal1");
    write(&outside.join("wal/deep/000002"), "wal2");
    write(&outside.join("tablespace/t1.dat"), "ts");
    write(&outside.join("secret.key"), "key");
    write(&outside.join("elsewhere/x"), "x");
    symlink("base.dat", src.join("db/base.link")).unwrap(); // relative, kept
    symlink(outside.join("elsewhere"), src.join("db/elsewhere")).unwrap(); // absolute dir link, kept
    symlink(outside.join("wal"), src.join("db/pg_wal")).unwrap(); // followed dir
    symlink(outside.join("secret.key"), src.join("db/server.key")).unwrap(); // followed file
    symlink(outside.join("tablespace"), outside.join("wal/ts_link")).unwrap(); // inside the followed dir, kept
    Fixture {
        _t: t,
        src,
        outside,
        data,
    }
}

#[test]
fn copies_contents_with_excludes_kept_links_and_followed_links() {
    let f = fixture();
    let (r, entry) = sync(
        json!({
            "sourceDirectory": f.src.to_str().unwrap(),
            "excludePaths": ["logs", "db/tmp", "odd [1]*", "db/pg_wal/deep"],
            "followSymlinkPaths": ["db/pg_wal", "db/server.key", "db/not-there", "logs/x"]
        }),
        &f.data,
    );
    assert_eq!(r, Ok(None), "{entry:?}");
    assert_eq!(entry.exit_code, Some(0));
    let d = &f.data;
    // Contents of the source, not the source directory itself.
    assert!(!exists(&d.join("src")));
    assert_eq!(read(&d.join("db/base.dat")), "base");
    assert_eq!(read(&d.join("db/conf/db.conf")), "port=5432");
    assert_eq!(read(&d.join("name with space.txt")), "space");
    // Excludes, anchored and literal.
    assert!(!exists(&d.join("logs")));
    assert!(!exists(&d.join("db/tmp")));
    assert!(!exists(&d.join("odd [1]*")));
    assert_eq!(
        read(&d.join("odd [1]x/also.txt")),
        "similar name, not excluded"
    );
    // Links not listed are kept as links, with their targets unchanged.
    assert!(is_link(&d.join("db/base.link")));
    assert_eq!(
        std::fs::read_link(d.join("db/base.link")).unwrap(),
        PathBuf::from("base.dat")
    );
    assert!(is_link(&d.join("db/elsewhere")));
    assert_eq!(
        std::fs::read_link(d.join("db/elsewhere")).unwrap(),
        f.outside.join("elsewhere")
    );
    // Followed links are copied as what they point to.
    let wal = d.join("db/pg_wal");
    assert!(!is_link(&wal) && wal.is_dir());
    assert_eq!(read(&wal.join("000001")), "wal1");
    assert!(
        !exists(&wal.join("deep")),
        "an exclude inside a followed directory applies"
    );
    assert!(
        is_link(&wal.join("ts_link")),
        "links inside a followed directory are kept"
    );
    let key = d.join("db/server.key");
    assert!(!is_link(&key));
    assert_eq!(read(&key), "key");
}

#[test]
fn a_second_sync_mirrors_the_source_and_never_writes_through_old_links() {
    let f = fixture();
    let call = json!({"sourceDirectory": f.src.to_str().unwrap(), "excludePaths": ["logs"]});
    assert_eq!(sync(call.clone(), &f.data).0, Ok(None));
    // The first copy kept db/pg_wal as a link to outside/wal.
    assert!(is_link(&f.data.join("db/pg_wal")));
    write(&f.data.join("stale.txt"), "not in the source");
    std::fs::remove_file(f.src.join("db/conf/db.conf")).unwrap();
    let sentinel = f.outside.join("wal/sentinel");
    write(&sentinel, "must survive");

    let call = json!({
        "sourceDirectory": f.src.to_str().unwrap(),
        "excludePaths": ["logs", "name with space.txt"],
        "followSymlinkPaths": ["db/pg_wal"]
    });
    let (r, entry) = sync(call, &f.data);
    assert_eq!(r, Ok(None), "{entry:?}");
    assert!(
        !exists(&f.data.join("stale.txt")),
        "files not in the source are deleted"
    );
    assert!(
        !exists(&f.data.join("db/conf/db.conf")),
        "files gone from the source are deleted"
    );
    assert!(
        !exists(&f.data.join("name with space.txt")),
        "newly excluded files are deleted"
    );
    let wal = f.data.join("db/pg_wal");
    assert!(
        !is_link(&wal) && wal.is_dir(),
        "the old link was replaced by a copy"
    );
    assert_eq!(read(&wal.join("sentinel")), "must survive");
    // The copy did not go through the old link into outside/wal.
    assert_eq!(read(&sentinel), "must survive");
    assert_eq!(std::fs::read_dir(f.outside.join("wal")).unwrap().count(), 4);
}

#[test]
fn relative_source_is_from_the_user_s_home_and_nested_follows_work() {
    let f = fixture();
    symlink(
        f.outside.join("tablespace"),
        f.outside.join("wal/ts_follow"),
    )
    .unwrap();
    // A relative sourceDirectory is resolved from the user's home.
    let me = lunabox_run::executors::account::current();
    let rel = pathdiff(&f.src, &me.home);
    let (r, entry) = sync(
        json!({"sourceDirectory": rel, "followSymlinkPaths": ["db/pg_wal", "db/pg_wal/ts_follow"]}),
        &f.data,
    );
    assert_eq!(r, Ok(None), "{entry:?}");
    let ts = f.data.join("db/pg_wal/ts_follow");
    assert!(!is_link(&ts));
    assert_eq!(read(&ts.join("t1.dat")), "ts");
    assert!(is_link(&f.data.join("db/pg_wal/ts_link")));
}

/// `to` as a path relative to `from` (both absolute).
fn pathdiff(to: &Path, from: &Path) -> String {
    let to: Vec<_> = to.components().collect();
    let from: Vec<_> = from.components().collect();
    let common = to.iter().zip(&from).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

#[test]
fn a_follow_path_inside_a_kept_link_is_a_bad_call() {
    let f = fixture();
    let (r, _) = sync(
        json!({"sourceDirectory": f.src.to_str().unwrap(), "followSymlinkPaths": ["db/elsewhere/x"]}),
        &f.data,
    );
    let RunFailure::BadCall(m) = r.unwrap_err() else {
        panic!()
    };
    assert!(
        m.contains(
            "`db/elsewhere/x` lies inside `db/elsewhere`, a symlink that is copied as a link"
        ),
        "{m}"
    );
}

#[test]
fn a_dangling_followed_link_and_a_missing_source_fail_with_rsync_s_words() {
    let f = fixture();
    symlink(f.outside.join("gone"), f.src.join("dangling")).unwrap();
    let (r, _) = sync(
        json!({"sourceDirectory": f.src.to_str().unwrap(), "followSymlinkPaths": ["dangling"]}),
        &f.data,
    );
    let RunFailure::Exit {
        exit_code, message, ..
    } = r.unwrap_err()
    else {
        panic!()
    };
    assert_ne!(exit_code, 0);
    assert!(
        message.starts_with(&format!(
            "RunSync (sourceDirectory {}) exited with status",
            f.src.display()
        )),
        "{message}"
    );
    assert!(message.contains("dangling"), "{message}");

    let (r, _) = sync(
        json!({"sourceDirectory": f.src.join("nope").to_str().unwrap()}),
        &f.data,
    );
    let RunFailure::Exit { stderr, .. } = r.unwrap_err() else {
        panic!()
    };
    assert!(
        stderr.contains("nope") && stderr.contains("No such file"),
        "{stderr}"
    );
}

#[test]
fn without_a_data_directory_run_sync_is_unavailable() {
    let ctx = RunContext::default();
    let (r, _) = lunabox_run::perform(
        RunFunction::RunSync,
        r#"{"sourceDirectory": "/tmp"}"#,
        &LocalExecutor::new(),
        &ctx,
    );
    let RunFailure::Unavailable(m) = r.unwrap_err() else {
        panic!()
    };
    assert!(m.contains("this hook has none"), "{m}");
}

#[test]
fn as_root_the_source_is_read_as_the_environment_user() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        skip::skipped(
            "as_root_the_source_is_read_as_the_environment_user",
            "needs root to switch users",
        );
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let a = ["cloudsdk", "nobody", "daemon"]
        .iter()
        .filter_map(|n| lunabox_run::executors::account::by_name(n).ok().flatten())
        .find(|a| a.uid != 0 && a.home.is_dir())
        .expect("an unprivileged account with a home directory (e.g. cloudsdk) for this test");
    let f = fixture();
    let top = f.src.parent().unwrap();
    std::fs::set_permissions(top, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Readable by everyone: copied, and the copy belongs to the source's owner.
    let (r, entry) = sync(
        json!({"sourceDirectory": f.src.to_str().unwrap(), "user": a.name, "excludePaths": ["logs"], "followSymlinkPaths": ["db/pg_wal"]}),
        &f.data,
    );
    assert_eq!(r, Ok(None), "{entry:?}");
    assert_eq!(read(&f.data.join("db/pg_wal/000001")), "wal1");
    assert!(is_link(&f.data.join("db/base.link")));
    // A directory only root can read: the user's copy is refused.
    std::fs::set_permissions(
        f.src.join("db/conf"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let (r, _) = sync(
        json!({"sourceDirectory": f.src.to_str().unwrap(), "user": a.name}),
        &f.data,
    );
    let RunFailure::Exit { stderr, .. } = r.unwrap_err() else {
        panic!()
    };
    assert!(stderr.contains("Permission denied"), "{stderr}");
}
