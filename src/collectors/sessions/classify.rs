//! How a stream is played, as Jellyfin's own dashboard tells it, and whether it really
//! re-encodes video, and on what.
//!
//! `PlayState.PlayMethod` alone misleads: the client reports it, the report's enum defaults to
//! Transcode (MediaBrowser.Model/Session/PlaybackProgressInfo.cs, PlayMethod.cs), and a stream
//! copy also says Transcode. jellyfin-web (src/components/playback/playmethodhelper.js, the same
//! from 10.9 to 12.0) classifies from `TranscodingInfo` first; [`play_method`] does the same.

use crate::jellyfin::dto::{EncodingOptions, MediaStream, NowPlaying, Session};

use crate::sample::enum_label;

/// Target codecs Jellyfin can hand to a GPU encoder (EncodingHelper.GetH26xOrAv1Encoder).
const HW_ENCODED: [&str; 3] = ["h264", "hevc", "av1"];

/// jellyfin-web's getDisplayPlayMethod: Remux when video and audio are copied (or there is no
/// video and the audio is copied), DirectStream when only the video is copied, else the
/// client's PlayMethod (Transcode, or DirectPlay for DirectStream and DirectPlay); `unknown`
/// when the session says nothing.
pub fn play_method(session: &Session) -> &'static str {
    let info = session.transcoding_info.as_ref();
    let video_direct = info.and_then(|t| t.is_video_direct).unwrap_or(false);
    let no_video = info
        .and_then(|t| t.video_codec.as_deref())
        .is_none_or(str::is_empty);
    let audio_direct = info.and_then(|t| t.is_audio_direct).unwrap_or(false);
    if (video_direct || no_video) && audio_direct {
        return "remux";
    }
    if video_direct {
        return "directstream";
    }
    match session
        .play_state
        .as_ref()
        .and_then(|p| p.play_method.as_deref())
    {
        Some("Transcode") => "transcode",
        Some("DirectStream" | "DirectPlay") => "directplay",
        _ => "unknown",
    }
}

/// A stream whose video ffmpeg re-encodes: the transcode metrics count only these. Not a remux,
/// not an audio-only job (no output video codec), not a client that merely reports the
/// default PlayMethod without a transcoding job.
pub fn is_video_transcode(session: &Session) -> bool {
    let Some(info) = session.transcoding_info.as_ref() else {
        return false;
    };
    play_method(session) == "transcode"
        && info.is_video_direct == Some(false)
        && info.video_codec.as_deref().is_some_and(|c| !c.is_empty())
}

/// The default (else first) video stream of the playing item: the transcoder's source.
pub fn source_video(item: &NowPlaying) -> Option<&MediaStream> {
    let streams = item.media_streams.as_deref()?;
    let video = |s: &&MediaStream| s.kind.as_deref() == Some("Video");
    streams
        .iter()
        .filter(video)
        .find(|s| s.is_default == Some(true))
        .or_else(|| streams.iter().find(video))
}

/// The `hw_accel` label of a video transcode: the configured acceleration when this stream can
/// use it, `none` for software, `unknown` when the server does not tell.
///
/// `TranscodingInfo.HardwareAccelerationType` is only the server-wide setting, copied onto every
/// job (TranscodeManager.ReportTranscodingProgress), and absent on 10.9. What decides per
/// stream is the encoding configuration (EncodingHelper.cs): the GPU encodes when acceleration
/// is on, `EnableHardwareEncoding` is set and the target is h264, hevc or av1; it decodes when
/// the source codec is in `HardwareDecodingCodecs`. Without the configuration only a server-wide
/// `none` is certain.
pub fn hw_accel(
    session: &Session,
    item: &NowPlaying,
    encoding: Option<&EncodingOptions>,
) -> String {
    let info = session.transcoding_info.as_ref();
    let Some(options) = encoding else {
        let reported = enum_label(info.and_then(|t| t.hardware_acceleration_type.as_deref()));
        return if reported == "none" {
            reported
        } else {
            "unknown".into()
        };
    };
    let kind = enum_label(options.hardware_acceleration_type.as_deref());
    if kind == "unknown" || kind == "none" {
        // 10.9 stores an empty string for software.
        return "none".into();
    }
    let target = enum_label(info.and_then(|t| t.video_codec.as_deref()));
    let encodes =
        options.enable_hardware_encoding == Some(true) && HW_ENCODED.contains(&target.as_str());
    let source = source_video(item).and_then(|v| v.codec.as_deref());
    let decodes = source.is_some_and(|codec| {
        options
            .hardware_decoding_codecs
            .iter()
            .flatten()
            .any(|c| c.eq_ignore_ascii_case(codec))
    });
    if encodes || decodes {
        kind
    } else {
        "none".into()
    }
}

