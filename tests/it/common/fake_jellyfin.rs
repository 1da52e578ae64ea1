//! A fake Jellyfin: serves the real captures in tests/fixtures/jellyfin, checks the
//! Authorization header like the real server, records every request, and can be switched into
//! the failure modes the agent must survive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::now_ms;

pub const TOKEN: &str = "0123456789abcdef0123456789abcdef";

const ACTIVITY: &str = "/System/ActivityLog/Entries";
const PLUGIN_QUERY: &str = "/user_usage_stats/submit_custom_query";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers from the fixtures.
    Normal,
    /// A web server's HTML page (a wrong base URL, a reverse proxy's error page).
    Html,
    /// The token is not accepted.
    Unauthorized,
    /// Accepts the request and never answers.
    Hang,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub query: Option<String>,
    /// When the request arrived, ms since the epoch.
    pub at_ms: i64,
    /// Bytes of the answer's body.
    pub bytes: usize,
}

struct State {
    mode: Mode,
    base_path: String,
    routes: HashMap<String, String>,
    requests: Vec<Request>,
    /// Header problems seen (legacy auth headers, api_key in the query, a wrong token).
    violations: Vec<String>,
    /// GET /Items: the items below each ParentId, paged; other parents are empty.
    libraries: HashMap<String, ItemsLibrary>,
    /// GET /System/ActivityLog/Entries, served as ActivityManager.GetPagedResultAsync does.
    activity: ActivityLog,
    /// GET /Items?ids=…: the items by id.
    items_by_id: HashMap<String, serde_json::Value>,
    /// The Playback Reporting plugin's PlaybackActivity rows (rowid, UserId, PlayDuration);
    /// None: the plugin is not installed (404).
    plugin_rows: Option<Vec<(i64, String, i64)>>,
}

/// The server's activity log: entries in insertion order; answers ordered by Date descending
/// (no tie-breaker, as the server), `Date >= minDate`, `Skip(startIndex).Take(limit ?? 100)`,
/// with the count of all matching entries. `arrive_per_page` new entries are inserted after
/// each page served, as a burst does while the agent pages.
#[derive(Default)]
struct ActivityLog {
    entries: Vec<serde_json::Value>,
    arrive_per_page: usize,
    /// (left to arrive, the next id, their Type)
    arrivals: Option<(usize, i64, String)>,
}

/// The items of one library as GET /Items serves them.
#[derive(Default)]
struct ItemsLibrary {
    /// Generated items 0..n (see [`generated_item`]), or these fixed ones.
    generated: usize,
    fixed: Vec<serde_json::Value>,
    /// How long the server takes per item asked for (Fields=MediaSources reads every item's
    /// streams: the cost grows with Limit).
    per_item: Duration,
    /// Pages starting at or after this index answer 500.
    fail_from: Option<usize>,
}

pub struct FakeJellyfin {
    pub port: u16,
    state: Arc<Mutex<State>>,
    server: Option<JoinHandle<()>>,
}

impl FakeJellyfin {
    /// Starts on a free port, serving below `base_path` ("" or "/jellyfin").
    pub async fn start(base_path: &str) -> FakeJellyfin {
        // Bound here, not picked and released: nothing can take the port in between.
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind fake jellyfin");
        FakeJellyfin::start_on(base_path, listener)
    }

