//! The field a decoding error is at, found from the error's position in the body: the keys and
//! indices of the containers open at that byte, e.g. `[3].NowPlayingItem.MediaStreams[2].Height`
//! (serde_path_to_error's notation; `.` for the top level).
//!
//! Tracking the path while decoding (serde_path_to_error) costs an owned key per field on every
//! answer and a second copy of every DTO's decoder in the binary; the position serde_json
//! reports on failure is enough to find the same path afterwards, in one pass over the bytes
//! before it.

enum Frame {
    /// The key whose value is being read (none between a `,` and the next key).
    Object(Option<String>),
    Array(usize),
}

/// The path to the value open at byte `offset` of `body` (syntax already checked up to there
/// or not: a broken body only gives a shorter path).
pub(super) fn path_at(body: &[u8], offset: usize) -> String {
    let end = offset.min(body.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut last_string: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < end {
        match body[i] {
            b'"' => {
                let start = i + 1;
                i = start;
                while i < end && body[i] != b'"' {
                    // An escape takes the next byte with it (`\"` does not end the string).
                    i += if body[i] == b'\\' { 2 } else { 1 };
                }
                last_string = Some((start, i.min(end)));
            }
            b':' => {
                if let (Some(Frame::Object(key)), Some((from, to))) =
                    (stack.last_mut(), last_string)
                {
                    *key = Some(String::from_utf8_lossy(&body[from..to]).into_owned());
                }
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object(key)) => *key = None,
                Some(Frame::Array(index)) => *index += 1,
                None => {}
            },
            b'{' => stack.push(Frame::Object(None)),
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Array(index) => path.push_str(&format!("[{index}]")),
            Frame::Object(Some(key)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object(None) => {}
        }
    }
    if path.is_empty() {
        path.push('.');
    }
    path
}

/// The byte offset serde_json's error points at (its line is 1-based, its column the bytes
/// read on that line).
pub(super) fn offset_of(body: &[u8], line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        body.iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map_or(body.len(), |(i, _)| i + 1)
    };
    line_start + column
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jellyfin::dto::Session;

    /// The path for the first error serde_json finds decoding `body` as `T`.
    fn error_path<T: serde::de::DeserializeOwned>(body: &str) -> String {
        let e = serde_json::from_str::<T>(body).err().expect("an error");
        path_at(
            body.as_bytes(),
            offset_of(body.as_bytes(), e.line(), e.column()),
        )
    }

    #[test]
    fn names_the_field_as_serde_path_to_error_did() {
        let body = r#"[{"Id":"a"},{"Id":"b","NowPlayingItem":{"Name":"x","MediaStreams":[{"Type":"Video"},{"Codec":"h264","Height":"tall"}]}}]"#;
        assert_eq!(
            error_path::<Vec<Session>>(body),
            "[1].NowPlayingItem.MediaStreams[1].Height"
        );
        let body = r#"[{"PlayState":{"IsPaused":"yes"}}]"#;
        assert_eq!(error_path::<Vec<Session>>(body), "[0].PlayState.IsPaused");
        // A container of the wrong kind: the key that holds it.
        let body = r#"[{"NowPlayingItem":{"MediaStreams":{"a":1}}}]"#;
        assert_eq!(
            error_path::<Vec<Session>>(body),
            "[0].NowPlayingItem.MediaStreams"
        );
        // Quotes, colons and brackets inside strings are not structure.
        let body = r#"[{"Client":"a\",:[{","UserId":"u","PlayState":{"PositionTicks":1.5}}]"#;
        assert_eq!(
            error_path::<Vec<Session>>(body),
            "[0].PlayState.PositionTicks"
        );
    }

    #[test]
    fn the_top_level_is_a_dot() {
        assert_eq!(error_path::<Vec<Session>>("{}"), ".");
        assert_eq!(error_path::<Vec<Session>>("nonsense"), ".");
        assert_eq!(error_path::<Vec<Session>>(""), ".");
    }

    #[test]
    fn errors_on_later_lines_are_found() {
        let body = "[\n  {\"Id\": \"a\"},\n  {\"PlayState\": {\"IsPaused\": 3}}\n]";
        assert_eq!(error_path::<Vec<Session>>(body), "[1].PlayState.IsPaused");
        // A body cut short: the containers still open.
        let body = "[{\"NowPlayingItem\": {\"Name\": \"x\"";
        assert_eq!(error_path::<Vec<Session>>(body), "[0].NowPlayingItem.Name");
    }
}
