//! `library`: what the server says about its libraries, cheaply: item counts by type
//! (GET /Items/Counts), the libraries and their kind (GET /Library/VirtualFolders), and free
//! and used space of the libraries and of Jellyfin's own folders (GET /System/Info/Storage,
//! 10.11+). Older servers answer 404 and are not asked again: the space is then measured
//! here with statvfs(2) on the folders they name, when those folders are on this host.

use std::collections::BTreeMap;

use super::{CollectError, Collector};
use crate::jellyfin::dto::{
    FolderStorage, ItemCounts, LibraryStorage, SystemInfo, SystemStorage, VirtualFolder,
};
use crate::jellyfin::{ApiError, Client};
use crate::sample::enum_label;
use crate::sample::{Family, label_value};

pub struct Library {
    client: Client,
    /// False once the server answered 404 to /System/Info/Storage (before 10.11).
    storage_supported: bool,
}

impl Library {
    pub fn new(client: Client) -> Self {
        Library {
            client,
            storage_supported: true,
        }
    }
}

/// One sample per type the server reported; a count the server omitted is left out rather
/// than reported as 0.
pub fn items(counts: &ItemCounts) -> Family {
    let mut family = Family::gauge(
        "jellyfin_library_items",
        "Library items by type, from GET /Items/Counts.",
    );
    let by_type = [
        ("movie", counts.movie_count),
        ("series", counts.series_count),
        ("episode", counts.episode_count),
        ("song", counts.song_count),
        ("album", counts.album_count),
        ("musicvideo", counts.music_video_count),
        ("boxset", counts.box_set_count),
        ("book", counts.book_count),
    ];
    for (kind, count) in by_type {
        if let Some(count) = count {
            family.push(vec![("type", kind.into())], count as f64);
        }
    }
    family
}

pub fn info(folders: &[VirtualFolder]) -> Family {
    let mut family = Family::gauge(
        "jellyfin_library_info",
        "One series per library with its collection type; the value is always 1.",
    );
    for folder in folders {
        let name = label_value(folder.name.as_deref().unwrap_or("unknown"));
        family.push(
            vec![
                ("library", name),
                (
                    "collection_type",
                    enum_label(folder.collection_type.as_deref()),
                ),
            ],
            1.0,
        );
    }
    family
}

/// Free and used bytes of a set of folders, each device counted once (two folders of one
/// library on one disk would otherwise count that disk twice).
fn space(folders: &[&FolderStorage]) -> (f64, f64) {
    let mut devices: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (i, folder) in folders.iter().enumerate() {
        let key = folder
            .device_id
            .as_deref()
            .unwrap_or(if i == 0 { "" } else { "?" });
        devices.insert(
            key,
            (
                folder.free_space.unwrap_or(0.0),
                folder.used_space.unwrap_or(0.0),
            ),
        );
    }
    devices
        .values()
        .fold((0.0, 0.0), |acc, (f, u)| (acc.0 + f, acc.1 + u))
}

/// A space the server measured: present and not its "cannot measure" -1 (or any negative).
fn measured(bytes: Option<f64>) -> bool {
    bytes.is_some_and(|b| b >= 0.0)
}