    /// Starts on `listener`, bound by the caller (inside a network namespace, for one).
    pub fn start_on(base_path: &str, listener: std::net::TcpListener) -> FakeJellyfin {
        let mut routes = HashMap::new();
        for (path, file) in [
            ("/System/Info", "system-info.10.11.11.json"),
            ("/Users", "users.10.11.11.json"),
            ("/Items/Counts", "items-counts.10.9.6.json"),
            ("/Sessions", "sessions.transcoding.10.9.6.json"),
            ("/ScheduledTasks", "scheduled-tasks.10.11.11.json"),
            (
                "/System/Configuration/encoding",
                "encoding-options.synthetic.10.11.json",
            ),
            ("/Library/VirtualFolders", "virtual-folders.synthetic.json"),
            ("/System/Info/Storage", "system-storage.synthetic.json"),
        ] {
            routes.insert(path.to_string(), super::fixture(file));
        }
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Normal,
            base_path: base_path.to_string(),
            routes,
            requests: Vec::new(),
            violations: Vec::new(),
            libraries: HashMap::new(),
            activity: ActivityLog::default(),
            items_by_id: HashMap::new(),
            plugin_rows: None,
        }));
        listener.set_nonblocking(true).expect("non-blocking");
        let listener = TcpListener::from_std(listener).expect("tokio listener");
        let mut fake = FakeJellyfin {
            port: listener.local_addr().expect("local addr").port(),
            state,
            server: None,
        };
        fake.route(ACTIVITY, super::fixture("activity-log.synthetic.json"));
        fake.serve(listener);
        fake
    }

    /// The URL to put in the agent's config.
    pub fn url(&self) -> String {
        let base = self.state.lock().unwrap().base_path.clone();
        format!("http://127.0.0.1:{}{base}", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// Serves `body` for `path` from now on. For the activity log, `body`'s entries become
    /// the log (served filtered and paged like the server).
    pub fn route(&self, path: &str, body: String) {
        let mut state = self.state.lock().unwrap();
        if path == ACTIVITY {
            let page: serde_json::Value = serde_json::from_str(&body).expect("an activity page");
            let mut entries = page["Items"].as_array().cloned().unwrap_or_default();
            // The page is newest first; the log is kept in insertion order.
            entries.reverse();
            state.activity.entries = entries;
            return;
        }
        state.routes.insert(path.to_string(), body);
    }

    /// Writes an entry into the activity log now (the server's ActivityManager.CreateAsync).
    pub fn log_activity(&self, entry: serde_json::Value) {
        self.state.lock().unwrap().activity.entries.push(entry);
    }

    /// The activity log's entries, in insertion order.
    pub fn activity_entries(&self) -> Vec<serde_json::Value> {
        self.state.lock().unwrap().activity.entries.clone()
    }

    /// From now on, after each activity page served, `per_page` `kind` entries (of the
    /// `total` still to come, ids from `first_id`) are written, dated now: a burst that goes
    /// on while the agent pages.
    pub fn activity_burst(&self, kind: &str, total: usize, first_id: i64, per_page: usize) {
        let mut state = self.state.lock().unwrap();
        state.activity.arrive_per_page = per_page;
        state.activity.arrivals = Some((total, first_id, kind.to_string()));
    }

    /// How many entries of the burst are still to arrive.
    pub fn burst_left(&self) -> usize {
        let state = self.state.lock().unwrap();
        state.activity.arrivals.as_ref().map_or(0, |a| a.0)
    }

    /// Installs the Playback Reporting plugin with these PlaybackActivity rows (rowid, UserId,
    /// PlayDuration seconds), or updates them as the plugin does every 20 s of play.
    pub fn plugin_rows(&self, rows: &[(i64, &str, i64)]) {
        self.state.lock().unwrap().plugin_rows = Some(
            rows.iter()
                .map(|(id, user, secs)| (*id, user.to_string(), *secs))
                .collect(),
        );
    }

    /// Serves `items` (with their "Id") from GET /Items?ids=….
    pub fn items_by_id(&self, items: &[serde_json::Value]) {
        let mut state = self.state.lock().unwrap();
        for item in items {
            let id = item["Id"].as_str().expect("an item Id").to_string();
            state.items_by_id.insert(id, item.clone());
        }
    }

    /// Serves `total` generated items (see [`generated_item`]) below library `parent` from
    /// GET /Items, paged by StartIndex and Limit like the server; other parents are empty.
    pub fn generate_items(&self, parent: &str, total: usize) {
        self.library(parent, |l| l.generated = total);
    }

    /// Serves these items (BaseItemDto values) below library `parent`, paged, without the
    /// virtual ones (`LocationType: Virtual`) when the request says `IsMissing=false`.
    pub fn serve_items(&self, parent: &str, items: Vec<serde_json::Value>) {
        self.library(parent, |l| l.fixed = items);
    }

    /// Makes GET /Items of library `parent` take `per_item` for every item asked for.
    pub fn slow_items(&self, parent: &str, per_item: Duration) {
        self.library(parent, |l| l.per_item = per_item);
    }

    /// Makes pages of library `parent` from `start` on answer 500 (None: all answer).
    pub fn fail_items(&self, parent: &str, start: Option<usize>) {
        self.library(parent, |l| l.fail_from = start);
    }

    fn library(&self, parent: &str, change: impl FnOnce(&mut ItemsLibrary)) {
        let mut s = self.state.lock().unwrap();
        change(s.libraries.entry(parent.to_string()).or_default());
    }

    /// Answers 404 for `path` from now on, as a server that lacks the endpoint.
    pub fn unroute(&self, path: &str) {
        self.state.lock().unwrap().routes.remove(path);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits (at most 60 s) until `path` has been asked `n` times in all.
    pub async fn wait_for_requests(&self, path: &str, n: usize) {
        super::wait_for(
            &format!("{n} requests to {path}"),
            Duration::from_secs(60),
            || {
                let seen = self.requests_to(path).len();
                async move { (seen >= n).then_some(()) }
            },
        )
        .await;
    }

    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    /// Stops listening: connections are refused, as when Jellyfin is down.
    pub fn down(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind fake jellyfin");
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let state = self.state.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
                handle(state.clone(), (method, uri), headers, body)
            },
        );
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }
}

