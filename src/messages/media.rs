//! Media a tenant sends: what kind it is, its MIME type, size caps, base64, filename and caption.
//!
//! The content decides: the first bytes are matched against the signatures of the formats
//! WhatsApp carries ([`sniff`]). An explicit `type` is honoured when the content fits it
//! (anything can go as a document; an image must be an image), so a mislabelled file is refused
//! with a clear 422 instead of failing later inside WhatsApp. Everything here is pure; the API
//! handler gathers the bytes (upload, URL, base64) and calls [`MediaOptions::build`].

use std::sync::Arc;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::config::WhatsappConfig;
use crate::devices::driver::{MediaKind, OutboundMedia};

mod fetch;
mod sniff;
pub mod store;

pub use fetch::{Downloaded, FetchError, MediaFetcher};
pub use sniff::sniff;
use sniff::*;

/// Longest caption, in characters (WhatsApp's own limit).
pub const MAX_CAPTION_CHARS: usize = 1024;
/// Longest filename, in bytes.
pub const MAX_FILENAME_BYTES: usize = 255;

/// Why media was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MediaError {
    #[error("the media is empty")]
    Empty,
    #[error("`{0}` is not a media type; use image, video, audio, voice, document or sticker")]
    UnknownType(String),
    #[error("a voice note must be OGG/Opus audio; the content is {found}, which this gateway does not convert (send it as type audio)")]
    VoiceFormat { found: String },
    #[error("the sticker could not be made from this image: {0}")]
    Sticker(String),
    #[error("the content ({found}) is not a valid {}; send it as type document, or leave type out", .wanted.as_str())]
    Mismatch { wanted: MediaKind, found: String },
    #[error("{} files may be at most {max} bytes", .kind.as_str())]
    TooLarge { kind: MediaKind, max: usize },
    #[error("not valid base64: {0}")]
    BadBase64(String),
    #[error("the caption may be at most {max} characters")]
    CaptionTooLong { max: usize },
}

impl MediaError {
    /// The request field at fault, when the error names one (`Empty` depends on the source).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            MediaError::UnknownType(_) | MediaError::Mismatch { .. } | MediaError::VoiceFormat { .. } => {
                Some("type")
            }
            MediaError::Sticker(_) => None,
            MediaError::BadBase64(_) => Some("base64"),
            MediaError::CaptionTooLong { .. } => Some("caption"),
            MediaError::Empty | MediaError::TooLarge { .. } => None,
        }
    }
}

/// The `type` field: `image`, `video`, `audio`, `document`, and the seed's file-type names.
pub fn parse_type(raw: &str) -> Result<MediaKind, MediaError> {
    let t = raw.trim().to_ascii_lowercase();
    let kind = match t.as_str() {
        "image" | "img" | "photo" | "picture" => MediaKind::Image,
        "video" => MediaKind::Video,
        "audio" | "mp3" => MediaKind::Audio,
        "voice" | "ptt" | "voice_note" => MediaKind::Voice,
        "sticker" => MediaKind::Sticker,
        "document" | "doc" | "docx" | "file" | "pdf" | "xls" | "xlsx" | "ppt" | "pptx" | "zip" | "txt"
        | "csv" => MediaKind::Document,
        _ => return Err(MediaError::UnknownType(raw.trim().chars().take(40).collect())),
    };
    Ok(kind)
}

/// The kind to send as: `type_field` when given and the content fits it, else what the content
/// is (unrecognised content is a document). `mime` is the declared type, trusted only to back
/// an explicit `type` when the content is not recognised (`type=audio` with `audio/aac`).
pub fn kind_for(type_field: Option<&str>, mime: Option<&str>, bytes: &[u8]) -> Result<MediaKind, MediaError> {
    let wanted = type_field.filter(|t| !t.trim().is_empty()).map(parse_type).transpose()?;
    resolve_kind(wanted, mime, bytes)
}

