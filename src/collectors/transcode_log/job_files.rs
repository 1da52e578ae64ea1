//! The per-job ffmpeg logs Jellyfin writes next to its server log: one file per ffmpeg job
//! start, named by kind (`TranscodeManager.StartFfMpeg`, v10.9.11 to v12.0-rc5):
//! `FFmpeg.Transcode-…` (video re-encoded, or audio-only re-encoded), `FFmpeg.Remux-…` (video
//! and audio copied, or audio-only copied) and `FFmpeg.DirectStream-…` (video copied, audio
//! re-encoded), then `{yyyy-MM-dd_HH-mm-ss}_{MediaSourceId}_{8 hex}.log`.
//!
//! The file starts with the media source as one line of JSON, a blank line, the ffmpeg
//! command line and a blank line; ffmpeg's stderr follows (no exit code). The command line
//! tells whether video is encoded (the last `-codec:v:0` is not `copy`; an audio-only job
//! has none) and with what: a hardware encoder's suffix (`h264_nvenc`, `hevc_qsv`, …), else a
//! hardware decoder (`-hwaccel cuda`, …) in front of a software encoder, else software.

/// The `hw_accel` values, each born at 0: Jellyfin's HardwareAccelerationType values (the
/// sessions collector's list) and `unknown` (a job whose command line is not readable, or a
/// decoder shared by several types; listed once even if the sessions list has it too).
pub fn hw_accels() -> impl Iterator<Item = &'static str> {
    super::super::sessions::tracker::HW_ACCELS
        .into_iter()
        .chain(["unknown"])
}

/// At most this much of a job file's start is read to find its command line.
pub const HEAD_BYTES: u64 = 1 << 20;

/// A per-job log file's kind, from its name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Transcode,
    Remux,
    DirectStream,
}

pub fn kind(name: &str) -> Option<Kind> {
    if !name.ends_with(".log") {
        return None;
    }
    [
        ("FFmpeg.Transcode-", Kind::Transcode),
        ("FFmpeg.Remux-", Kind::Remux),
        ("FFmpeg.DirectStream-", Kind::DirectStream),
    ]
    .into_iter()
    .find_map(|(prefix, kind)| name.starts_with(prefix).then_some(kind))
}

/// The ffmpeg command line in a job file's first bytes: the first non-empty line after the
/// JSON line, once it is complete.
pub fn command_line(head: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n');
    lines.next()?; // the media source, as JSON
    let mut rest = lines.map(|l| l.trim_end_matches('\r'));
    let line = rest.find(|l| !l.is_empty())?;
    // Complete only when a newline follows it (the writer may be half-way).
    rest.next()?;
    Some(line.to_string())
}

/// Of a video transcode's command line: the acceleration it uses; None when it encodes no
/// video (an audio-only job).
pub fn video_hw_accel(command: &str) -> Option<&'static str> {
    let args: Vec<&str> = command.split_whitespace().collect();
    let value_of = |names: &[&str]| {
        args.windows(2)
            .rev()
            .find(|w| names.contains(&w[0]))
            .map(|w| w[1])
    };
    // The output's encoder comes last: a decoder chosen before -i (`-c:v av1`) comes first.
    let encoder = value_of(&["-codec:v:0", "-codec:v", "-c:v", "-c:v:0", "-vcodec"])?;
    if encoder == "copy" {
        return None;
    }
    let by_encoder = [
        ("_nvenc", "nvenc"),
        ("_qsv", "qsv"),
        ("_vaapi", "vaapi"),
        ("_amf", "amf"),
        ("_videotoolbox", "videotoolbox"),
        ("_v4l2m2m", "v4l2m2m"),
        ("_rkmpp", "rkmpp"),
    ];
    if let Some((_, hw)) = by_encoder.iter().find(|(s, _)| encoder.ends_with(s)) {
        return Some(hw);
    }
    Some(match value_of(&["-hwaccel"]) {
        None => "none",
        Some("cuda") => "nvenc",
        Some("qsv") => "qsv",
        Some("vaapi") => "vaapi",
        Some("videotoolbox") => "videotoolbox",
        Some("rkmpp") => "rkmpp",
        // d3d11va decodes for AMF and for QSV on Windows alike.
        Some(_) => "unknown",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_name() {
        assert_eq!(
            kind(
                "FFmpeg.Transcode-2026-11-25_09-14-03_5f3b6c1d2e4a4b7c8d9e0f1a2b3c4d5e_1a2b3c4d.log"
            ),
            Some(Kind::Transcode)
        );
        assert_eq!(
            kind("FFmpeg.Remux-2026-11-25_09-14-03_x_1a2b3c4d.log"),
            Some(Kind::Remux)
        );
        assert_eq!(
            kind("FFmpeg.DirectStream-2026-11-25_09-14-03_x_1a2b3c4d.log"),
            Some(Kind::DirectStream)
        );
        assert_eq!(kind("log_20261125.log"), None);
    }

    #[test]
    fn the_command_line_follows_the_json_line() {
        let head = b"{\"Protocol\":\"File\",\"Id\":\"5f3b\"}\n\n/usr/lib/jellyfin-ffmpeg/ffmpeg -i file:\"/m/a.mkv\" -codec:v:0 libx264 -f hls\n\n";
        assert_eq!(
            command_line(head).as_deref(),
            Some("/usr/lib/jellyfin-ffmpeg/ffmpeg -i file:\"/m/a.mkv\" -codec:v:0 libx264 -f hls")
        );
        assert_eq!(
            command_line(b"{\"Protocol\":\"File\"}\n\n/usr/lib/jellyfin-ffmpeg/ffmpeg -i"),
            None
        );
        assert_eq!(command_line(b"{\"Protocol\":"), None);
        let windows = b"{}\r\n\r\nffmpeg.exe -codec:v:0 h264_amf\r\n\r\n";
        assert_eq!(
            command_line(windows).as_deref(),
            Some("ffmpeg.exe -codec:v:0 h264_amf")
        );
    }

    #[test]
    fn acceleration_from_the_encoder_then_the_decoder() {
        let cases = [
            (
                "ffmpeg -init_hw_device cuda=cu:0 -hwaccel cuda -hwaccel_output_format cuda -c:v av1 -i x -codec:v:0 h264_nvenc",
                Some("nvenc"),
            ),
            (
                "ffmpeg -hwaccel vaapi -i x -codec:v:0 h264_qsv",
                Some("qsv"),
            ),
            (
                "ffmpeg -hwaccel vaapi -i x -codec:v:0 hevc_vaapi",
                Some("vaapi"),
            ),
            (
                "ffmpeg -hwaccel cuda -i x -codec:v:0 libx264",
                Some("nvenc"),
            ),
            (
                "ffmpeg -hwaccel d3d11va -i x -codec:v:0 libx264",
                Some("unknown"),
            ),
            (
                "ffmpeg -i x -codec:v:0 libx264 -preset veryfast",
                Some("none"),
            ),
            (
                "ffmpeg -i x -map 0:v:0 -codec:v:0 copy -codec:a:0 aac",
                None,
            ),
            ("ffmpeg -i x -map 0:1 -codec:a:0 libmp3lame -vn", None),
        ];
        for (command, want) in cases {
            assert_eq!(video_hw_accel(command), want, "{command}");
        }
    }
}