impl Drop for FakeJellyfin {
    fn drop(&mut self) {
        self.down();
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    (method, uri): (Method, Uri),
    headers: HeaderMap,
    request_body: String,
) -> Response {
    let (mode, body, delay) = {
        let mut s = state.lock().unwrap();
        let path = uri
            .path()
            .strip_prefix(s.base_path.as_str())
            .unwrap_or(uri.path())
            .to_string();
        s.requests.push(Request {
            path: path.clone(),
            query: uri.query().map(str::to_string),
            at_ms: now_ms(),
            bytes: 0,
        });
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if auth != format!("MediaBrowser Token=\"{TOKEN}\"") {
            s.violations.push(format!("{path}: Authorization {auth:?}"));
        }
        for legacy in [
            "x-emby-token",
            "x-mediabrowser-token",
            "x-emby-authorization",
        ] {
            if headers.contains_key(legacy) {
                s.violations.push(format!("{path}: legacy header {legacy}"));
            }
        }
        if uri
            .query()
            .is_some_and(|q| q.to_ascii_lowercase().contains("api_key"))
        {
            s.violations.push(format!("{path}: api_key in the query"));
        }
        let query = uri.query().unwrap_or("");
        let found = |body: Option<String>| (Some(body), Duration::ZERO);
        let (body, delay) = match path.as_str() {
            "/Items" if query_param(query, "ids").is_some() => {
                found(Some(items_by_id(&s.items_by_id, query)))
            }
            "/Items" if !s.libraries.is_empty() => items_page(&s.libraries, query),
            ACTIVITY => found(Some(activity_page(&mut s.activity, query))),
            // The plugin's route is [HttpPost]: a GET finds nothing.
            PLUGIN_QUERY if method != Method::POST => found(None),
            PLUGIN_QUERY => found(
                s.plugin_rows
                    .as_ref()
                    .map(|rows| plugin_answer(rows, &request_body)),
            ),
            _ => found(s.routes.get(&path).cloned()),
        };
        if let (Some(last), Some(Some(body))) = (s.requests.last_mut(), &body) {
            last.bytes = body.len();
        }
        (s.mode, body, delay)
    };
    tokio::time::sleep(delay).await;
    let respond = |status: StatusCode, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };
    match mode {
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            respond(StatusCode::OK, "application/json", "{}".into())
        }
        Mode::Html => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            // A debugging proxy's page that echoes the request header: the agent must not log it.
            format!(
                "<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1>Authorization: MediaBrowser Token=\"{TOKEN}\"</body></html>"
            ),
        ),
        Mode::Unauthorized => respond(StatusCode::UNAUTHORIZED, "text/plain", String::new()),
        Mode::Normal => match body {
            Some(Some(body)) => respond(StatusCode::OK, "application/json; charset=utf-8", body),
            Some(None) => respond(StatusCode::NOT_FOUND, "text/plain", String::new()),
            // What ExceptionMiddleware answers outside the Development environment.
            None => respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "Error processing request.".into(),
            ),
        },
    }
}

