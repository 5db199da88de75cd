//! Memory of each loaded file's content, so that only real edits reload: a `touch`, an identical
//! re-save, or a `git checkout` that rewrites a file with the same bytes all produce file events
//! but no change.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hasher};
use std::io::{ErrorKind, Read};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Modified,
    Deleted,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Change {
    pub path: PathBuf,
    pub kind: ChangeKind,
}

/// Stands for "some content, not known": a real file's hash matches it with odds of 2^-64.
const UNKNOWN: u64 = 0x5eed_0fab_5e17_c3a1;

/// Shared between threads: clones share one memory. Paths are taken as given (never
/// canonicalized), so callers must pass the same absolute spelling everywhere.
#[derive(Clone, Default)]
pub struct ContentHashes {
    hashes: Arc<Mutex<BTreeMap<PathBuf, u64>>>,
}

impl ContentHashes {
    /// Records the current content of `path` (when a module is first loaded or re-executed) and
    /// returns its hash; None, with the memory left as it was, when the file cannot be read.
    pub fn seed(&self, path: &Path) -> Option<u64> {
        let hash = hash_file(path).ok()?;
        self.lock().insert(path.to_owned(), hash);
        Some(hash)
    }

    /// Records known bytes: the exact source that was executed, which may differ from what is on
    /// disk by the time it is read again.
    pub fn seed_bytes(&self, path: &Path, bytes: &[u8]) {
        self.lock().insert(path.to_owned(), hash(bytes));
    }

    /// Remembers `path` with a content no file has: its next check reports it modified (or
    /// deleted), for a file whose content at some moment is not known.
    pub fn seed_unknown(&self, path: &Path) {
        self.lock().insert(path.to_owned(), UNKNOWN);
    }

