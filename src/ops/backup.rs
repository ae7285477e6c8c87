//! Backup archives: `avioctl backup FILE` and `avioctl restore FILE`.
//!
//! An archive is a zstd-compressed tar holding `data/avio.db` and `data/queues.redb`
//! (consistent snapshots: taken by the daemon through `POST /admin/backup` while it
//! runs, or by [`offline_snapshot`] while it is stopped), the tenant files
//! (`data/tenants/`, `data/tg_sessions/`, `data/wa_state/` without Chromium's caches),
//! and, last, `manifest.json`: format version, Avio version, creation time, schema
//! version and every file with its size and sha256. The manifest comes last because
//! live tenant files are read once, hashed and written in the same pass.
//!
//! Restore refuses while the daemon runs, unpacks into a scratch directory inside
//! `DATA_DIR`, checks every file against the manifest and the databases themselves,
//! and only then swaps the restored state in. What it replaces is moved to
//! `DATA_DIR/backups/pre-restore-<time>/`, never deleted: it holds WhatsApp and
//! Telegram sessions.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Layout;
use crate::queue::{self, QueueError};
use crate::store::snapshot::{self as db_snapshot, compact_timestamp};
use crate::store::{StoreError, fsutil};

/// The archive layout this code writes and reads.
pub const FORMAT: u32 = 1;
/// The manifest's name inside the archive (its last entry).
pub const MANIFEST: &str = "manifest.json";
/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Every state file sits under this prefix in the archive.
const DATA: &str = "data";
/// The top-level entries of `DATA_DIR` an archive may hold; nothing else is restored.
const TOP_LEVEL: [&str; 5] = ["avio.db", "queues.redb", "tenants", "tg_sessions", "wa_state"];
/// Directories of a Chromium profile that only hold what the browser fetches or
/// builds again; a WhatsApp session lives in IndexedDB and Local Storage, kept.
const CHROMIUM_CACHES: &[&str] = &[
    "Cache",
    "Code Cache",
    "GPUCache",
    "GrShaderCache",
    "ShaderCache",
    "GraphiteDawnCache",
    "DawnCache",
    "DawnGraphiteCache",
    "DawnWebGPUCache",
    "CacheStorage",
    "ScriptCache",
    "component_crx_cache",
    "Crashpad",
    "optimization_guide_model_store",
];

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The daemon holds the databases open.
    #[error("the daemon is running ({0}): stop it first: sudo systemctl stop avio")]
    DaemonRunning(String),
    #[error("{path} is not an Avio backup: {reason}")]
    NotABackup { path: PathBuf, reason: String },
    #[error("the backup is damaged: {0}")]
    Damaged(String),
    #[error(
        "the backup comes from a newer Avio (database schema v{found}, this avio knows v{supported}): install that version to restore it"
    )]
    TooNew { found: u32, supported: u32 },
    #[error("nothing to back up: {0}")]
    Empty(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("sqlite: {0}")]
    Store(#[from] StoreError),
    #[error("redb: {0}")]
    Queue(#[from] QueueError),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BackupError {
    let context = context.into();
    move |source| BackupError::Io { context, source }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub avio_version: String,
    pub created_at: String,
    /// `online` (snapshot taken by the running daemon) or `offline`.
    pub source: String,
    /// `user_version` of the archived `avio.db`.
    pub schema_version: u32,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path inside the archive (`data/...`).
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// A directory holding consistent copies of `avio.db` and `queues.redb`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub dir: PathBuf,
    pub source: &'static str,
}

#[derive(Debug)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub n_files: usize,
    pub n_tenants: usize,
    pub source: &'static str,
    pub schema_version: u32,
}

#[derive(Debug)]
pub struct RestoreReport {
    pub manifest: Manifest,
    pub n_files: usize,
    pub n_tenants: usize,
    /// Where the state the restore replaced was moved (when there was any).
    pub aside: Option<PathBuf>,
}