/// Item `i` of a generated library: a mix of movies and episodes with known sizes, codecs,
/// heights, run times, provider ids (every 7th has none) and creation dates (later for
/// higher i), with the fields the inventory asks for and a few it does not.
pub fn generated_item(i: usize) -> serde_json::Value {
    let kind = if i.is_multiple_of(4) {
        "Movie"
    } else {
        "Episode"
    };
    let codec = ["h264", "hevc", "av1"][i % 3];
    let height = [2160, 1080, 720, 480][(i / 2) % 4];
    let ids = if i.is_multiple_of(7) {
        serde_json::json!({})
    } else {
        serde_json::json!({ "Tmdb": format!("{}", 1000 + i) })
    };
    let day = 1 + (i / 10_000);
    serde_json::json!({
        "Name": format!("Item {i}"),
        "Id": format!("{i:032x}"),
        "Type": kind,
        "MediaType": "Video",
        "IsFolder": false,
        "RunTimeTicks": 36_000_000_000_u64 + i as u64,
        "DateCreated": format!("2026-11-{day:02}T{:02}:{:02}:{:02}.0000000Z", (i / 3600) % 24, (i / 60) % 60, i % 60),
        "ProviderIds": ids,
        "MediaSources": [{ "Size": 1_000_000 * (1 + (i % 10) as u64), "MediaStreams": [
            { "Type": "Video", "Codec": codec, "Height": height, "IsDefault": true },
            { "Type": "Audio", "Codec": "aac", "IsDefault": true }
        ]}]
    })
}

/// One page of GET /Items (None: the library's pages fail) and how long it takes.
fn items_page(
    libraries: &HashMap<String, ItemsLibrary>,
    query: &str,
) -> (Option<Option<String>>, Duration) {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
    };
    let start: usize = param("StartIndex")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let limit: usize = param("Limit").and_then(|v| v.parse().ok()).unwrap_or(100);
    let empty = ItemsLibrary::default();
    let library = param("ParentId")
        .and_then(|p| libraries.get(p))
        .unwrap_or(&empty);
    let delay = library.per_item * limit as u32;
    if library.fail_from.is_some_and(|from| start >= from) {
        return (None, delay);
    }
    // BaseItemRepository: IsMissing=false keeps IsVirtualItem == false only.
    let real_only = param("IsMissing") == Some("false");
    let fixed: Vec<&serde_json::Value> = library
        .fixed
        .iter()
        .filter(|i| !(real_only && i["LocationType"] == "Virtual"))
        .collect();
    let total = library.generated + fixed.len();
    let items: Vec<serde_json::Value> = (start..total.min(start + limit))
        .map(|i| match fixed.get(i) {
            Some(item) => (*item).clone(),
            None => generated_item(i - fixed.len()),
        })
        .collect();
    let body =
        serde_json::json!({ "Items": items, "TotalRecordCount": total, "StartIndex": start })
            .to_string();
    (Some(Some(body)), delay)
}

/// A query parameter, percent-decoded (names compared case-insensitively, as ASP.NET does).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.eq_ignore_ascii_case(name).then(|| {
            v.replace("%3A", ":")
                .replace("%3a", ":")
                .replace("%2C", ",")
                .replace("%2c", ",")
                .replace("%2B", "+")
        })
    })
}

