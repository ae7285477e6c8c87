//! `FileSession`: grammers' `Session` storage as one JSON file (mode 0600), written
//! atomically. Auth keys, the home DC and the self user are written through at once;
//! peers and the update state are flushed by `save_state` (periodically and at stop).
//!
//! Avio keeps its own format rather than grammers' `SqliteSession` because that one
//! bundles a second SQLite (libsql) next to rusqlite's.

use std::io;
use std::net::{SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use grammers_session::types::{
    ChannelKind, ChannelState, DcOption, PeerAuth, PeerId, PeerInfo, UpdateState, UpdatesState,
};
use grammers_session::{BoxFuture, Session, SessionData};
use serde::{Deserialize, Serialize};

use crate::store::fsutil;

#[derive(Debug, thiserror::Error)]
pub enum SessionFileError {
    #[error("session file: {0}")]
    Io(#[from] io::Error),
    #[error("session file is corrupt: {0}")]
    Corrupt(String),
    #[error("session lock poisoned")]
    Poisoned,
}

#[derive(Serialize, Deserialize)]
struct FileDc {
    id: i32,
    ipv4: String,
    ipv6: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth_key: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum FilePeer {
    User {
        id: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hash: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bot: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none", rename = "self")]
        is_self: Option<bool>,
    },
    Chat {
        id: i64,
    },
    Channel {
        id: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hash: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<u8>,
    },
}

#[derive(Serialize, Deserialize, Default)]
struct FileUpdates {
    pts: i32,
    qts: i32,
    date: i32,
    seq: i32,
    #[serde(default)]
    channels: Vec<(i64, i32)>,
}

#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    home_dc: i32,
    dcs: Vec<FileDc>,
    peers: Vec<FilePeer>,
    updates: FileUpdates,
}

fn kind_to_u8(kind: ChannelKind) -> u8 {
    match kind {
        ChannelKind::Broadcast => 1,
        ChannelKind::Megagroup => 2,
        ChannelKind::Gigagroup => 3,
        ChannelKind::Community => 4,
    }
}

fn kind_from_u8(kind: u8) -> Option<ChannelKind> {
    match kind {
        1 => Some(ChannelKind::Broadcast),
        2 => Some(ChannelKind::Megagroup),
        3 => Some(ChannelKind::Gigagroup),
        4 => Some(ChannelKind::Community),
        _ => None,
    }
}

fn encode(data: &SessionData) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut dcs: Vec<FileDc> = data
        .dc_options
        .values()
        .map(|dc| FileDc {
            id: dc.id,
            ipv4: dc.ipv4.to_string(),
            ipv6: dc.ipv6.to_string(),
            auth_key: dc.auth_key.map(|key| b64.encode(key)),
        })
        .collect();
    dcs.sort_by_key(|dc| dc.id);
    let mut peers: Vec<FilePeer> = data
        .peer_infos
        .values()
        .map(|peer| match peer {
            PeerInfo::User { id, auth, bot, is_self } => {
                FilePeer::User { id: *id, hash: auth.map(|a| a.hash()), bot: *bot, is_self: *is_self }
            }
            PeerInfo::Chat { id } => FilePeer::Chat { id: *id },
            PeerInfo::Channel { id, auth, kind } => {
                FilePeer::Channel { id: *id, hash: auth.map(|a| a.hash()), kind: kind.map(kind_to_u8) }
            }
        })
        .collect();
    peers.sort_by_key(|p| match p {
        FilePeer::User { id, .. } | FilePeer::Chat { id } | FilePeer::Channel { id, .. } => *id,
    });
    let state = &data.updates_state;
    let file = FileFormat {
        version: 1,
        home_dc: data.home_dc,
        dcs,
        peers,
        updates: FileUpdates {
            pts: state.pts,
            qts: state.qts,
            date: state.date,
            seq: state.seq,
            channels: state.channels.iter().map(|c| (c.id, c.pts)).collect(),
        },
    };
    serde_json::to_vec_pretty(&file).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Result<SessionData, SessionFileError> {
    let corrupt = |what: &str| SessionFileError::Corrupt(what.to_string());
    let file: FileFormat = serde_json::from_slice(bytes).map_err(|e| SessionFileError::Corrupt(e.to_string()))?;
    if file.version != 1 {
        return Err(corrupt("unknown version"));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut data = SessionData { home_dc: file.home_dc, ..SessionData::default() };
    for dc in file.dcs {
        let auth_key = match dc.auth_key {
            None => None,
            Some(text) => {
                let raw = b64.decode(text).map_err(|_| corrupt("auth key encoding"))?;
                Some(<[u8; 256]>::try_from(raw.as_slice()).map_err(|_| corrupt("auth key length"))?)
            }
        };
        let option = DcOption {
            id: dc.id,
            ipv4: dc.ipv4.parse::<SocketAddrV4>().map_err(|_| corrupt("ipv4 address"))?,
            ipv6: dc.ipv6.parse::<SocketAddrV6>().map_err(|_| corrupt("ipv6 address"))?,
            auth_key,
        };
        data.dc_options.insert(option.id, option);
    }
    for peer in file.peers {
        let info = match peer {
            FilePeer::User { id, hash, bot, is_self } => {
                PeerInfo::User { id, auth: hash.map(PeerAuth::from_hash), bot, is_self }
            }
            FilePeer::Chat { id } => PeerInfo::Chat { id },
            FilePeer::Channel { id, hash, kind } => {
                PeerInfo::Channel { id, auth: hash.map(PeerAuth::from_hash), kind: kind.and_then(kind_from_u8) }
            }
        };
        data.peer_infos.insert(info.id(), info);
    }
    data.updates_state = UpdatesState {
        pts: file.updates.pts,
        qts: file.updates.qts,
        date: file.updates.date,
        seq: file.updates.seq,
        channels: file.updates.channels.into_iter().map(|(id, pts)| ChannelState { id, pts }).collect(),
    };
    Ok(data)
}

/// A tenant's session: in memory, persisted to `path`.
pub struct FileSession {
    path: PathBuf,
    data: Mutex<SessionData>,
    /// Peers or update state changed since the last write.
    dirty: AtomicBool,
    /// One writer at a time, each writing the newest snapshot.
    writer: tokio::sync::Mutex<()>,
}

impl FileSession {
    /// Reads `path` (blocking; call it off the async workers). A missing file is a
    /// new, empty session; nothing is written until grammers stores something.
    pub fn load(path: &Path) -> Result<FileSession, SessionFileError> {
        let data = match std::fs::read(path) {
            Ok(bytes) => decode(&bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => SessionData::default(),
            Err(e) => return Err(e.into()),
        };
        Ok(FileSession {
            path: path.to_path_buf(),
            data: Mutex::new(data),
            dirty: AtomicBool::new(false),
            writer: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, SessionData>, SessionFileError> {
        self.data.lock().map_err(|_| SessionFileError::Poisoned)
    }

    /// Writes the current state (atomically, 0600) if anything changed, or always when `force`.
    pub async fn flush(&self, force: bool) -> Result<(), SessionFileError> {
        let _writer = self.writer.lock().await;
        if !force && !self.dirty.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        self.dirty.store(false, Ordering::SeqCst);
        let bytes = encode(&*self.lock()?);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || fsutil::write_private(&path, &bytes))
            .await
            .map_err(|e| SessionFileError::Io(io::Error::other(e)))??;
        Ok(())
    }

    /// Whether a logged-in user is bound to this session (the self user is cached).
    pub fn self_user(&self) -> Option<i64> {
        let data = self.lock().ok()?;
        find_self(&data).map(|info| info.id().bare_id_unchecked())
    }
}

fn find_self(data: &SessionData) -> Option<&PeerInfo> {
    data.peer_infos.values().find(|info| matches!(info, PeerInfo::User { is_self: Some(true), .. }))
}

impl Session for FileSession {
    type Error = SessionFileError;

    fn home_dc_id(&self) -> Result<i32, SessionFileError> {
        Ok(self.lock()?.home_dc)
    }

    fn set_home_dc_id(&self, dc_id: i32) -> BoxFuture<'_, Result<(), SessionFileError>> {
        Box::pin(async move {
            self.lock()?.home_dc = dc_id;
            self.flush(true).await
        })
    }

    fn dc_option(&self, dc_id: i32) -> Result<Option<DcOption>, SessionFileError> {
        Ok(self.lock()?.dc_options.get(&dc_id).cloned())
    }

    fn set_dc_option(&self, dc_option: &DcOption) -> BoxFuture<'_, Result<(), SessionFileError>> {
        let dc_option = dc_option.clone();
        Box::pin(async move {
            // A new auth key must survive a crash, or the login is lost with it.
            self.lock()?.dc_options.insert(dc_option.id, dc_option);
            self.flush(true).await
        })
    }

    fn peer(&self, peer: PeerId) -> BoxFuture<'_, Result<Option<PeerInfo>, SessionFileError>> {
        Box::pin(async move {
            let data = self.lock()?;
            if peer == PeerId::self_user() {
                return Ok(find_self(&data).cloned());
            }
            Ok(data.peer_infos.get(&peer).cloned())
        })
    }

    fn cache_peer(&self, peer: PeerInfo) -> BoxFuture<'_, Result<(), SessionFileError>> {
        Box::pin(async move {
            let is_self = matches!(peer, PeerInfo::User { is_self: Some(true), .. });
            {
                let mut data = self.lock()?;
                let entry = data.peer_infos.entry(peer.id()).or_insert_with(|| peer.clone());
                entry.extend_info(&peer);
            }
            self.dirty.store(true, Ordering::SeqCst);
            if is_self { self.flush(true).await } else { Ok(()) }
        })
    }

    fn updates_state(&self) -> BoxFuture<'_, Result<UpdatesState, SessionFileError>> {
        Box::pin(async move { Ok(self.lock()?.updates_state.clone()) })
    }

    fn set_update_state(&self, update: UpdateState) -> BoxFuture<'_, Result<(), SessionFileError>> {
        Box::pin(async move {
            {
                let mut data = self.lock()?;
                let state = &mut data.updates_state;
                match update {
                    UpdateState::All(all) => *state = all,
                    UpdateState::Primary { pts, date, seq } => {
                        state.pts = pts;
                        state.date = date;
                        state.seq = seq;
                    }
                    UpdateState::Secondary { qts } => state.qts = qts,
                    UpdateState::Channel { id, pts } => {
                        state.channels.retain(|c| c.id != id);
                        state.channels.push(ChannelState { id, pts });
                    }
                }
            }
            self.dirty.store(true, Ordering::SeqCst);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// The peers a session file holds, by id.
    fn peers_in(data: &[u8]) -> Result<HashMap<i64, Option<i64>>, SessionFileError> {
        let data = decode(data)?;
        Ok(data
            .peer_infos
            .values()
            .map(|info| (info.id().bare_id_unchecked(), info.auth().map(|a| a.hash())))
            .collect())
    }

    fn key(byte: u8) -> [u8; 256] {
        [byte; 256]
    }

    #[tokio::test]
    async fn a_session_survives_a_reopen_with_keys_self_peers_and_update_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("7.session");
        let session = FileSession::load(&path).unwrap();
        assert!(!path.exists(), "nothing is written for an empty session");
        assert_eq!(session.self_user(), None);

        session.set_home_dc_id(4).await.unwrap();
        let mut dc = session.dc_option(4).unwrap().unwrap();
        dc.auth_key = Some(key(7));
        session.set_dc_option(&dc).await.unwrap();
        assert_eq!(fsutil::mode(&path).unwrap(), 0o600);
        session
            .cache_peer(PeerInfo::User {
                id: 100,
                auth: Some(PeerAuth::from_hash(55)),
                bot: Some(false),
                is_self: Some(true),
            })
            .await
            .unwrap();
        session
            .cache_peer(PeerInfo::User { id: 200, auth: Some(PeerAuth::from_hash(-9)), bot: None, is_self: None })
            .await
            .unwrap();
        session
            .cache_peer(PeerInfo::Channel { id: 300, auth: None, kind: Some(ChannelKind::Megagroup) })
            .await
            .unwrap();
        session.set_update_state(UpdateState::Primary { pts: 11, date: 12, seq: 13 }).await.unwrap();
        session.set_update_state(UpdateState::Secondary { qts: 14 }).await.unwrap();
        session.set_update_state(UpdateState::Channel { id: 300, pts: 15 }).await.unwrap();

        // Update state and ordinary peers wait for a flush.
        let before = std::fs::read(&path).unwrap();
        assert!(!peers_in(&before).unwrap().contains_key(&200));
        session.flush(false).await.unwrap();

        let reopened = FileSession::load(&path).unwrap();
        assert_eq!(reopened.home_dc_id().unwrap(), 4);
        assert_eq!(reopened.dc_option(4).unwrap().unwrap().auth_key, Some(key(7)));
        assert_eq!(reopened.self_user(), Some(100));
        let me = reopened.peer(PeerId::self_user()).await.unwrap().unwrap();
        assert_eq!(me.auth(), Some(PeerAuth::from_hash(55)));
        let lead = reopened.peer_ref(PeerId::user(200).unwrap()).await.unwrap().unwrap();
        assert_eq!(lead.auth, PeerAuth::from_hash(-9));
        let state = reopened.updates_state().await.unwrap();
        assert_eq!((state.pts, state.date, state.seq, state.qts), (11, 12, 13, 14));
        assert_eq!(state.channels, vec![ChannelState { id: 300, pts: 15 }]);
        assert!(matches!(
            reopened.peer(PeerId::channel(300).unwrap()).await.unwrap(),
            Some(PeerInfo::Channel { kind: Some(ChannelKind::Megagroup), .. })
        ));
    }

    #[test]
    fn a_corrupt_file_is_reported_not_half_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.session");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(FileSession::load(&path), Err(SessionFileError::Corrupt(_))));
        std::fs::write(&path, br#"{"version":1,"home_dc":2,"dcs":[{"id":2,"ipv4":"1.2.3.4:443","ipv6":"[::1]:443","auth_key":"AAAA"}],"peers":[],"updates":{"pts":0,"qts":0,"date":0,"seq":0}}"#).unwrap();
        assert!(matches!(FileSession::load(&path), Err(SessionFileError::Corrupt(_))), "a short auth key");
    }
}