fn resolve_kind(
    wanted: Option<MediaKind>,
    mime: Option<&str>,
    bytes: &[u8],
) -> Result<MediaKind, MediaError> {
    let sniffed = sniff(bytes);
    let Some(wanted) = wanted else {
        return Ok(sniffed.map_or(MediaKind::Document, |(kind, _)| kind));
    };
    let fits = match (wanted, sniffed) {
        (MediaKind::Document, _) => true,
        // WhatsApp plays voice notes as Opus in OGG only.
        (MediaKind::Voice, Some((MediaKind::Audio, mime))) if mime.starts_with("audio/ogg") => true,
        (MediaKind::Voice, Some((MediaKind::Audio | MediaKind::Video, mime))) => {
            return Err(MediaError::VoiceFormat { found: mime.to_string() })
        }
        // PNG and JPEG are converted to WebP.
        (MediaKind::Sticker, Some((MediaKind::Image, mime))) => {
            matches!(mime, "image/webp" | "image/png" | "image/jpeg")
        }
        // An MP4, WebM or 3GP container can carry sound alone.
        (MediaKind::Audio, Some((MediaKind::Audio | MediaKind::Video, _))) => true,
        (w, Some((k, _))) => w == k,
        (w, None) => mime.and_then(clean_mime).is_some_and(|m| m.split('/').next() == Some(w.as_str())),
    };
    if fits {
        Ok(wanted)
    } else {
        Err(MediaError::Mismatch { wanted, found: describe(sniffed) })
    }
}

/// The MIME type to send: the content's own when recognised (a ZIP or OLE2 container refined by
/// the filename's extension), else the declared one, else the extension's, else
/// `application/octet-stream`.
pub fn mime_for(kind: MediaKind, declared: Option<&str>, filename: Option<&str>, bytes: &[u8]) -> String {
    let by_extension = |family: &[&str]| {
        filename
            .and_then(extension)
            .filter(|e| family.is_empty() || family.contains(&e.as_str()))
            .and_then(|e| mime_of_extension(&e))
    };
    match sniff(bytes) {
        Some((_, container @ (ZIP | OLE))) => {
            let family = if container == ZIP { ZIP_FAMILY } else { OLE_FAMILY };
            by_extension(family).unwrap_or(container).to_string()
        }
        Some((MediaKind::Video, mime)) if kind == MediaKind::Audio => mime.replacen("video/", "audio/", 1),
        Some((_, "audio/ogg")) if kind == MediaKind::Voice => "audio/ogg; codecs=opus".into(),
        Some(_) if kind == MediaKind::Sticker => "image/webp".into(),
        Some((_, mime)) => mime.to_string(),
        // Unverified content: a claimed image, video or audio type only for that kind.
        None => {
            let fits = |m: &String| {
                let top = m.split('/').next().unwrap_or_default();
                !matches!(top, "image" | "video" | "audio") || top == kind.as_str()
            };
            declared
                .and_then(clean_mime)
                .filter(fits)
                .or_else(|| by_extension(&[]).map(str::to_string).filter(fits))
                .unwrap_or_else(|| OCTET.into())
        }
    }
}

/// The size cap of a kind (`[whatsapp] max_*_bytes`).
pub fn max_bytes(config: &WhatsappConfig, kind: MediaKind) -> usize {
    match kind {
        MediaKind::Image | MediaKind::Sticker => config.max_image_bytes,
        MediaKind::Video => config.max_video_bytes,
        MediaKind::Audio | MediaKind::Voice => config.max_audio_bytes,
        MediaKind::Document => config.max_document_bytes,
    }
}

/// `len` bytes of `kind` are within the cap.
pub fn check_size(config: &WhatsappConfig, kind: MediaKind, len: usize) -> Result<(), MediaError> {
    let max = max_bytes(config, kind);
    if len > max {
        return Err(MediaError::TooLarge { kind, max });
    }
    Ok(())
}

/// Side of a sticker, in pixels: WhatsApp shows stickers as 512 × 512.
const STICKER_SIDE: u32 = 512;