/// Copies both databases of a stopped daemon into `DATA_DIR/backups/offline-…/`.
pub fn offline_snapshot(layout: &Layout) -> Result<Snapshot, BackupError> {
    let (db, queues) = (layout.db_path(), layout.queues_path());
    for path in [&db, &queues] {
        if !path.is_file() {
            return Err(BackupError::Empty(format!("{} does not exist: is DATA_DIR right?", path.display())));
        }
    }
    if queue::snapshot::in_use(&queues) {
        return Err(BackupError::DaemonRunning(format!("{} is locked", queues.display())));
    }
    let dir =
        db_snapshot::ensure_backups_dir(&layout.data_dir)?.join(format!("offline-{}-{}", compact_timestamp(), token()));
    fsutil::ensure_private_dir(&dir).map_err(io_err(format!("create {}", dir.display())))?;
    let copied = db_snapshot::snapshot_file(&db, &dir.join("avio.db"))
        .map_err(BackupError::from)
        .and_then(|_| queue::snapshot::snapshot_file(&queues, &dir.join("queues.redb")).map_err(BackupError::from));
    if let Err(e) = copied {
        let _ = fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(Snapshot { dir, source: "offline" })
}

/// Writes the archive to `out` (mode 0600; written aside and renamed, so `out` is
/// either complete or absent), then removes the snapshot directory.
pub fn write_archive(layout: &Layout, snapshot: &Snapshot, out: &Path) -> Result<BackupReport, BackupError> {
    let result = write_archive_inner(layout, snapshot, out);
    if let Err(e) = fs::remove_dir_all(&snapshot.dir) {
        tracing::warn!(event = "backup_snapshot_cleanup_failed", path = %snapshot.dir.display(), error = %e);
    }
    result
}

fn write_archive_inner(layout: &Layout, snapshot: &Snapshot, out: &Path) -> Result<BackupReport, BackupError> {
    let schema_version = db_snapshot::schema_version(&snapshot.dir.join("avio.db"))?;
    let out_dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "backup".into());
    let partial = out_dir.join(format!(".{file_name}.{}.partial", token()));
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(io_err(format!("create {}", partial.display())))?;
    let written = (|| {
        let encoder = zstd::Encoder::new(file, 3).map_err(io_err("start zstd"))?;
        let mut tar = tar::Builder::new(encoder);
        let mut files = Vec::new();
        for name in ["avio.db", "queues.redb"] {
            let path = snapshot.dir.join(name);
            let reader = fs::File::open(&path).map_err(io_err(format!("open {}", path.display())))?;
            let size = reader.metadata().map_err(io_err(format!("stat {}", path.display())))?.len();
            files.push(append(&mut tar, &format!("{DATA}/{name}"), size, 0, reader)?);
        }
        let mut n_tenants = 0;
        for (dir, prefix) in [
            (layout.data_dir.join("tenants"), "tenants"),
            (layout.tg_sessions_dir.clone(), "tg_sessions"),
            (layout.data_dir.join("wa_state"), "wa_state"),
        ] {
            let found = collect_files(&dir, prefix == "wa_state")?;
            if prefix == "tenants" {
                n_tenants = count_tenants(found.iter().map(|(rel, _)| rel.as_str()));
            }
            for (rel, path) in found {
                // Live files: read whole, so the size, the bytes and the hash agree even
                // when the daemon rewrites the file meanwhile. A file that vanished
                // (a Chromium temp file) is simply not part of the backup.
                let bytes = match fs::read(&path) {
                    Ok(bytes) => bytes,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(format!("read {}", path.display()))(e)),
                };
                let mtime = fs::metadata(&path).map(|m| m.mtime().max(0) as u64).unwrap_or(0);
                files.push(append(&mut tar, &format!("{DATA}/{prefix}/{rel}"), bytes.len() as u64, mtime, &bytes[..])?);
            }
        }
        let manifest = Manifest {
            format: FORMAT,
            avio_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: crate::domain::now_rfc3339(),
            source: snapshot.source.to_string(),
            schema_version,
            files,
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Damaged(e.to_string()))?;
        let mut header = header(json.len() as u64, now_s());
        tar.append_data(&mut header, MANIFEST, &json[..]).map_err(io_err("write the manifest"))?;
        let encoder = tar.into_inner().map_err(io_err("finish the archive"))?;
        let file = encoder.finish().map_err(io_err("finish zstd"))?;
        file.sync_all().map_err(io_err(format!("sync {}", partial.display())))?;
        Ok((manifest.files.len(), n_tenants))
    })();
    let (n_files, n_tenants) = match written {
        Ok(counts) => counts,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
    };
    fs::rename(&partial, out).map_err(io_err(format!("rename to {}", out.display())))?;
    let bytes = fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport { path: out.to_path_buf(), bytes, n_files, n_tenants, source: snapshot.source, schema_version })
}