pub fn storage(storage: &SystemStorage) -> [Family; 2] {
    let mut free = Family::gauge(
        "jellyfin_storage_free_bytes",
        "Free space where Jellyfin keeps libraries and its own folders.",
    );
    let mut used = Family::gauge(
        "jellyfin_storage_used_bytes",
        "Used space where Jellyfin keeps libraries and its own folders.",
    );
    let mut push = |location: String, kind: &str, folders: &[&FolderStorage]| {
        // A folder the server could not measure (StorageHelper.GetFreeSpaceOf answers -1 for
        // both when DriveInfo throws: an unmounted share, no permission) is left out; a
        // location with no measurable folder has no series at all, never a negative one.
        let folders: Vec<&FolderStorage> = folders
            .iter()
            .copied()
            .filter(|f| measured(f.free_space) && measured(f.used_space))
            .collect();
        if folders.is_empty() {
            return;
        }
        let (f, u) = space(&folders);
        free.push(
            vec![("location", location.clone()), ("kind", kind.into())],
            f,
        );
        used.push(vec![("location", location), ("kind", kind.into())], u);
    };
    for library in storage.libraries.as_deref().unwrap_or_default() {
        let folders: Vec<&FolderStorage> = library.folders.iter().flatten().collect();
        push(
            label_value(library.name.as_deref().unwrap_or("unknown")),
            "library",
            &folders,
        );
    }
    let own = [
        ("transcode", &storage.transcoding_temp_folder),
        ("cache", &storage.cache_folder),
        ("data", &storage.program_data_folder),
        ("log", &storage.log_folder),
        ("metadata", &storage.internal_metadata_folder),
    ];
    for (kind, folder) in own {
        if let Some(folder) = folder {
            push(kind.to_string(), kind, &[folder]);
        }
    }
    [free, used]
}

/// Free and used bytes of the file system holding `path`, and its device, by statvfs(2);
/// None when the path is not on this host (or not visible to the agent).
fn measure(path: &str) -> Option<FolderStorage> {
    use std::os::unix::fs::MetadataExt;
    let device = std::fs::metadata(path).ok()?.dev();
    let c_path = std::ffi::CString::new(path).ok()?;
    // SAFETY: statvfs only writes into the struct it is given; the path is a valid C string.
    let stat = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c_path.as_ptr(), &mut stat) != 0 {
            return None;
        }
        stat
    };
    let block = stat.f_frsize as f64;
    Some(FolderStorage {
        free_space: Some(stat.f_bavail as f64 * block),
        used_space: Some((stat.f_blocks as f64 - stat.f_bfree as f64) * block),
        device_id: Some(device.to_string()),
    })
}

/// The storage answer a 10.11 server would give, measured here for an older one. Folders
/// that are not on this host are left out.
pub fn local_storage(folders: &[VirtualFolder], system: &SystemInfo) -> SystemStorage {
    let libraries = folders
        .iter()
        .map(|f| LibraryStorage {
            name: f.name.clone(),
            folders: Some(
                f.locations
                    .iter()
                    .flatten()
                    .filter_map(|p| measure(p))
                    .collect(),
            ),
        })
        .filter(|l| l.folders.as_ref().is_some_and(|f| !f.is_empty()))
        .collect();
    let at = |path: &Option<String>| path.as_deref().and_then(measure);
    SystemStorage {
        program_data_folder: at(&system.program_data_path),
        cache_folder: at(&system.cache_path),
        log_folder: at(&system.log_path),
        internal_metadata_folder: at(&system.internal_metadata_path),
        transcoding_temp_folder: at(&system.transcoding_temp_path),
        libraries: Some(libraries),
    }
}

