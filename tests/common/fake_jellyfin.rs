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
}

struct State {
    mode: Mode,
    base_path: String,
    routes: HashMap<String, String>,
    requests: Vec<Request>,
    /// Header problems seen (legacy auth headers, api_key in the query, a wrong token).
    violations: Vec<String>,
}

pub struct FakeJellyfin {
    pub port: u16,
    state: Arc<Mutex<State>>,
    server: Option<JoinHandle<()>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl FakeJellyfin {
    /// Starts on a free port, serving below `base_path` ("" or "/jellyfin").
    pub async fn start(base_path: &str) -> FakeJellyfin {
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
        }));
        let mut fake = FakeJellyfin {
            port: super::free_port(),
            state,
            server: None,
        };
        fake.up().await;
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
        (s.mode, s.routes.get(&path).cloned())
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
            "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body>...</body></html>".into(),
        ),
        Mode::Unauthorized => respond(StatusCode::UNAUTHORIZED, "text/plain", String::new()),
        Mode::Normal => match body {
            Some(body) => respond(StatusCode::OK, "application/json; charset=utf-8", body),
            None => respond(StatusCode::NOT_FOUND, "text/plain", String::new()),
        },
    }
}