fn header(size: u64, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    header
}

/// Appends one file, hashing the bytes as they go into the archive.
fn append<W: Write, R: Read>(
    tar: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    mtime: u64,
    reader: R,
) -> Result<ManifestFile, BackupError> {
    let mut hashing = HashingReader { inner: reader.take(size), hasher: Sha256::new(), n_bytes: 0 };
    let mut header = header(size, mtime);
    tar.append_data(&mut header, path, &mut hashing).map_err(io_err(format!("archive {path}")))?;
    if hashing.n_bytes != size {
        return Err(BackupError::Damaged(format!("{path} changed size while it was archived")));
    }
    Ok(ManifestFile { path: path.to_string(), size, sha256: hex(&hashing.hasher.finalize()) })
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    n_bytes: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.n_bytes += n as u64;
        Ok(n)
    }
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    n_bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.n_bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Regular files under `root` as `(relative path, absolute path)`, sorted. Symlinks,
/// sockets (Chromium's `Singleton*`), our own temp files and, in a profile, Chromium's
/// caches are left out. A missing `root` has no files.
fn collect_files(root: &Path, chromium_profile: bool) -> Result<Vec<(String, PathBuf)>, BackupError> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(format!("list {}", dir.display()))(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(format!("list {}", dir.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(kind) = entry.file_type() else { continue };
            let child_rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            if kind.is_dir() {
                if !(chromium_profile && CHROMIUM_CACHES.contains(&name.as_str())) {
                    stack.push((entry.path(), child_rel));
                }
            } else if kind.is_file() && !(name.starts_with('.') && name.ends_with(".tmp")) {
                out.push((child_rel, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn count_tenants<'a>(tenant_files: impl Iterator<Item = &'a str>) -> usize {
    let mut ids: Vec<&str> = tenant_files.filter(|rel| rel.ends_with("/tenant.json")).collect();
    ids.dedup();
    ids.len()
}

/// Reads and checks an archive without changing anything: every file matches the
/// manifest. Returns the manifest.
pub fn verify(archive: &Path) -> Result<Manifest, BackupError> {
    let scratch = std::env::temp_dir().join(format!("avio-verify-{}", token()));
    fsutil::ensure_private_dir(&scratch).map_err(io_err(format!("create {}", scratch.display())))?;
    let result = unpack(archive, &scratch);
    let _ = fs::remove_dir_all(&scratch);
    result
}

/// Restores an archive into `layout` (the daemon must be stopped).
pub fn restore(layout: &Layout, archive: &Path) -> Result<RestoreReport, BackupError> {
    if queue::snapshot::in_use(&layout.queues_path()) {
        return Err(BackupError::DaemonRunning(format!("{} is locked", layout.queues_path().display())));
    }
    fsutil::ensure_private_dir(&layout.data_dir).map_err(io_err(format!("create {}", layout.data_dir.display())))?;
    let staging = layout.data_dir.join(format!(".restore-{}", token()));
    fsutil::ensure_private_dir(&staging).map_err(io_err(format!("create {}", staging.display())))?;
    let result = unpack(archive, &staging).and_then(|manifest| swap_in(layout, &staging, manifest));
    let _ = fs::remove_dir_all(&staging);
    result
}

/// Unpacks into `dest` and checks the files against the manifest and the databases.
fn unpack(archive: &Path, dest: &Path) -> Result<Manifest, BackupError> {
    let not_a_backup = |reason: String| BackupError::NotABackup { path: archive.to_path_buf(), reason };
    let mut file = fs::File::open(archive).map_err(io_err(format!("open {}", archive.display())))?;
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || magic != ZSTD_MAGIC {
        return Err(not_a_backup("not a zstd-compressed archive (.tar.zst)".into()));
    }
    io::Seek::rewind(&mut file).map_err(io_err(format!("read {}", archive.display())))?;
    let decoder = zstd::Decoder::new(file).map_err(|e| not_a_backup(format!("not zstd: {e}")))?;
    let mut tar = tar::Archive::new(decoder);
    let mut unpacked: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest_bytes = None;
    let entries = tar.entries().map_err(|e| not_a_backup(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| BackupError::Damaged(format!("read entry: {e}")))?;
        let path = entry.path().map_err(|e| BackupError::Damaged(format!("entry path: {e}")))?.into_owned();
        let name = path.to_string_lossy().into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            other => return Err(BackupError::Damaged(format!("{name}: unexpected entry type {other:?}"))),
        }
        if name == MANIFEST {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(|e| BackupError::Damaged(format!("read the manifest: {e}")))?;
            manifest_bytes = Some(bytes);
            continue;
        }
        let rel = safe_relative(&path).ok_or_else(|| BackupError::Damaged(format!("unsafe path {name}")))?;
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            fsutil::ensure_private_dir(parent).map_err(io_err(format!("create {}", parent.display())))?;
        }
        let out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)
            .map_err(|e| BackupError::Damaged(format!("{name}: {e} (listed twice?)")))?;
        let mut writer = HashingWriter { inner: io::BufWriter::new(out), hasher: Sha256::new(), n_bytes: 0 };
        io::copy(&mut entry, &mut writer).map_err(|e| BackupError::Damaged(format!("{name}: {e}")))?;
        writer.flush().map_err(io_err(format!("write {}", target.display())))?;
        unpacked.insert(name, (writer.n_bytes, hex(&writer.hasher.finalize())));
    }
    let manifest_bytes = manifest_bytes.ok_or_else(|| not_a_backup(format!("no {MANIFEST}")))?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| BackupError::Damaged(format!("{MANIFEST} does not parse: {e}")))?;
    if manifest.format != FORMAT {
        return Err(not_a_backup(format!(
            "archive format {} (this avio reads format {FORMAT}); use the Avio version that made it ({})",
            manifest.format, manifest.avio_version
        )));
    }
    for file in &manifest.files {
        match unpacked.remove(&file.path) {
            None => {
                return Err(BackupError::Damaged(format!("{} is in the manifest but not in the archive", file.path)));
            }
            Some((size, sha256)) if size != file.size || sha256 != file.sha256 => {
                return Err(BackupError::Damaged(format!("{} does not match its checksum", file.path)));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = unpacked.keys().next() {
        return Err(BackupError::Damaged(format!("{extra} is in the archive but not in the manifest")));
    }
    let data = dest.join(DATA);
    for name in ["avio.db", "queues.redb"] {
        if !data.join(name).is_file() {
            return Err(BackupError::Damaged(format!("{DATA}/{name} is missing")));
        }
    }
    let schema_version = db_snapshot::check_file(&data.join("avio.db"))?;
    let supported = db_snapshot::latest_version();
    if schema_version > supported {
        return Err(BackupError::TooNew { found: schema_version, supported });
    }
    queue::snapshot::check_file(&data.join("queues.redb"))?;
    Ok(manifest)
}

/// `data/…` paths made only of plain names, under one of [`TOP_LEVEL`]; the part
/// after `data/` is returned prefixed with it, so `dest.join` stays inside `dest`.
fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut components = path.components();
    if components.next() != Some(Component::Normal(DATA.as_ref())) {
        return None;
    }
    let rest: Vec<&std::ffi::OsStr> = components
        .map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let top = rest.first()?.to_str()?;
    if !TOP_LEVEL.contains(&top) {
        return None;
    }
    let mut rel = PathBuf::from(DATA);
    rel.extend(rest);
    Some(rel)
}

/// Moves what the restore replaces aside, then the staged state into place, and gives
/// it the owner of `DATA_DIR` (a restore run by root for the `avio` user).
fn swap_in(layout: &Layout, staging: &Path, manifest: Manifest) -> Result<RestoreReport, BackupError> {
    let data = staging.join(DATA);
    let aside = db_snapshot::ensure_backups_dir(&layout.data_dir)?.join(format!("pre-restore-{}", compact_timestamp()));
    // (staged name, live path, extra live files that belong to it)
    let db = layout.db_path();
    let db_companions = vec![append_name(&db, "-wal"), append_name(&db, "-shm")];
    let targets: Vec<(&str, PathBuf, Vec<PathBuf>)> = vec![
        ("avio.db", db, db_companions),
        ("queues.redb", layout.queues_path(), Vec::new()),
        ("tenants", layout.data_dir.join("tenants"), Vec::new()),
        ("tg_sessions", layout.tg_sessions_dir.clone(), Vec::new()),
        ("wa_state", layout.data_dir.join("wa_state"), Vec::new()),
    ];
    let mut moved_aside = false;
    for (name, live, companions) in &targets {
        for path in std::iter::once(live).chain(companions) {
            if fs::symlink_metadata(path).is_ok() {
                fsutil::ensure_private_dir(&aside).map_err(io_err(format!("create {}", aside.display())))?;
                let file_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| (*name).into());
                move_path(path, &aside.join(file_name))?;
                moved_aside = true;
            }
        }
    }
    let owner = fs::metadata(&layout.data_dir).map(|m| (m.uid(), m.gid())).ok();
    for (name, live, _) in &targets {
        let staged = data.join(name);
        if fs::symlink_metadata(&staged).is_err() {
            // Absent from the backup: absent after the restore, as it was then.
            if *name == "tenants" || *name == "tg_sessions" {
                fsutil::ensure_private_dir(live).map_err(io_err(format!("create {}", live.display())))?;
            }
            continue;
        }
        if let Some(parent) = live.parent() {
            fsutil::ensure_private_dir(parent).map_err(io_err(format!("create {}", parent.display())))?;
        }
        move_path(&staged, live)?;
        if let Some((uid, gid)) = owner {
            give_to(live, uid, gid)?;
        }
    }
    if let (true, Some((uid, gid))) = (moved_aside, owner) {
        give_to(&aside, uid, gid)?;
    }
    let n_tenants = count_tenants(manifest.files.iter().filter_map(|f| f.path.strip_prefix("data/tenants/")));
    Ok(RestoreReport { n_files: manifest.files.len(), n_tenants, aside: moved_aside.then_some(aside), manifest })
}

/// `rename`, or a copy and a removal when the two paths are on different filesystems
/// (a `TG_SESSIONS_DIR` outside `DATA_DIR`).
fn move_path(from: &Path, to: &Path) -> Result<(), BackupError> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            copy_tree(from, to)?;
            let removed = if from.is_dir() { fs::remove_dir_all(from) } else { fs::remove_file(from) };
            removed.map_err(io_err(format!("remove {}", from.display())))
        }
        Err(e) => Err(io_err(format!("move {} to {}", from.display(), to.display()))(e)),
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), BackupError> {
    if from.is_dir() {
        fsutil::ensure_private_dir(to).map_err(io_err(format!("create {}", to.display())))?;
        for entry in fs::read_dir(from).map_err(io_err(format!("list {}", from.display())))? {
            let entry = entry.map_err(io_err(format!("list {}", from.display())))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        fsutil::ensure_private_file(to).map_err(io_err(format!("create {}", to.display())))?;
        fs::copy(from, to).map(|_| ()).map_err(io_err(format!("copy {}", from.display())))
    }
}

/// Gives `path` (recursively) to `uid:gid` where it belongs to someone else.
fn give_to(path: &Path, uid: u32, gid: u32) -> Result<(), BackupError> {
    let meta = fs::symlink_metadata(path).map_err(io_err(format!("stat {}", path.display())))?;
    if meta.uid() != uid || meta.gid() != gid {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(io_err(format!("give {} to {uid}:{gid}", path.display())))?;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(io_err(format!("list {}", path.display())))? {
            let entry = entry.map_err(io_err(format!("list {}", path.display())))?;
            give_to(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

fn append_name(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn token() -> String {
    crate::secrets::token(6)
}

fn now_s() -> u64 {
    crate::domain::now_s().max(0) as u64
}
