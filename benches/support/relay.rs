//! A TCP relay on 127.0.0.1 in front of a receiver that counts the bytes senders write to it:
//! the request bytes on the wire (HTTP headers and bodies), counted the same way for every
//! sender, so that the agent's and vmagent's figures compare.
//!
//! It also notes when it saw the first request byte and the last answer byte since
//! [`Relay::reset_times`]: the moment the receiver had answered every request, to the
//! microsecond and alike for every sender. (VictoriaMetrics' own counters cannot tell that
//! finely: 1.79 serves `/metrics` from a copy refreshed at most once a second,
//! `lib/httpserver/metrics.go`.)

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Relay {
    pub port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    /// Where new connections go (existing ones keep theirs).
    target: AtomicU16,
    sent: AtomicU64,
    epoch: Instant,
    /// Nanoseconds after `epoch`, 0 for "not yet".
    first_request_ns: AtomicU64,
    last_answer_ns: AtomicU64,
}

impl Relay {
    /// Relays every connection to 127.0.0.1:`target` (refused while nothing listens there).
    pub fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            target: AtomicU16::new(target),
            sent: AtomicU64::new(0),
            epoch: Instant::now(),
            first_request_ns: AtomicU64::new(0),
            last_answer_ns: AtomicU64::new(0),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let target = s.target.load(Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let (c, sv) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (up, down) = (s.clone(), s.clone());
                std::thread::spawn(move || pipe(c, sv, |n| up.request_bytes(n)));
                std::thread::spawn(move || pipe(server, client, |_| down.answer_bytes()));
            }
        });
        Relay { port, shared }
    }

    /// Sends new connections to 127.0.0.1:`target` from now on.
    pub fn set_target(&self, target: u16) {
        self.shared.target.store(target, Ordering::SeqCst);
    }

    /// Bytes the senders have written so far.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::SeqCst)
    }

    /// Forgets the first request and last answer seen.
    pub fn reset_times(&self) {
        self.shared.first_request_ns.store(0, Ordering::SeqCst);
        self.shared.last_answer_ns.store(0, Ordering::SeqCst);
    }

    /// When the first request byte since [`Relay::reset_times`] arrived.
    pub fn first_request(&self) -> Option<Instant> {
        self.shared.at(&self.shared.first_request_ns)
    }

    /// When the last answer byte since [`Relay::reset_times`] went back to a sender.
    pub fn last_answer(&self) -> Option<Instant> {
        self.shared.at(&self.shared.last_answer_ns)
    }
}

impl Shared {
    fn now_ns(&self) -> u64 {
        (self.epoch.elapsed().as_nanos() as u64).max(1)
    }

    fn at(&self, ns: &AtomicU64) -> Option<Instant> {
        match ns.load(Ordering::SeqCst) {
            0 => None,
            ns => Some(self.epoch + Duration::from_nanos(ns)),
        }
    }

    fn request_bytes(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::SeqCst);
        let _ = self.first_request_ns.compare_exchange(
            0,
            self.now_ns(),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    fn answer_bytes(&self) {
        self.last_answer_ns.store(self.now_ns(), Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, seen: impl Fn(usize)) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        seen(n);
    }
    let _ = to.shutdown(Shutdown::Write);
}
