//! The position file on its own: saves alternate between the slots, a slot torn at every
//! byte offset leaves the save before it, the upgrade from `meta.json`, a ledger that
//! outgrows the slots, and damage reported rather than trusted.

use std::fs;
use std::path::Path;

use super::ledger::Span;
use super::position::{FILE, Position, Saved, load};

fn span(start: u64) -> Span {
    Span {
        start,
        end: start + 100,
        blocks: 1,
        samples: 7,
    }
}

fn save(position: &mut Position, dir: &Path, read_offset: u64, spans: &[Span]) {
    position.save(dir, read_offset, spans.iter()).unwrap();
}

fn saved(read_offset: u64, acked: &[Span]) -> Option<Saved> {
    Some(Saved {
        read_offset,
        acked: acked.to_vec(),
    })
}

#[test]
fn saves_alternate_between_two_slots_in_a_file_that_never_changes_size_or_inode() {
    let dir = tempfile::tempdir().unwrap();
    let (found, mut position) = Position::open(dir.path());
    assert_eq!(found, Ok(None));
    assert!(!dir.path().join(FILE).exists(), "opening writes nothing");
    save(&mut position, dir.path(), 10, &[]);
    let path = dir.path().join(FILE);
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
    let first = inode(&path);
    assert_eq!(fs::metadata(&path).unwrap().len(), 8192);
    for n in 1..=5u64 {
        save(&mut position, dir.path(), 10 + n, &[span(1000 * n)]);
        assert_eq!(load(dir.path()), Ok(saved(10 + n, &[span(1000 * n)])));
        assert_eq!(inode(&path), first, "overwritten in place");
        assert_eq!(fs::metadata(&path).unwrap().len(), 8192);
    }
    // Reopened, the next save goes on from the newest.
    let (found, mut position) = Position::open(dir.path());
    assert_eq!(found, Ok(saved(15, &[span(5000)])));
    save(&mut position, dir.path(), 16, &[]);
    assert_eq!(load(dir.path()), Ok(saved(16, &[])));
}

/// A save torn at every byte offset: only its first bytes written, or only its last ones
/// (a torn write may reach the disk in any order of sectors). The load gives the save before
/// or, when every byte arrived, the new one; never anything else.
#[test]
fn a_slot_torn_at_every_byte_offset_leaves_the_save_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let (_, mut position) = Position::open(dir.path());
    save(&mut position, dir.path(), 100, &[span(500)]);
    // Save 2 goes to the empty slot, save 3 over save 1: both kinds of leftover are torn.
    for (before, after) in [
        ((100, vec![span(500)]), (200, vec![span(500), span(700)])),
        ((200, vec![span(500), span(700)]), (300, vec![])),
    ] {
        let old = fs::read(&path).unwrap();
        save(&mut position, dir.path(), after.0, &after.1);
        let new = fs::read(&path).unwrap();
        let changed: Vec<usize> = (0..old.len()).filter(|&i| old[i] != new[i]).collect();
        let (first, last) = (changed[0], *changed.last().unwrap());
        for cut in first..=last + 1 {
            for head_first in [true, false] {
                let mut torn = old.clone();
                let range = if head_first {
                    first..cut
                } else {
                    cut..last + 1
                };
                torn[range.clone()].copy_from_slice(&new[range]);
                fs::write(&path, &torn).unwrap();
                let got = load(dir.path()).unwrap();
                let whole = (head_first && cut == last + 1) || (!head_first && cut == first);
                if whole {
                    assert_eq!(got, saved(after.0, &after.1));
                } else {
                    assert_eq!(got, saved(before.0, &before.1), "cut at {cut}");
                }
            }
        }
        fs::write(&path, &new).unwrap();
    }
}

#[test]
fn an_upgrade_reads_meta_json_once_and_the_first_save_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("meta.json");
    fs::write(
        &meta,
        r#"{"version":1,"read_offset":4242,"acked":[{"start":5000,"end":5100,"blocks":1,"samples":7}]}"#,
    )
    .unwrap();
    let (found, mut position) = Position::open(dir.path());
    assert_eq!(found, Ok(saved(4242, &[span(5000)])));
    assert_eq!(
        load(dir.path()),
        Ok(saved(4242, &[span(5000)])),
        "status reads it too"
    );
    save(&mut position, dir.path(), 4300, &[]);
    assert!(!meta.exists());
    assert_eq!(load(dir.path()), Ok(saved(4300, &[])));
    // A meta.json left by a crash before its deletion is never read again.
    fs::write(&meta, r#"{"version":1,"read_offset":1}"#).unwrap();
    let (found, mut position) = Position::open(dir.path());
    assert_eq!(found, Ok(saved(4300, &[])));
    save(&mut position, dir.path(), 4400, &[]);
    assert!(!meta.exists());
}

#[test]
fn a_ledger_that_outgrows_the_slots_gets_a_larger_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut position) = Position::open(dir.path());
    let many: Vec<Span> = (0..1000).map(|i| span(i * 200)).collect();
    save(&mut position, dir.path(), 7, &many[..100]);
    assert_eq!(fs::metadata(dir.path().join(FILE)).unwrap().len(), 8192);
    save(&mut position, dir.path(), 8, &many);
    assert_eq!(load(dir.path()), Ok(saved(8, &many)));
    assert_eq!(
        fs::metadata(dir.path().join(FILE)).unwrap().len(),
        2 * 32768
    );
    // And in place again from there, in the same larger slots.
    save(&mut position, dir.path(), 9, &many[..3]);
    assert_eq!(load(dir.path()), Ok(saved(9, &many[..3])));
    let (found, _) = Position::open(dir.path());
    assert_eq!(found, Ok(saved(9, &many[..3])));
    // Beyond the largest slot the save fails and the one before stands.
    let too_many: Vec<Span> = (0..40_000).map(|i| span(i * 200)).collect();
    let err = position.save(dir.path(), 10, too_many.iter()).unwrap_err();
    assert!(err.to_string().contains("do not fit"), "{err}");
    assert_eq!(load(dir.path()), Ok(saved(9, &many[..3])));
}

#[test]
fn damage_is_an_error_naming_the_file_and_the_next_save_makes_it_anew() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let (_, mut position) = Position::open(dir.path());
    save(&mut position, dir.path(), 1, &[]);
    save(&mut position, dir.path(), 2, &[]);
    fs::write(&path, b"\0\0garbage").unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(err.contains("position is damaged"), "{err}");
    fs::write(&path, vec![0xa5; 8192]).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(err.contains("neither slot"), "{err}");
    let (found, mut position) = Position::open(dir.path());
    assert!(found.is_err());
    save(&mut position, dir.path(), 3, &[]);
    assert_eq!(load(dir.path()), Ok(saved(3, &[])));
}