#[async_trait::async_trait]
impl Collector for Library {
    fn name(&self) -> &'static str {
        "library"
    }

    /// The three requests are independent: what answered is reported even when another failed.
    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let mut first_error: Option<ApiError> = None;
        match self
            .client
            .get_json::<ItemCounts>("/Items/Counts", None)
            .await
        {
            Ok(counts) => out.push(items(&counts)),
            Err(e) => first_error = first_error.or(Some(e)),
        }
        let mut folders = Vec::new();
        match self
            .client
            .get_json::<Vec<VirtualFolder>>("/Library/VirtualFolders", None)
            .await
        {
            Ok(answer) => {
                out.push(info(&answer));
                folders = answer;
            }
            Err(e) => first_error = first_error.or(Some(e)),
        }
        if self.storage_supported {
            match self
                .client
                .get_json::<SystemStorage>("/System/Info/Storage", None)
                .await
            {
                Ok(answer) => out.extend(storage(&answer)),
                Err(ApiError::Status { status: 404, .. }) => {
                    tracing::info!(
                        "this Jellyfin has no /System/Info/Storage (before 10.11): measuring its folders here instead"
                    );
                    self.storage_supported = false;
                }
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        if !self.storage_supported {
            match self
                .client
                .get_json::<SystemInfo>("/System/Info", None)
                .await
            {
                Ok(system) => out.extend(storage(&local_storage(&folders, &system))),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(family: &Family) -> Vec<(String, f64)> {
        family
            .samples
            .iter()
            .map(|s| {
                (
                    s.labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                    s.value,
                )
            })
            .collect()
    }

    #[test]
    fn reports_the_counts_of_the_real_capture() {
        let text = include_str!("../../tests/fixtures/jellyfin/items-counts.10.9.6.json");
        let family = items(&serde_json::from_str(text).unwrap());
        let got: Vec<(String, f64)> = family
            .samples
            .iter()
            .map(|s| (s.labels[0].1.clone(), s.value))
            .collect();
        let expected = [
            ("movie", 325.0),
            ("series", 41.0),
            ("episode", 3517.0),
            ("song", 0.0),
            ("album", 0.0),
            ("musicvideo", 0.0),
            ("boxset", 56.0),
            ("book", 0.0),
        ];
        assert_eq!(got, expected.map(|(k, v)| (k.to_string(), v)));
    }

    #[test]
    fn omitted_counts_are_left_out() {
        let family = items(&serde_json::from_str(r#"{"MovieCount": 3}"#).unwrap());
        assert_eq!(family.samples.len(), 1);
    }

    #[test]
    fn libraries_and_their_kind() {
        let text = include_str!("../../tests/fixtures/jellyfin/virtual-folders.synthetic.json");
        let family = info(&serde_json::from_str::<Vec<VirtualFolder>>(text).unwrap());
        assert_eq!(
            table(&family),
            [
                ("library=Films,collection_type=movies".to_string(), 1.0),
                ("library=Series,collection_type=tvshows".to_string(), 1.0),
                ("library=Muziek,collection_type=music".to_string(), 1.0)
            ]
        );
    }

    #[test]
    fn folders_the_server_cannot_measure_are_left_out_never_negative() {
        let text = include_str!(
            "../../tests/fixtures/jellyfin/system-storage.unmeasurable.synthetic.json"
        );
        let [free, used] = storage(&serde_json::from_str(text).unwrap());
        // Series keeps its measured folder; Muziek (only an unreachable share) and the log
        // folder (-1) have no series at all.
        assert_eq!(
            table(&free),
            [
                ("location=Films,kind=library".to_string(), 1.5e12),
                ("location=Series,kind=library".to_string(), 1.5e12),
                ("location=transcode,kind=transcode".to_string(), 7e9),
                ("location=cache,kind=cache".to_string(), 4e10),
                ("location=data,kind=data".to_string(), 4e10),
                ("location=metadata,kind=metadata".to_string(), 4e10),
            ]
        );
        assert_eq!(used.samples.len(), 6);
        assert!(used.samples.iter().all(|s| s.value >= 0.0));
    }

    #[test]
    fn storage_counts_each_device_once_and_never_names_a_path() {
        let text = include_str!("../../tests/fixtures/jellyfin/system-storage.synthetic.json");
        let [free, used] = storage(&serde_json::from_str(text).unwrap());
        assert_eq!(
            table(&free),
            [
                ("location=Films,kind=library".to_string(), 1.5e12),
                // Two folders on two devices: both counted.
                ("location=Series,kind=library".to_string(), 1.5e12 + 3e11),
                ("location=transcode,kind=transcode".to_string(), 7e9),
                ("location=cache,kind=cache".to_string(), 4e10),
                ("location=data,kind=data".to_string(), 4e10),
                ("location=log,kind=log".to_string(), 4e10),
                ("location=metadata,kind=metadata".to_string(), 4e10),
            ]
        );
        assert_eq!(
            table(&used)[1],
            ("location=Series,kind=library".to_string(), 2.5e12 + 7e11)
        );
        assert!(
            free.samples
                .iter()
                .all(|s| s.labels.iter().all(|(_, v)| !v.contains('/')))
        );
    }
}
