//! Replays every committed corpus file (`corpus/<target>/*`) through its
//! target: the seeds, and the inputs of crashes found so far (named
//! `crash-*`, each a regression test). A folder without a target, or a
//! target without seeds, is an error.

use lunabox_selffuzz::{TARGETS, driver};

#[test]
fn every_corpus_file_passes_its_target() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for entry in std::fs::read_dir(&root).expect("the corpus folder") {
        let name = entry
            .expect("an entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            lunabox_selffuzz::target(&name).is_some(),
            "corpus/{name}/ is not a target's corpus"
        );
    }
    let mut failed = Vec::new();
    for t in TARGETS {
        let files = driver::corpus(t.name);
        assert!(!files.is_empty(), "corpus/{}/ has no seeds", t.name);
        for (path, bytes) in files {
            if std::panic::catch_unwind(|| (t.run)(&bytes)).is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "corpus files that fail their target: {failed:#?}"
    );
}