/// A PNG or JPEG image as a sticker: scaled to fit 512 × 512 (aspect kept), as lossless WebP.
/// Decoding is bounded, so a small file claiming a huge picture is refused, not expanded.
fn sticker_webp(bytes: &[u8]) -> Result<Vec<u8>, MediaError> {
    let bad = |e: image::ImageError| MediaError::Sticker(e.to_string());
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| MediaError::Sticker(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(8192);
    limits.max_image_height = Some(8192);
    limits.max_alloc = Some(128 << 20);
    reader.limits(limits);
    let picture = reader.decode().map_err(bad)?;
    let picture = if picture.width() > STICKER_SIDE || picture.height() > STICKER_SIDE {
        picture.resize(STICKER_SIDE, STICKER_SIDE, image::imageops::FilterType::Triangle)
    } else {
        picture
    };
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(picture.to_rgba8())
        .write_to(&mut out, image::ImageFormat::WebP)
        .map_err(bad)?;
    Ok(out.into_inner())
}

/// Decoded `base64` input and the MIME type a data URL declared.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub bytes: Vec<u8>,
    pub mime: Option<String>,
}

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes plain base64 (standard or URL-safe alphabet, padding optional, whitespace ignored)
/// or a data URL (`data:image/png;base64,...`).
pub fn decode_base64(input: &str) -> Result<Decoded, MediaError> {
    let input = input.trim();
    let (mime, payload) = match input.get(..5).filter(|p| p.eq_ignore_ascii_case("data:")) {
        Some(_) => {
            let (meta, data) = input[5..]
                .split_once(',')
                .ok_or_else(|| MediaError::BadBase64("a data URL needs a comma before the data".into()))?;
            let mut params = meta.split(';');
            let mime = params.next().and_then(clean_mime);
            if !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
                return Err(MediaError::BadBase64("the data URL must be base64-encoded (`;base64,`)".into()));
            }
            (mime, data)
        }
        None => (None, input),
    };
    let cleaned: Vec<u8> = payload.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if cleaned.is_empty() {
        return Err(MediaError::Empty);
    }
    let engine = if cleaned.iter().any(|b| matches!(b, b'-' | b'_')) { URL_SAFE } else { STANDARD };
    let bytes = engine.decode(&cleaned).map_err(|e| MediaError::BadBase64(e.to_string()))?;
    Ok(Decoded { bytes, mime })
}

/// A filename safe to show and store: the last path component, without control or
/// bidirectional-override characters, trimmed, at most [`MAX_FILENAME_BYTES`] bytes (the
/// extension kept). `None` when nothing usable is left.
pub fn sanitize_filename(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let bidi =
        |c: char| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}');
    let cleaned: String = last.chars().filter(|&c| !c.is_control() && !bidi(c)).collect();
    let name = cleaned.trim();
    if name.is_empty() || name == "." || name == ".." {
        return None;
    }
    if name.len() <= MAX_FILENAME_BYTES {
        return Some(name.to_string());
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 16 => name.split_at(i),
        _ => (name, ""),
    };
    let mut cut = (MAX_FILENAME_BYTES - ext.len()).min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(format!("{}{ext}", &stem[..cut]))
}