    /// Reads the file now and updates the memory. Some(Modified) if the content differs from the
    /// remembered one (or nothing was remembered), Some(Deleted) if the file is gone but was
    /// remembered, None if unchanged, gone-and-unknown, or unreadable for another reason (a
    /// directory, a permission error: nothing that a reload could fix).
    pub fn check(&self, path: &Path) -> Option<ChangeKind> {
        // Read outside the lock: other threads seed while a large file is being read.
        match hash_file(path) {
            Ok(hash) => {
                let previous = self.lock().insert(path.to_owned(), hash);
                (previous != Some(hash)).then_some(ChangeKind::Modified)
            }
            // NotADirectory: a parent directory was replaced by a file, so this file is gone too.
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                self.lock().remove(path).map(|_| ChangeKind::Deleted)
            }
            Err(_) => None,
        }
    }

    pub fn forget(&self, path: &Path) {
        self.lock().remove(path);
    }

    /// Remembered files strictly below `dir`, sorted: when a directory disappears, notify reports
    /// only the directory, and these are the files that went with it.
    pub fn known_under(&self, dir: &Path) -> Vec<PathBuf> {
        // Paths order by component, so a directory's descendants follow it without a gap: a
        // look at each save costs the descendants, not every file known.
        self.lock()
            .range::<Path, _>((Bound::Excluded(dir), Bound::Unbounded))
            .map(|(path, _)| path)
            .take_while(|path| path.starts_with(dir))
            .cloned()
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<PathBuf, u64>> {
        // The map is consistent after any single insert or remove, so a panic elsewhere while
        // holding the lock leaves nothing to repair.
        self.hashes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Non-cryptographic: collisions only matter by accident, and source files are small enough that
/// SipHash is far below the cost of the reload it guards.
fn hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

/// The same hash as `hash` of the whole content, read in pieces: a static directory may hold
/// files far too big to read into memory at once.
fn hash_file(path: &Path) -> std::io::Result<u64> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = DefaultHasher::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return Ok(hasher.finish()),
            Ok(read) => hasher.write(&buffer[..read]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn unknown_existing_file_is_modified_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.py");
        fs::write(&file, "x = 1\n").unwrap();
        let hashes = ContentHashes::default();
        assert_eq!(hashes.check(&file), Some(ChangeKind::Modified));
        assert_eq!(hashes.check(&file), None);
    }

    #[test]
    fn content_seeded_as_unknown_is_modified_or_deleted_next() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.py");
        fs::write(&file, "x = 1\n").unwrap();
        let hashes = ContentHashes::default();
        hashes.seed_unknown(&file);
        assert_eq!(hashes.check(&file), Some(ChangeKind::Modified));
        hashes.seed_unknown(&file);
        fs::remove_file(&file).unwrap();
        assert_eq!(hashes.check(&file), Some(ChangeKind::Deleted));
    }

    #[test]
    fn unknown_missing_file_is_no_change() {
        let dir = tempfile::tempdir().unwrap();
        let hashes = ContentHashes::default();
        assert_eq!(hashes.check(&dir.path().join("missing.py")), None);
    }

    #[test]
    fn files_read_in_pieces_hash_like_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big.bin");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(&file, &bytes).unwrap();
        let hashes = ContentHashes::default();
        hashes.seed_bytes(&file, &bytes);
        assert_eq!(hashes.check(&file), None);
        assert_eq!(hashes.seed(&file), Some(hash(&bytes)));
    }

    #[test]
    fn touch_and_identical_resave_are_no_change() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.py");
        fs::write(&file, "x = 1\n").unwrap();
        let hashes = ContentHashes::default();
        assert!(hashes.seed(&file).is_some());
        fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap()
            .set_modified(std::time::SystemTime::now())
            .unwrap();
        assert_eq!(hashes.check(&file), None);
        fs::write(&file, "x = 1\n").unwrap();
        assert_eq!(hashes.check(&file), None);
    }

    #[test]
    fn edit_is_modified_and_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.py");
        fs::write(&file, "x = 1\n").unwrap();
        let hashes = ContentHashes::default();
        hashes.seed(&file);
        fs::write(&file, "x = 2\n").unwrap();
        assert_eq!(hashes.check(&file), Some(ChangeKind::Modified));
        assert_eq!(hashes.check(&file), None);
        // Reverting is a change too: the memory follows the latest content.
        fs::write(&file, "x = 1\n").unwrap();
        assert_eq!(hashes.check(&file), Some(ChangeKind::Modified));
    }

    #[test]
    fn seed_bytes_compares_against_the_executed_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.py");
        fs::write(&file, "x = 2\n").unwrap();
        let hashes = ContentHashes::default();
        hashes.seed_bytes(&file, b"x = 1\n");
        assert_eq!(hashes.check(&file), Some(ChangeKind::Modified));
        hashes.seed_bytes(&file, b"x = 2\n");
        assert_eq!(hashes.check(&file), None);
    }

    #[test]
    fn seed_of_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let hashes = ContentHashes::default();
        assert_eq!(hashes.seed(&dir.path().join("missing.py")), None);
    }

    #[test]
    fn delete_of_known_file_is_deleted_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.py");
        fs::write(&file, "x = 1\n").unwrap();
        let hashes = ContentHashes::default();
        hashes.seed(&file);
        fs::remove_file(&file).unwrap();
        assert_eq!(hashes.check(&file), Some(ChangeKind::Deleted));
        assert_eq!(hashes.check(&file), None);
        // Recreated with the old content: it was forgotten, so it is new again.
        fs::write(&file, "x = 1\n").unwrap();
        assert_eq!(hashes.check(&file), Some(ChangeKind::Modified));
    }

    #[test]
    fn parent_replaced_by_file_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("pkg");
        fs::create_dir(&pkg).unwrap();
        let file = pkg.join("a.py");
        fs::write(&file, "x = 1\n").unwrap();
        let hashes = ContentHashes::default();
        hashes.seed(&file);
        fs::remove_dir_all(&pkg).unwrap();
        fs::write(&pkg, "not a dir").unwrap();
        assert_eq!(hashes.check(&file), Some(ChangeKind::Deleted));
    }

    #[test]
    fn forget_makes_the_file_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.py");
        fs::write(&file, "x = 1\n").unwrap();
        let hashes = ContentHashes::default();
        hashes.seed(&file);
        hashes.forget(&file);
        assert_eq!(hashes.check(&file), Some(ChangeKind::Modified));
        hashes.forget(&file);
        fs::remove_file(&file).unwrap();
        assert_eq!(hashes.check(&file), None);
    }

    #[test]
    fn clones_share_memory() {
        let hashes = ContentHashes::default();
        let clone = hashes.clone();
        clone.seed_bytes(Path::new("/p/a.py"), b"x");
        assert_eq!(
            hashes.known_under(Path::new("/p")),
            vec![PathBuf::from("/p/a.py")]
        );
    }

    #[test]
    fn known_under_lists_descendants_only() {
        let hashes = ContentHashes::default();
        for path in [
            "/p/pkg/b.py",
            "/p/pkg/sub/c.py",
            "/p/pkg",
            "/p/pkg2/d.py",
            "/p/a.py",
        ] {
            hashes.seed_bytes(Path::new(path), b"");
        }
        assert_eq!(
            hashes.known_under(Path::new("/p/pkg")),
            vec![
                PathBuf::from("/p/pkg/b.py"),
                PathBuf::from("/p/pkg/sub/c.py")
            ]
        );
        assert!(hashes.known_under(Path::new("/q")).is_empty());
    }
}
