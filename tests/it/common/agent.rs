//! The agent binary as a process, with a config and token file written for the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::fake_jellyfin::TOKEN;

pub const BIN: &str = env!("CARGO_BIN_EXE_jellyfin-pusher");

/// A folder with the agent's config, token file, state_dir and logs.
pub struct AgentDir {
    pub dir: tempfile::TempDir,
}

impl AgentDir {
    /// Writes a config for `jellyfin_url` pushing to `remotes` (name, url) every `interval`,
    /// plus `extra` TOML appended verbatim.
    pub fn new(
        jellyfin_url: &str,
        remotes: &[(&str, &str)],
        interval: &str,
        extra: &str,
    ) -> AgentDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        let mut config = format!(
            "state_dir = \"{state}\"\n\
             [jellyfin]\nurl = \"{jellyfin_url}\"\ntoken_file = \"{token}\"\ntimeout = \"1s\"\n\
             [collect]\ninterval = \"{interval}\"\n\
             [labels]\njob = \"jellyfin\"\ninstance = \"test-dmz\"\n",
            state = dir.path().join("state").display(),
            token = dir.path().join("token").display(),
        );
        for (name, url) in remotes {
            config.push_str(&format!(
                "[[remote_write]]\nname = \"{name}\"\nurl = \"{url}\"\ntimeout = \"2s\"\n"
            ));
        }
        config.push_str(extra);
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        AgentDir { dir }
    }

    /// An agent collecting every second from `jellyfin` and pushing to `vm` as remote "tiger".
    pub fn pushing(
        jellyfin: &super::fake_jellyfin::FakeJellyfin,
        vm: &super::servers::VictoriaMetrics,
        extra: &str,
    ) -> AgentDir {
        AgentDir::new(&jellyfin.url(), &[("tiger", &vm.write_url())], "1s", extra)
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Runs the binary to completion with `args` after `--config <file>`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(self.config())
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run jellyfin-pusher")
    }

    /// Starts the agent in the background; its stderr goes to a numbered log file.
    pub fn start(&self) -> Agent {
        self.start_with_env(&[])
    }

    /// Like [`AgentDir::start`], with extra environment variables (systemd's, in tests).
    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Agent {
        let n = std::fs::read_dir(self.dir.path()).unwrap().count();
        let log = self.dir.path().join(format!("agent-{n}.log"));
        let child = Command::new(BIN)
            .arg("--config")
            .arg(self.config())
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start jellyfin-pusher");
        Agent {
            child: Some(child),
            log,
        }
    }
}

pub struct Agent {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Agent {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().map(|s| s.is_none()).unwrap_or(false))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits (at most 20 s) and returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        self.stop_status()
    }

    /// Waits (at most 20 s) for an agent that was already signalled to exit.
    pub fn stop_status(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("agent running");
        for _ in 0..200 {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        panic!(
            "the agent did not exit within 20 s of SIGTERM; log:\n{}",
            read(&self.log)
        );
    }

    /// SIGKILL: no chance to save anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
