//! A collector with one of its families left to another producer: one family, one producer.
//! With `collectors.transcode_log.dir` set, `jellyfin_transcode_total` comes from the
//! per-job ffmpeg logs (the same source as the failures), so the sessions collector's own
//! count of transcode starts is dropped instead of being pushed next to it.

use super::{CollectError, Collector};
use crate::sample::Family;

pub struct LeaveFamily {
    inner: Box<dyn Collector>,
    family: &'static str,
}

impl LeaveFamily {
    pub fn new(inner: Box<dyn Collector>, family: &'static str) -> Self {
        LeaveFamily { inner, family }
    }
}

#[async_trait::async_trait]
impl Collector for LeaveFamily {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let from = out.len();
        let result = self.inner.collect(out).await;
        let mut i = from;
        while i < out.len() {
            if out[i].name == self.family {
                out.remove(i);
            } else {
                i += 1;
            }
        }
        result
    }
}
