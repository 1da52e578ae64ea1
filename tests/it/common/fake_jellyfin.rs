//! A fake Jellyfin: serves the real captures in tests/fixtures/jellyfin, checks the
//! Authorization header like the real server, records every request, and can be switched into
//! the failure modes the agent must survive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::now_ms;

pub const TOKEN: &str = "0123456789abcdef0123456789abcdef";

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
    /// GET /Items serves this many generated items below this ParentId, paged.
    generated: Option<(String, usize)>,
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
            ("/System/ActivityLog/Entries", "activity-log.synthetic.json"),
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
            generated: None,
        }));
        listener.set_nonblocking(true).expect("non-blocking");
        let listener = TcpListener::from_std(listener).expect("tokio listener");
        let mut fake = FakeJellyfin {
            port: listener.local_addr().expect("local addr").port(),
            state,
            server: None,
        };
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

    /// Serves `body` for `path` from now on.
    pub fn route(&self, path: &str, body: String) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_string(), body);
    }

    /// Serves `total` generated items (see [`generated_item`]) below library `parent` from
    /// GET /Items, paged by StartIndex and Limit like the server; other parents are empty.
    pub fn generate_items(&self, parent: &str, total: usize) {
        self.state.lock().unwrap().generated = Some((parent.to_string(), total));
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
        let app = Router::new()
            .fallback(move |uri: Uri, headers: HeaderMap| handle(state.clone(), uri, headers));
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

async fn handle(state: Arc<Mutex<State>>, uri: Uri, headers: HeaderMap) -> Response {
    let (mode, body) = {
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
        let body = match (&s.generated, path.as_str()) {
            (Some((parent, total)), "/Items") => {
                Some(generated_page(parent, *total, uri.query().unwrap_or("")))
            }
            _ => s.routes.get(&path).cloned(),
        };
        if let (Some(last), Some(body)) = (s.requests.last_mut(), &body) {
            last.bytes = body.len();
        }
        (s.mode, body)
    };
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
            Some(body) => respond(StatusCode::OK, "application/json; charset=utf-8", body),
            None => respond(StatusCode::NOT_FOUND, "text/plain", String::new()),
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

fn generated_page(parent: &str, total: usize, query: &str) -> String {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
    };
    let start: usize = param("StartIndex")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let limit: usize = param("Limit").and_then(|v| v.parse().ok()).unwrap_or(100);
    let total = if param("ParentId") == Some(parent) {
        total
    } else {
        0
    };
    let items: Vec<serde_json::Value> = (start..total.min(start + limit))
        .map(generated_item)
        .collect();
    serde_json::json!({ "Items": items, "TotalRecordCount": total, "StartIndex": start })
        .to_string()
}