/// Seconds the transcoder is ahead of the viewer: CompletionPercentage of the run time minus
/// the position (ticks are 100 ns). Near 0 or below, the viewer is about to buffer.
pub fn lead_seconds(session: &Session, item: &NowPlaying) -> Option<f64> {
    let done = session.transcoding_info.as_ref()?.completion_percentage?;
    let runtime = item.run_time_ticks? as f64;
    let position = session.play_state.as_ref()?.position_ticks.unwrap_or(0) as f64;
    Some((done / 100.0 * runtime - position) / 1e7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jellyfin::dto::{PlayState, TranscodingInfo};

    fn session(method: &str, info: Option<(bool, bool, Option<&str>)>) -> Session {
        Session {
            play_state: Some(PlayState {
                play_method: Some(method.into()),
                ..PlayState::default()
            }),
            transcoding_info: info.map(|(video_direct, audio_direct, codec)| TranscodingInfo {
                is_video_direct: Some(video_direct),
                is_audio_direct: Some(audio_direct),
                video_codec: codec.map(str::to_string),
                ..TranscodingInfo::default()
            }),
            ..Session::default()
        }
    }

    #[test]
    fn classifies_as_jellyfin_web_does() {
        let cases = [
            (session("DirectPlay", None), "directplay", false),
            (session("DirectStream", None), "directplay", false),
            // The report's default: no job, so no video transcode either.
            (session("Transcode", None), "transcode", false),
            (
                session("Transcode", Some((true, true, Some("copy")))),
                "remux",
                false,
            ),
            (
                session("Transcode", Some((false, true, None))),
                "remux",
                false,
            ),
            (
                session("Transcode", Some((true, false, Some("copy")))),
                "directstream",
                false,
            ),
            // Audio re-encoded, no video: the dashboard's Transcode, not a video transcode.
            (
                session("Transcode", Some((false, false, None))),
                "transcode",
                false,
            ),
            (
                session("Transcode", Some((false, false, Some("h264")))),
                "transcode",
                true,
            ),
        ];
        for (s, method, video) in cases {
            assert_eq!(
                (play_method(&s), is_video_transcode(&s)),
                (method, video),
                "{s:?}"
            );
        }
        assert_eq!(play_method(&Session::default()), "unknown");
    }

    #[test]
    fn hw_accel_follows_the_encoding_configuration_per_stream() {
        let mut s = session("Transcode", Some((false, false, Some("h264"))));
        let item: NowPlaying = serde_json::from_value(serde_json::json!({
            "MediaStreams": [{ "Type": "Video", "Codec": "mpeg4", "IsDefault": true }]
        }))
        .unwrap();
        let options = |kind: &str, encode: bool, decode: &[&str]| EncodingOptions {
            hardware_acceleration_type: Some(kind.into()),
            enable_hardware_encoding: Some(encode),
            hardware_decoding_codecs: Some(decode.iter().map(|c| c.to_string()).collect()),
        };
        assert_eq!(
            hw_accel(&s, &item, Some(&options("vaapi", true, &[]))),
            "vaapi"
        );
        assert_eq!(
            hw_accel(&s, &item, Some(&options("vaapi", false, &[]))),
            "none"
        );
        assert_eq!(
            hw_accel(&s, &item, Some(&options("vaapi", false, &["mpeg4"]))),
            "vaapi"
        );
        assert_eq!(
            hw_accel(&s, &item, Some(&options("", true, &["mpeg4"]))),
            "none"
        );
        assert_eq!(
            hw_accel(&s, &item, Some(&options("none", true, &[]))),
            "none"
        );
        // vp9 has no GPU encoder in Jellyfin.
        s.transcoding_info.as_mut().unwrap().video_codec = Some("vp9".into());
        assert_eq!(
            hw_accel(&s, &item, Some(&options("nvenc", true, &["h264"]))),
            "none"
        );
        // Without the configuration: 10.9 says nothing, 10.10+ only the server-wide setting.
        assert_eq!(hw_accel(&s, &item, None), "unknown");
        s.transcoding_info
            .as_mut()
            .unwrap()
            .hardware_acceleration_type = Some("vaapi".into());
        assert_eq!(hw_accel(&s, &item, None), "unknown");
        s.transcoding_info
            .as_mut()
            .unwrap()
            .hardware_acceleration_type = Some("none".into());
        assert_eq!(hw_accel(&s, &item, None), "none");
    }

    #[test]
    fn every_play_method_passes_the_central_label_bound() {
        for label in ["play_method"] {
            let Some(crate::labels::Bound::AllowList(allowed)) =
                crate::labels::rule("jellyfin_streams", label)
                    .or_else(|| {
                        crate::labels::RULES
                            .iter()
                            .find(|r| r.family.is_none() && r.label == label)
                    })
                    .map(|r| r.bound)
            else {
                panic!("no allow-list for {label}");
            };
            for method in crate::labels::PLAY_METHODS.iter().chain(&["unknown"]) {
                assert!(allowed.contains(method), "{method} would become other");
            }
        }
        let Some(crate::labels::Bound::AllowList(allowed)) =
            crate::labels::rule("jellyfin_playback_total", "type").map(|r| r.bound)
        else {
            panic!("no allow-list for jellyfin_playback_total type");
        };
        for method in crate::labels::PLAY_METHODS.iter().chain(&["unknown"]) {
            assert!(allowed.contains(method), "{method} would become other");
        }
    }
}
