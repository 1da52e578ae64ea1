//! The skim on whole answers and on answers cut into chunks anywhere.
use super::*;
use crate::jellyfin::dto::Session;
use crate::jellyfin::shape;

/// `body` skimmed in one chunk, after checking that every other cut gives the same: two
/// chunks split at every offset, and one byte at a time.
fn skimmed(body: &str) -> Option<String> {
    let shape = shape::of::<Vec<Session>>();
    let body = body.as_bytes();
    let whole = in_chunks(body, &shape, &[body.len()]);
    for split in 0..=body.len() {
        let cut = in_chunks(body, &shape, &[split, body.len() - split]);
        assert_eq!(cut, whole, "split at {split}");
    }
    assert_eq!(in_chunks(body, &shape, &vec![1; body.len()]), whole);
    assert_eq!(skim(body, &shape), whole.as_ref().ok().cloned());
    whole
        .ok()
        .map(|t| String::from_utf8(t).expect("UTF-8 in, UTF-8 out"))
}

/// `body` fed as chunks of these sizes (which add up to its length).
pub(crate) fn in_chunks(body: &[u8], shape: &Shape, sizes: &[usize]) -> Result<Vec<u8>, Broken> {
    let mut skim = Skim::new(shape, 0);
    let mut at = 0;
    for &size in sizes {
        skim.feed(&body[at..at + size])?;
        at += size;
    }
    assert_eq!(at, body.len(), "the sizes cover the body");
    skim.finish()
}

#[test]
fn keeps_only_what_the_dtos_read() {
    let body = r#" [ {"Id" : "a", "Capabilities": {"PlayableMediaTypes": ["Video"], "x": [[{}], -1.5e3, true, null]},
        "NowPlayingItem": {"Name": "Film", "People": [{"Name": "x \"y\" ]}"}], "MediaStreams": [{"Type": "Video", "Height": 1080, "Title": "4K"}]},
        "PlayState": null, "I\u0064": "b"} , {} ] "#;
    assert_eq!(
        skimmed(body).as_deref(),
        Some(
            r#"[{"Id":"a","NowPlayingItem":{"Name":"Film","MediaStreams":[{"Type":"Video","Height":1080}]},"PlayState":null,"I\u0064":"b"},{}]"#
        )
    );
}

/// Long skipped values, walked 64 bytes at a time: quotes, brackets and escapes on every
/// side of a block's edge.
#[test]
fn long_skipped_values_end_where_they_end() {
    for pad in 0..140 {
        let filler = "x".repeat(pad);
        let body = format!(
            r#"[{{"Capabilities": {{"a": "{filler}\"]}}\\", "b": [{{"c": "{filler}"}}, [], {{}}], "d": "{{["}}, "Id": "s{pad}"}}]"#
        );
        assert_eq!(
            skimmed(&body),
            Some(format!(r#"[{{"Id":"s{pad}"}}]"#)),
            "{body}"
        );
        // Cut anywhere inside, or one bracket of the wrong kind: refused.
        let cut = &body[..body.len() - 30];
        assert_eq!(skimmed(cut), None, "{cut}");
        let wrong = body.replacen("[], {}]", "[], {}}", 1);
        assert_eq!(skimmed(&wrong), None, "{wrong}");
    }
}

#[test]
fn a_value_of_another_kind_is_left_to_serde() {
    assert_eq!(
        skimmed(r#"[{"PlayState": [1, 2]}, "x", 3]"#).as_deref(),
        Some(r#"[{"PlayState":[1, 2]},"x",3]"#)
    );
    assert_eq!(skimmed(r#"{"a": 1}"#).as_deref(), Some(r#"{"a": 1}"#));
}

#[test]
fn broken_structure_is_refused() {
    for body in [
        "",
        "[",
        r#"[{"Id": "a"}"#,
        r#"[{"Capabilities": {"a": [1, 2}}]"#,
        r#"[{"Capabilities": {"a": "open}]"#,
        r#"[{"Capabilities": {"a": <html>}}]"#,
        r#"[{"Id" "a"}]"#,
        r#"[{"Id": "a",}]"#,
        r#"[{"Id": "a"}] x"#,
        r#"[{"Id": "a"} {"Id": "b"}]"#,
        r#"[{"Other": }]"#,
        r#"[{Id: "a"}]"#,
        "[\"\\",
    ] {
        assert_eq!(skimmed(body), None, "{body}");
    }
    let deep = format!(
        r#"[{{"Capabilities": {}{}}}]"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert_eq!(skimmed(&deep), None);
    let fine = format!(
        r#"[{{"Capabilities": {}{}}}]"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    assert_eq!(skimmed(&fine).as_deref(), Some("[{}]"));
}

#[test]
fn what_is_broken_is_named_by_byte_and_path() {
    let shape = shape::of::<Vec<Session>>();
    let broken = |body: &str| in_chunks(body.as_bytes(), &shape, &[body.len()]).err();
    let body = r#"[{"Id": "a"}, {"NowPlayingItem": {"MediaStreams": [{}, {"Height": 1 "#;
    assert_eq!(
        broken(body),
        Some(Broken {
            at: body.len() as u64,
            path: "[1].NowPlayingItem.MediaStreams[1].Height".into(),
            what: "the answer ends before its JSON does",
        })
    );
    let body = r#"[{"Capabilities": {"a": [1, 2}}]"#;
    assert_eq!(
        broken(body),
        Some(Broken {
            at: body.find('}').expect("a brace") as u64,
            path: "[0].Capabilities".into(),
            what: "brackets or strings that do not match",
        })
    );
    let body = r#"[{"Id": "a"},]"#;
    let fault = broken(body).expect("a trailing comma");
    assert_eq!((fault.at, fault.path.as_str()), (13, "[1]"));
    assert_eq!(broken("[] x").map(|b| b.at), Some(3));
    assert_eq!(broken("").map(|b| b.path), Some(".".into()));
}

/// A key cut anywhere, escapes cut between their backslash and the byte it takes: the key is
/// matched whole all the same.
#[test]
fn keys_and_escapes_cut_at_a_chunk_edge() {
    assert_eq!(
        skimmed(r#"[{"UserName": "a\\\"b", "Id\u0041": 1, "Client": "c\\"}]"#).as_deref(),
        Some(r#"[{"UserName":"a\\\"b","Id\u0041":1,"Client":"c\\"}]"#)
    );
}