/// An activity-log entry as the server serialises ActivityLogEntry (null fields omitted).
pub fn activity_entry(
    id: i64,
    kind: &str,
    date: &str,
    user: Option<&str>,
    item: Option<&str>,
) -> serde_json::Value {
    let severity = match kind {
        "AuthenticationFailed" | "TaskFailed" | "UserLockedOut" => "Error",
        _ => "Information",
    };
    let mut entry = serde_json::json!({
        "Id": id, "Name": "…", "Type": kind, "Date": date, "Severity": severity,
        "UserId": user.unwrap_or("00000000000000000000000000000000"),
    });
    if let Some(item) = item {
        entry["ItemId"] = serde_json::json!(item);
    }
    entry
}

/// The date format the server writes (UTC, 7 fraction digits).
pub fn jellyfin_date(ms: i64) -> String {
    jellyfin_pusher::jellyfin::date::format_ms(ms)
}

fn activity_page(log: &mut ActivityLog, query: &str) -> String {
    let min_date = query_param(query, "minDate");
    let start: usize = query_param(query, "startIndex")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let limit: usize = query_param(query, "limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    // Every date here has the server's fixed format, so text order is time order.
    let mut matching: Vec<&serde_json::Value> = log
        .entries
        .iter()
        .filter(|e| {
            min_date
                .as_deref()
                .is_none_or(|min| e["Date"].as_str().unwrap_or("") >= min)
        })
        .collect();
    matching.sort_by(|a, b| b["Date"].as_str().cmp(&a["Date"].as_str()));
    let items: Vec<&serde_json::Value> = matching.iter().skip(start).take(limit).copied().collect();
    let body = serde_json::json!({ "Items": items, "TotalRecordCount": matching.len(), "StartIndex": start })
        .to_string();
    if let Some((left, next_id, kind)) = log.arrivals.as_mut() {
        let n = log.arrive_per_page.min(*left);
        for _ in 0..n {
            log.entries.push(activity_entry(
                *next_id,
                kind,
                &jellyfin_date(now_ms()),
                None,
                None,
            ));
            *next_id += 1;
        }
        *left -= n;
    }
    body
}

fn items_by_id(items: &HashMap<String, serde_json::Value>, query: &str) -> String {
    let wanted = query_param(query, "ids").unwrap_or_default();
    let found: Vec<&serde_json::Value> = wanted.split(',').filter_map(|id| items.get(id)).collect();
    serde_json::json!({ "Items": found, "TotalRecordCount": found.len(), "StartIndex": 0 })
        .to_string()
}

/// POST /user_usage_stats/submit_custom_query as PlaybackReportingActivityController.CustomQuery
/// answers (ActivityRepository.RunCustomQuery: every cell a string). The fake runs no SQL: it
/// answers the agent's query, and reports any other as the plugin reports an SQL error.
fn plugin_answer(rows: &[(i64, String, i64)], body: &str) -> String {
    let request: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let query = request["CustomQueryString"].as_str().unwrap_or("");
    if !query.starts_with("SELECT rowid AS RowId, UserId, PlayDuration FROM PlaybackActivity") {
        return serde_json::json!({ "colums": [], "results": [],
            "message": format!("Error Running Query</br>unexpected query {query:?}") })
        .to_string();
    }
    let results: Vec<[String; 3]> = rows
        .iter()
        .map(|(id, user, secs)| [id.to_string(), user.clone(), secs.to_string()])
        .collect();
    serde_json::json!({ "colums": ["RowId", "UserId", "PlayDuration"], "results": results, "message": "" })
        .to_string()
}

/// A session as GET /Sessions lists it once its playback stopped (SessionManager.
/// OnPlaybackStopped, or CheckForIdlePlayback after 5 min without a check-in): the session
/// stays; RemoveNowPlayingItem clears NowPlayingItem, resets PlayState to a new
/// PlayerStateInfo (the defaults below) and clears the device's TranscodingInfo.
pub fn stop_playback(session: &mut serde_json::Value) {
    if let Some(session) = session.as_object_mut() {
        session.remove("NowPlayingItem");
        session.remove("TranscodingInfo");
        session.insert(
            "PlayState".into(),
            serde_json::json!({ "CanSeek": false, "IsPaused": false, "IsMuted": false,
                                "RepeatMode": "RepeatNone", "PlaybackOrder": "Default" }),
        );
    }
}