/// The filename a URL's last path segment suggests (percent-decoded, sanitised).
pub fn filename_from_url(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    let segment = url.path_segments()?.rev().find(|s| !s.is_empty())?;
    sanitize_filename(&percent_decode(segment))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A caption within [`MAX_CAPTION_CHARS`]; blank is none.
pub fn check_caption(caption: Option<String>) -> Result<Option<String>, MediaError> {
    match caption {
        Some(c) if c.chars().count() > MAX_CAPTION_CHARS => {
            Err(MediaError::CaptionTooLong { max: MAX_CAPTION_CHARS })
        }
        Some(c) if c.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// The checked request fields of a media send, known before the bytes are.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaOptions {
    kind: Option<MediaKind>,
    caption: Option<String>,
    filename: Option<String>,
}

impl MediaOptions {
    /// Checks `type`, `caption` and `filename` (so a bad request fails before any fetch).
    pub fn parse(
        type_field: Option<&str>,
        caption: Option<String>,
        filename: Option<&str>,
    ) -> Result<Self, MediaError> {
        let kind = type_field.filter(|t| !t.trim().is_empty()).map(parse_type).transpose()?;
        Ok(MediaOptions {
            kind,
            caption: check_caption(caption)?,
            filename: filename.and_then(sanitize_filename),
        })
    }

    /// The explicit kind, if `type` was given.
    pub fn kind(&self) -> Option<MediaKind> {
        self.kind
    }

    /// The most bytes worth reading: the explicit kind's cap, else the largest cap, with the
    /// kind to name when refusing more.
    pub fn read_cap(&self, config: &WhatsappConfig) -> (MediaKind, usize) {
        let kinds = match self.kind {
            Some(k) => vec![k],
            None => vec![MediaKind::Image, MediaKind::Video, MediaKind::Audio, MediaKind::Document],
        };
        kinds
            .into_iter()
            .map(|k| (k, max_bytes(config, k)))
            .max_by_key(|(_, max)| *max)
            .unwrap_or((MediaKind::Document, 0))
    }

    /// The media to send, from its bytes and what the source declared (`Content-Type`, the
    /// upload's or URL's filename).
    pub fn build(
        self,
        bytes: Vec<u8>,
        declared_mime: Option<&str>,
        source_filename: Option<&str>,
        config: &WhatsappConfig,
    ) -> Result<OutboundMedia, MediaError> {
        if bytes.is_empty() {
            return Err(MediaError::Empty);
        }
        let kind = resolve_kind(self.kind, declared_mime, &bytes)?;
        check_size(config, kind, bytes.len())?;
        let bytes = match (kind, sniff(&bytes)) {
            (MediaKind::Sticker, Some((_, "image/png" | "image/jpeg"))) => sticker_webp(&bytes)?,
            _ => bytes,
        };
        let filename = self.filename.or_else(|| source_filename.and_then(sanitize_filename));
        let mime = mime_for(kind, declared_mime, filename.as_deref(), &bytes);
        let filename = filename.or_else(|| {
            (kind == MediaKind::Document).then(|| {
                extension_of_mime(&mime).map_or_else(|| "document".to_string(), |e| format!("document.{e}"))
            })
        });
        Ok(OutboundMedia { kind, bytes: Arc::new(bytes), mime, filename, caption: self.caption })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::config::Config;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    fn config() -> WhatsappConfig {
        let mut c = Config::from_toml("").unwrap().whatsapp;
        c.max_image_bytes = 100;
        c.max_document_bytes = 1000;
        c
    }

    #[test]
    fn signatures_are_recognised() {
        use MediaKind::*;
        let mp4 = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2";
        let cases: &[(&[u8], MediaKind, &str)] = &[
            (b"\xFF\xD8\xFF\xE0\0\x10JFIF", Image, "image/jpeg"),
            (PNG, Image, "image/png"),
            (b"GIF89a\x01\0", Image, "image/gif"),
            (b"RIFF\x24\0\0\0WEBPVP8 ", Image, "image/webp"),
            (b"RIFF\x24\0\0\0WAVEfmt ", Audio, "audio/wav"),
            (mp4, Video, "video/mp4"),
            (b"\0\0\0\x14ftyp3gp4\0\0\0\0", Video, "video/3gpp"),
            (b"\0\0\0\x14ftypqt  \0\0\0\0", Video, "video/quicktime"),
            (b"\0\0\0\x20ftypM4A \0\0\0\0", Audio, "audio/mp4"),
            (b"\x1A\x45\xDF\xA3\x9F\x42\x86\x81\x01\x42\x82\x84webm", Video, "video/webm"),
            (b"\x1A\x45\xDF\xA3\x9F\x42\x86\x81\x01\x42\x82\x88matroska", Video, "video/x-matroska"),
            (
                b"OggS\0\x02\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x13OpusHead",
                Audio,
                "audio/ogg; codecs=opus",
            ),
            (b"ID3\x04\0\0\0\0\0\0", Audio, "audio/mpeg"),
            (b"\xFF\xFB\x90\x64\0\0", Audio, "audio/mpeg"),
            (b"\xFF\xF1\x50\x80\0\x1F", Audio, "audio/aac"),
            (b"#!AMR\n\x3c", Audio, "audio/amr"),
            (b"%PDF-1.7\n", Document, "application/pdf"),
            (b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\0\0", Document, OLE),
        ];
        for (bytes, kind, mime) in cases {
            assert_eq!(sniff(bytes), Some((*kind, *mime)), "{bytes:?}");
        }
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"hello, world"), None);
        assert_eq!(sniff(b"\xFF\xFF\xFF"), None, "an invalid MPEG header is not audio");
    }

    fn zip_with(entry: &str) -> Vec<u8> {
        let mut z = b"PK\x03\x04".to_vec();
        z.extend([0u8; 22]);
        z.extend((entry.len() as u16).to_le_bytes());
        z.extend([0u8; 2]);
        z.extend(entry.as_bytes());
        z.extend(b"some compressed data");
        z
    }

    #[test]
    fn office_documents_are_told_apart_from_zip() {
        assert_eq!(sniff(&zip_with("word/document.xml")), Some((MediaKind::Document, DOCX)));
        assert_eq!(sniff(&zip_with("xl/workbook.xml")), Some((MediaKind::Document, XLSX)));
        assert_eq!(sniff(&zip_with("readme.txt")), Some((MediaKind::Document, ZIP)));
        let odt = zip_with("mimetypeapplication/vnd.oasis.opendocument.text");
        assert_eq!(sniff(&odt).map(|s| s.1), Some("application/vnd.oasis.opendocument.text"));
        // A plain ZIP named .xlsx gets the spreadsheet type; a ZIP named .exe does not.
        assert_eq!(mime_for(MediaKind::Document, None, Some("a.xlsx"), &zip_with("x")), XLSX);
        assert_eq!(mime_for(MediaKind::Document, None, Some("a.exe"), &zip_with("x")), ZIP);
        let ole = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";
        assert_eq!(mime_for(MediaKind::Document, None, Some("old.DOC"), ole), "application/msword");
    }

    #[test]
    fn the_kind_follows_the_content_and_an_explicit_type_must_fit() {
        use MediaKind::*;
        assert_eq!(kind_for(None, None, PNG), Ok(Image));
        assert_eq!(kind_for(None, Some("image/png"), b"plain text"), Ok(Document));
        assert_eq!(kind_for(Some("document"), None, PNG), Ok(Document));
        assert_eq!(kind_for(Some(" Image "), None, PNG), Ok(Image));
        assert_eq!(kind_for(Some(""), None, b"%PDF-1.4"), Ok(Document));
        assert!(matches!(kind_for(Some("image"), None, b"%PDF-1.4"), Err(MediaError::Mismatch { .. })));
        assert!(matches!(kind_for(Some("video"), None, PNG), Err(MediaError::Mismatch { .. })));
        assert_eq!(kind_for(Some("audio"), None, b"\0\0\0\x18ftypisom"), Ok(Audio));
        assert_eq!(kind_for(Some("audio"), Some("audio/x-raw; rate=8000"), b"\x01\x02"), Ok(Audio));
        assert!(matches!(
            kind_for(Some("audio"), Some("text/plain"), b"\x01\x02"),
            Err(MediaError::Mismatch { .. })
        ));
        assert!(matches!(kind_for(Some("hologram"), None, PNG), Err(MediaError::UnknownType(_))));
        assert_eq!(kind_for(Some("sticker"), None, PNG), Ok(Sticker));
        assert!(matches!(kind_for(Some("voice"), None, b"ID3\x04"), Err(MediaError::VoiceFormat { .. })));
        assert_eq!(kind_for(Some("pdf"), None, b"%PDF-"), Ok(Document));
    }

    #[test]
    fn the_mime_type_comes_from_content_then_declaration_then_extension() {
        use MediaKind::*;
        assert_eq!(mime_for(Image, Some("text/plain"), None, PNG), "image/png");
        assert_eq!(mime_for(Audio, None, None, b"\0\0\0\x18ftypisom"), "audio/mp4");
        assert_eq!(mime_for(Document, Some("text/csv; charset=utf-8"), Some("a.txt"), b"a,b"), "text/csv");
        assert_eq!(mime_for(Document, Some("application/octet-stream"), Some("a.txt"), b"a"), "text/plain");
        assert_eq!(mime_for(Document, Some("not a type"), None, b"a"), OCTET);
        assert_eq!(mime_for(Document, Some("image/png"), None, b"not a png"), OCTET);
        assert_eq!(mime_for(Document, Some("image/png"), Some("notes.txt"), b"not a png"), "text/plain");
        assert_eq!(mime_for(Audio, Some("audio/x-raw"), None, b"\x01\x02"), "audio/x-raw");
    }

    #[test]
    fn sizes_are_capped_per_kind() {
        let c = config();
        assert_eq!(check_size(&c, MediaKind::Image, 100), Ok(()));
        assert_eq!(
            check_size(&c, MediaKind::Image, 101),
            Err(MediaError::TooLarge { kind: MediaKind::Image, max: 100 })
        );
        let opts = MediaOptions::parse(None, None, None).unwrap();
        assert_eq!(opts.read_cap(&c).1, c.max_video_bytes, "the largest cap");
        let opts = MediaOptions::parse(Some("image"), None, None).unwrap();
        assert_eq!(opts.read_cap(&c), (MediaKind::Image, 100));
        let big = [PNG, &[0u8; 100]].concat();
        assert_eq!(
            MediaOptions::parse(None, None, None).unwrap().build(big.clone(), None, None, &c).unwrap_err(),
            MediaError::TooLarge { kind: MediaKind::Image, max: 100 }
        );
        // The same bytes fit as a document.
        let doc =
            MediaOptions::parse(Some("document"), None, None).unwrap().build(big, None, None, &c).unwrap();
        assert_eq!(
            (doc.kind, doc.mime.as_str(), doc.filename.as_deref()),
            (MediaKind::Document, "image/png", Some("document.png"))
        );
    }

    #[test]
    fn base64_comes_plain_or_as_a_data_url() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), Decoded { bytes: b"hello".to_vec(), mime: None });
        assert_eq!(decode_base64(" aGVs\nbG8 ").unwrap().bytes, b"hello");
        assert_eq!(decode_base64("_-8").unwrap().bytes, vec![0xFF, 0xEF]);
        let d = decode_base64("data:image/png;base64,iVBORw0KGgo=").unwrap();
        assert_eq!((d.mime.as_deref(), &d.bytes[..4]), (Some("image/png"), &b"\x89PNG"[..]));
        assert!(matches!(decode_base64("data:text/plain,hello"), Err(MediaError::BadBase64(_))));
        assert!(matches!(decode_base64("not base64!"), Err(MediaError::BadBase64(_))));
        assert!(matches!(decode_base64("a"), Err(MediaError::BadBase64(_))));
        assert_eq!(decode_base64("  "), Err(MediaError::Empty));
    }

    #[test]
    fn filenames_are_sanitised() {
        assert_eq!(sanitize_filename("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(sanitize_filename("C:\\Users\\a\\report.pdf").as_deref(), Some("report.pdf"));
        assert_eq!(sanitize_filename(" in\u{0}voice\n.pdf ").as_deref(), Some("invoice.pdf"));
        assert_eq!(sanitize_filename("photo\u{202E}gnp.exe").as_deref(), Some("photognp.exe"));
        assert_eq!(sanitize_filename(".."), None);
        assert_eq!(sanitize_filename("dir/"), None);
        let long = format!("{}.pdf", "é".repeat(300));
        let s = sanitize_filename(&long).unwrap();
        assert!(s.len() <= MAX_FILENAME_BYTES && s.ends_with(".pdf"), "{s}");
        assert_eq!(
            filename_from_url("https://x.test/files/My%20Report.pdf?x=1").as_deref(),
            Some("My Report.pdf")
        );
        assert_eq!(filename_from_url("https://x.test/"), None);
    }

    #[test]
    fn captions_are_limited() {
        assert_eq!(check_caption(Some("hi".into())), Ok(Some("hi".into())));
        assert_eq!(check_caption(Some("  ".into())), Ok(None));
        assert_eq!(
            check_caption(Some("é".repeat(MAX_CAPTION_CHARS))).unwrap().map(|c| c.chars().count()),
            Some(1024)
        );
        assert_eq!(
            check_caption(Some("x".repeat(MAX_CAPTION_CHARS + 1))),
            Err(MediaError::CaptionTooLong { max: MAX_CAPTION_CHARS })
        );
    }

    proptest! {
        #[test]
        fn sniffing_and_kinds_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256),
                                         prefix in prop::sample::select(vec![&b""[..], b"PK\x03\x04", b"\0\0\0\x18ftyp", b"\xFF", b"RIFF", b"data:"]),
                                         ty in proptest::option::of("[a-z ]{0,8}"), mime in proptest::option::of(".{0,20}")) {
            let bytes = [prefix, &bytes[..]].concat();
            let _ = sniff(&bytes);
            if let Ok(kind) = kind_for(ty.as_deref(), mime.as_deref(), &bytes) {
                let _ = mime_for(kind, mime.as_deref(), ty.as_deref(), &bytes);
            }
            let _ = decode_base64(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn sanitised_filenames_are_safe(raw in ".{0,400}") {
            if let Some(name) = sanitize_filename(&raw) {
                prop_assert!(!name.is_empty() && name.len() <= MAX_FILENAME_BYTES);
                prop_assert!(!name.contains(['/', '\\']) && !name.chars().any(char::is_control));
            }
        }
    }
}
