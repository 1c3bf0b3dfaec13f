//! The database-shaped case of the snapshot benchmark (issue 12): a data
//! directory of big files (default 1 GiB in 256 MiB files) with 1% of its
//! 8 KiB pages rewritten in place at random between snapshots, for each
//! storage driver on a filesystem of its kind, against a full copy
//! (`cp -a --reflink=never`: GNU cp clones on CoW filesystems by default)
//! of the same data on the same filesystem, in the same run.
//!
//! * `copy`: in the bench directory (ext4 here);
//! * `btrfs` and `reflink`: on loop-mounted btrfs and XFS (reflink=1)
//!   images, made when the bench runs as root (else said loudly and left
//!   out). `LUNABOX_BENCH_IMAGE_SIZE` sizes the sparse images (default 3.5
//!   GiB for 1 GiB of data: the data, the full copy and the changes).
//!
//! Figures per driver: the incremental snapshot's time (build and commit,
//! fsyncs included; the median of the rounds) against `cp -a`'s, both
//! unflushed and followed by `syncfs` (the copy made durable, as the
//! snapshot is; the median of three copies); the new space of
//! a round (rewrite + snapshot, from `statfs` after `syncfs`) against the
//! copy's; the previous snapshot's exclusive and shared space from
//! `FIEMAP`; and the time to provision a VDB's data from the snapshot
//! (`clone_to`). Targets: btrfs and reflink at most 2% of the copy's time
//! (flushed) and 3% of its space; provisioning under 1 s.

use std::path::{Path, PathBuf};
use std::time::Instant;

use lunabox_engine::snapshots::SnapshotStore;
use lunabox_engine::storage::{self, DriverKind};

#[path = "../../../tests/common/loopfs.rs"]
mod loopfs;

use loopfs::{LoopFs, full_copy, rewrite_pages, write_data_files};

/// Bytes in use on `dir`'s filesystem, after `syncfs`.
pub fn used(dir: &Path) -> u64 {
    let f = std::fs::File::open(dir).unwrap();
    // SAFETY: `f` is open; `st` is a valid out-parameter.
    unsafe {
        use std::os::unix::io::AsRawFd;
        libc::syncfs(f.as_raw_fd());
        let mut st: libc::statfs = std::mem::zeroed();
        assert_eq!(libc::fstatfs(f.as_raw_fd(), &mut st), 0);
        (st.f_blocks - st.f_bfree) as u64 * st.f_bsize as u64
    }
}

/// `syncfs` on `dir`'s filesystem.
pub fn syncfs(dir: &Path) {
    let f = std::fs::File::open(dir).unwrap();
    // SAFETY: `f` is open.
    unsafe {
        use std::os::unix::io::AsRawFd;
        libc::syncfs(f.as_raw_fd());
    }
}

/// One driver's figures.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub driver: DriverKind,
    pub filesystem: String,
    pub bytes: u64,
    pub file_bytes: u64,
    pub rewritten_bytes: u64,
    pub snapshot_ms: f64,
    pub cp_ms: f64,
    pub cp_synced_ms: f64,
    pub round_bytes: u64,
    pub cp_bytes: u64,
    pub previous_exclusive_bytes: u64,
    pub previous_shared_bytes: u64,
    pub provision_ms: f64,
    pub time_percent: f64,
    pub space_percent: f64,
    pub target_met: Option<bool>,
}

