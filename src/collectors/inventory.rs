//! `inventory`: what the libraries hold, by walking them with paged GET /Items (default every
//! hour): size on disk, items by type, video codecs and resolutions, items missing metadata,
//! total duration and the newest items. Gentle on the server: one library at a time, one page
//! at a time (`page_size` items, only the fields needed, no images or user data), never two
//! walks at once (a collector runs one cycle at a time). Memory stays flat on 100k-item
//! libraries: a page is folded into counters and dropped ([`walk`], [`tally`]).
//!
//! A slow or failing page never costs the other libraries or the pages already read:
//! - each page has its own timeout (`page_timeout`, not `jellyfin.timeout`: pages ask for
//!   MediaSources, which a big or slow 10.11 server takes seconds to build); a page that
//!   times out is asked again with half as many items, down to `min_page_size`, and the
//!   library keeps the size that answered in time;
//! - a library whose page still fails is set aside and its walk resumes at that page in the
//!   next cycle; the other libraries go on;
//! - every library reports its last complete walk until a newer one completes (a library not
//!   walked completely yet reports nothing rather than partial numbers).
//!
//! The query asks for `IsMissing=false` (`/Items` includes virtual items, missing and unaired
//! episodes, otherwise) and a stable order. The API has no sort by id (`ItemSortBy`, 10.9 to
//! 12.0), so the walk sorts by DateCreated, then SortName: items added during a walk land
//! at its end instead of shifting the pages not read yet, and ids seen twice are dropped.

mod tally;
mod walk;

use std::collections::BTreeMap;
use std::time::Duration;

use super::{CollectError, Collector};
use crate::config::InventoryConfig;
use crate::jellyfin::dto::{ItemPage, VirtualFolder};
use crate::jellyfin::{ApiError, Client};
use crate::sample::{Family, label_value};
use walk::LibraryWalk;

use tally::{Tally, families};

const TYPES: &str = "Movie,Series,Episode,MusicAlbum,Audio,MusicVideo,Book";
const FIELDS: &str = "MediaSources,ProviderIds,DateCreated";
/// A library larger than this many pages is cut short (logged): a loop guard, not a limit
/// anyone should meet (with the default page size: 5 million items).
const MAX_PAGES: u64 = 10_000;

pub struct Inventory {
    client: Client,
    page_size: u64,
    min_page_size: u64,
    page_timeout: Duration,
    recent: usize,
    /// The last complete walk of each library, by library id.
    done: BTreeMap<String, (String, Tally)>,
    /// Walks set aside at a failing page, by library id: they resume there.
    set_aside: BTreeMap<String, LibraryWalk>,
    /// The page size that answered in time, by library id (after halving on timeouts).
    page_sizes: BTreeMap<String, u64>,
}

impl Inventory {
    pub fn new(client: Client, config: &InventoryConfig) -> Self {
        let page_size = config.page_size.max(1);
        Inventory {
            client,
            page_size,
            min_page_size: config.min_page_size.clamp(1, page_size),
            page_timeout: config.page_timeout,
            recent: config.recent,
            done: BTreeMap::new(),
            set_aside: BTreeMap::new(),
            page_sizes: BTreeMap::new(),
        }
    }

    /// One page of `walk`'s library from its current start, halving the page on timeouts.
    async fn page(&self, walk: &mut LibraryWalk) -> Result<ItemPage, ApiError> {
        loop {
            let path = format!(
                "/Items?ParentId={}&Recursive=true&IncludeItemTypes={TYPES}&Fields={FIELDS}\
                 &IsMissing=false&SortBy=DateCreated,SortName&SortOrder=Ascending\
                 &EnableImages=false&EnableUserData=false&StartIndex={}&Limit={}",
                walk.id, walk.start, walk.page_size
            );
            match self
                .client
                .get_json_within("/Items", Some(&path), self.page_timeout)
                .await
            {
                Err(ApiError::Timeout { .. }) if walk.page_size > self.min_page_size => {
                    walk.page_size = (walk.page_size / 2).max(self.min_page_size);
                    tracing::info!(
                        library = %walk.name,
                        start = walk.start,
                        page_size = walk.page_size,
                        "an inventory page timed out; asking for fewer items"
                    );
                }
                result => return result,
            }
        }
    }

    /// Walks `walk` to its end, or to the first page that fails.
    async fn walk(&self, walk: &mut LibraryWalk) -> Result<(), ApiError> {
        for _ in 0..MAX_PAGES {
            let answer = self.page(walk).await?;
            let items = answer.items.unwrap_or_default();
            for item in &items {
                walk.add(item, self.recent);
            }
            walk.start += items.len() as u64;
            if items.is_empty() || walk.start >= answer.total_record_count.unwrap_or(0) {
                return Ok(());
            }
        }
        tracing::warn!(library = %walk.name, items = walk.start, "inventory stopped at its page limit");
        Ok(())
    }
}

#[async_trait::async_trait]
impl Collector for Inventory {
    fn name(&self) -> &'static str {
        "inventory"
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let folders: Vec<VirtualFolder> =
            match self.client.get_json("/Library/VirtualFolders", None).await {
                Ok(folders) => folders,
                Err(e) => {
                    // The last walks still stand.
                    out.extend(families(&self.done.values().cloned().collect::<Vec<_>>()));
                    return Err(e.into());
                }
            };
        let libraries: Vec<(String, String)> = folders
            .into_iter()
            .filter_map(|f| Some((f.item_id?, label_value(&f.name?))))
            .collect();
        // Libraries removed since are forgotten.
        self.done
            .retain(|id, _| libraries.iter().any(|(l, _)| l == id));
        self.set_aside
            .retain(|id, _| libraries.iter().any(|(l, _)| l == id));
        self.page_sizes
            .retain(|id, _| libraries.iter().any(|(l, _)| l == id));
        let mut failed = Vec::new();
        for (id, name) in &libraries {
            // A walk set aside resumes at its page; the others start afresh.
            let page_size = self.page_sizes.get(id).copied().unwrap_or(self.page_size);
            let mut walk = self
                .set_aside
                .remove(id)
                .unwrap_or_else(|| LibraryWalk::new(id.clone(), name.clone(), page_size));
            let result = self.walk(&mut walk).await;
            self.page_sizes.insert(id.clone(), walk.page_size);
            match result {
                Ok(()) => {
                    self.done.insert(id.clone(), walk.finish());
                }
                Err(e) => {
                    tracing::warn!(library = %walk.name, start = walk.start, error = %e,
                        "inventory walk of this library set aside; it resumes at this page next cycle");
                    failed.push(format!("{}: {e}", walk.name));
                    self.set_aside.insert(id.clone(), walk);
                }
            }
        }
        let mut tallies: Vec<(String, Tally)> = Vec::new();
        for (id, _) in &libraries {
            if let Some(done) = self.done.get(id) {
                tallies.push(done.clone());
            }
        }
        out.extend(families(&tallies));
        // The walk's pages and id sets are freed; without this their pages stay resident
        // wherever a block that lives on sits above them.
        crate::allocator::release_free_memory();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("inventory incomplete: {}", failed.join("; ")).into())
        }
    }
}