fn case(kind: DriverKind, base: &Path, total: u64, file_size: u64, rounds: usize) -> Figures {
    let tmp = tempfile::tempdir_in(base).unwrap();
    let store = SnapshotStore::with_driver(&tmp.path().join("ds"), storage::driver(kind));
    store.create().unwrap();
    let files = write_data_files(
        &store.live_dir(),
        (total / file_size).max(1) as usize,
        file_size as usize,
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    store.commit(store.build(1, None).unwrap()).unwrap();
    let mut snap_ms = Vec::new();
    let mut round_bytes = Vec::new();
    let mut rewritten = 0;
    for round in 0..rounds {
        let before = used(base);
        rewritten = rewrite_pages(&files, 1.0, 1 + round as u64);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let id = round as u64 + 2;
        let t = Instant::now();
        let b = store.build(id, Some(id - 1)).unwrap();
        store.commit(b).unwrap();
        snap_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        round_bytes.push(used(base).saturating_sub(before));
    }
    let last = rounds as u64 + 1;
    let prev = store.usage(last - 1).unwrap();

    // The full copy three times (its time on a loop image varies by 2-3x
    // from run to run); the medians are the baseline. Its space is taken
    // from the first copy: XFS frees a removed copy's blocks in the
    // background, so a later copy can appear to take none.
    let (mut cp_runs, mut cp_synced_runs, mut cp_bytes) = (Vec::new(), Vec::new(), 0);
    for run in 0..3 {
        let before = used(base);
        let copy = tmp.path().join("cp");
        let cp_ms = full_copy(&store.live_dir(), &copy);
        let t = Instant::now();
        syncfs(base);
        cp_runs.push(cp_ms);
        cp_synced_runs.push(cp_ms + t.elapsed().as_secs_f64() * 1000.0);
        if run == 0 {
            cp_bytes = used(base).saturating_sub(before);
        }
        std::fs::remove_dir_all(&copy).unwrap();
        syncfs(base);
    }

    let vdb = tmp.path().join("vdb");
    std::fs::create_dir(&vdb).unwrap();
    let t = Instant::now();
    store.clone_to(last, &vdb.join("data")).unwrap();
    let provision_ms = t.elapsed().as_secs_f64() * 1000.0;
    lunabox_engine::snapshots::force_remove(&vdb).unwrap();
    for id in 1..=last {
        store.remove(id).unwrap();
    }
    lunabox_engine::snapshots::force_remove(&store.live_dir()).unwrap();

    let med = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let snapshot_ms = med(snap_ms);
    let cp_ms = med(cp_runs);
    let cp_synced_ms = med(cp_synced_runs);
    let round = med(round_bytes.iter().map(|&b| b as f64).collect()) as u64;
    let time_percent = 100.0 * snapshot_ms / cp_synced_ms;
    let space_percent = 100.0 * round as f64 / cp_bytes.max(1) as f64;
    Figures {
        driver: kind,
        filesystem: storage::filesystem_of(base).unwrap_or_default(),
        bytes: files.len() as u64 * file_size,
        file_bytes: file_size,
        rewritten_bytes: rewritten,
        snapshot_ms,
        cp_ms,
        cp_synced_ms,
        round_bytes: round,
        cp_bytes,
        previous_exclusive_bytes: prev.exclusive_bytes,
        previous_shared_bytes: prev.shared_bytes,
        provision_ms,
        time_percent,
        space_percent,
        target_met: (kind != DriverKind::Copy)
            .then_some(time_percent <= 2.0 && space_percent <= 3.0 && provision_ms < 1000.0),
    }
}

/// Run the case for every driver that can run here.
pub fn run(base: &Path, total: u64, file_size: u64, rounds: usize, image: u64) -> Vec<Figures> {
    let mut out = vec![case(DriverKind::Copy, base, total, file_size, rounds)];
    let image_mib = (image >> 20).min(1024 * 64);
    for (fs, kind) in [("btrfs", DriverKind::Btrfs), ("xfs", DriverKind::Reflink)] {
        // The test helper refuses images over 1 GiB; the bench makes its own
        // when asked for more.
        type Guard = Box<dyn std::any::Any>;
        let mounted: Option<(PathBuf, Guard)> = if image_mib <= 1024 {
            LoopFs::new("snapshots bench", fs, image_mib)
                .map(|m| (m.mnt.clone(), Box::new(m) as Guard))
        } else {
            big_loop(fs, image_mib).map(|m| (m.mnt.clone(), Box::new(m) as Guard))
        };
        match mounted {
            Some((mnt, _guard)) => out.push(case(kind, &mnt, total, file_size, rounds)),
            None => eprintln!("*** {kind} driver left out: no {fs} filesystem ***"),
        }
    }
    out
}

/// A loop filesystem bigger than the tests' 1 GiB cap (1 GiB of data needs
/// room for its copy): made the same way.
pub fn big_loop(fs: &'static str, mib: u64) -> Option<BigLoop> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("*** SKIPPED {fs}: needs root to loop-mount an image ***");
        return None;
    }
    let dir = tempfile::tempdir().ok()?;
    let img = dir.path().join("fs.img");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).ok()?;
    std::fs::File::create(&img).ok()?.set_len(mib << 20).ok()?;
    let mut mk = std::process::Command::new(format!("mkfs.{fs}"));
    if fs == "xfs" {
        mk.args(["-m", "reflink=1"]);
    }
    if !mk.args(["-q", "-f"]).arg(&img).status().ok()?.success() {
        return None;
    }
    let ok = std::process::Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(&mnt)
        .status()
        .ok()?
        .success();
    ok.then_some(BigLoop {
        mnt,
        img,
        _dir: dir,
    })
}

/// A mounted loop image, unmounted and deleted on drop.
pub struct BigLoop {
    /// The mount point.
    pub mnt: PathBuf,
    img: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for BigLoop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.mnt).status();
        let _ = std::fs::remove_file(&self.img);
    }
}

fn human(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

/// Print the figures as a table and one JSON line.
pub fn report(figs: &[Figures], rounds: usize) {
    let Some(first) = figs.first() else { return };
    println!();
    println!(
        "database benchmark: {} in {} MiB files, 1% of 8 KiB pages ({}) rewritten in place per round, median of {rounds} round(s)",
        human(first.bytes),
        first.file_bytes >> 20,
        human(first.rewritten_bytes)
    );
    println!(
        "{:<18} {:>10} {:>10} {:>12} {:>7} {:>11} {:>11} {:>7} {:>12} {:>12} {:>9}",
        "driver (fs)",
        "snapshot",
        "cp -a",
        "cp -a+sync",
        "time%",
        "round new",
        "cp new",
        "space%",
        "prev excl",
        "prev shared",
        "VDB"
    );
    for f in figs {
        println!(
            "{:<18} {:>7.1} ms {:>7.0} ms {:>9.0} ms {:>6.2}% {:>11} {:>11} {:>6.2}% {:>12} {:>12} {:>6.1} ms{}",
            format!("{} ({})", f.driver, f.filesystem),
            f.snapshot_ms,
            f.cp_ms,
            f.cp_synced_ms,
            f.time_percent,
            human(f.round_bytes),
            human(f.cp_bytes),
            f.space_percent,
            human(f.previous_exclusive_bytes),
            human(f.previous_shared_bytes),
            f.provision_ms,
            match f.target_met {
                Some(true) => "  target MET",
                Some(false) => "  target NOT MET",
                None => "",
            }
        );
    }
    println!(
        "targets (btrfs, reflink): at most 2% of cp -a's time (flushed) and 3% of its space; a VDB under 1 s"
    );
    println!(
        "{}",
        serde_json::json!({"bench": "snapshots-database", "rounds": rounds, "drivers": figs})
    );
}
