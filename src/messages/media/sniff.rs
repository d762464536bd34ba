//! What media bytes are: the kind and MIME type from their signatures (magic numbers), and
//! MIME types from and to file extensions.

use crate::devices::driver::MediaKind;

pub(super) const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
pub(super) const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
pub(super) const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";
pub(super) const ZIP: &str = "application/zip";
pub(super) const OLE: &str = "application/x-ole-storage";
pub(super) const OCTET: &str = "application/octet-stream";

/// Known extensions and their MIME types; the first extension of a type is its default.
pub(super) const EXTENSIONS: &[(&str, &str)] = &[
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("heic", "image/heic"),
    ("avif", "image/avif"),
    ("mp4", "video/mp4"),
    ("3gp", "video/3gpp"),
    ("mov", "video/quicktime"),
    ("webm", "video/webm"),
    ("mkv", "video/x-matroska"),
    ("mp3", "audio/mpeg"),
    ("m4a", "audio/mp4"),
    ("aac", "audio/aac"),
    ("ogg", "audio/ogg"),
    ("opus", "audio/ogg; codecs=opus"),
    ("wav", "audio/wav"),
    ("amr", "audio/amr"),
    ("pdf", "application/pdf"),
    ("docx", DOCX),
    ("xlsx", XLSX),
    ("pptx", PPTX),
    ("doc", "application/msword"),
    ("xls", "application/vnd.ms-excel"),
    ("ppt", "application/vnd.ms-powerpoint"),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("ods", "application/vnd.oasis.opendocument.spreadsheet"),
    ("odp", "application/vnd.oasis.opendocument.presentation"),
    ("epub", "application/epub+zip"),
    ("apk", "application/vnd.android.package-archive"),
    ("zip", ZIP),
    ("rar", "application/vnd.rar"),
    ("7z", "application/x-7z-compressed"),
    ("gz", "application/gzip"),
    ("txt", "text/plain"),
    ("csv", "text/csv"),
    ("json", "application/json"),
    ("xml", "application/xml"),
    ("rtf", "application/rtf"),
];

/// Extensions a ZIP or an OLE2 container may really be.
pub(super) const ZIP_FAMILY: &[&str] = &["docx", "xlsx", "pptx", "odt", "ods", "odp", "epub", "apk", "zip"];
pub(super) const OLE_FAMILY: &[&str] = &["doc", "xls", "ppt"];

pub(super) fn at(bytes: &[u8], offset: usize, signature: &[u8]) -> bool {
    bytes.get(offset..offset + signature.len()) == Some(signature)
}

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The kind and MIME type the content's signature says, or `None` when it is not recognised
/// (callers then send it as a document).
pub fn sniff(bytes: &[u8]) -> Option<(MediaKind, &'static str)> {
    use MediaKind::{Audio, Document, Image, Video};
    let head = &bytes[..bytes.len().min(64)];
    let found = if at(bytes, 0, b"\xFF\xD8\xFF") {
        (Image, "image/jpeg")
    } else if at(bytes, 0, b"\x89PNG\r\n\x1a\n") {
        (Image, "image/png")
    } else if at(bytes, 0, b"GIF87a") || at(bytes, 0, b"GIF89a") {
        (Image, "image/gif")
    } else if at(bytes, 0, b"RIFF") && at(bytes, 8, b"WEBP") {
        (Image, "image/webp")
    } else if at(bytes, 0, b"RIFF") && at(bytes, 8, b"WAVE") {
        (Audio, "audio/wav")
    } else if at(bytes, 4, b"ftyp") {
        match bytes.get(8..12).unwrap_or_default() {
            b"M4A " | b"M4B " | b"M4P " => (Audio, "audio/mp4"),
            b"qt  " => (Video, "video/quicktime"),
            b"heic" | b"heix" | b"mif1" | b"msf1" => (Document, "image/heic"),
            b"avif" | b"avis" => (Document, "image/avif"),
            brand if brand.starts_with(b"3g") => (Video, "video/3gpp"),
            _ => (Video, "video/mp4"),
        }
    } else if at(bytes, 0, b"\x1A\x45\xDF\xA3") {
        if contains(head, b"webm") {
            (Video, "video/webm")
        } else {
            (Video, "video/x-matroska")
        }
    } else if at(bytes, 0, b"OggS") {
        if contains(head, b"OpusHead") {
            (Audio, "audio/ogg; codecs=opus")
        } else {
            (Audio, "audio/ogg")
        }
    } else if at(bytes, 0, b"ID3") {
        (Audio, "audio/mpeg")
    } else if at(bytes, 0, b"#!AMR-WB\n") {
        (Audio, "audio/amr-wb")
    } else if at(bytes, 0, b"#!AMR\n") {
        (Audio, "audio/amr")
    } else if at(bytes, 0, b"%PDF-") {
        (Document, "application/pdf")
    } else if at(bytes, 0, b"PK\x03\x04") || at(bytes, 0, b"PK\x05\x06") {
        (Document, zip_mime(bytes))
    } else if at(bytes, 0, b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        (Document, OLE)
    } else if at(bytes, 0, b"Rar!\x1A\x07") {
        (Document, "application/vnd.rar")
    } else if at(bytes, 0, b"7z\xBC\xAF\x27\x1C") {
        (Document, "application/x-7z-compressed")
    } else if at(bytes, 0, b"\x1F\x8B") {
        (Document, "application/gzip")
    } else {
        return mpeg_audio_frame(bytes);
    };
    Some(found)
}

/// An MP3 (MPEG audio) or AAC (ADTS) stream without an ID3 tag starts with a frame header.
pub(super) fn mpeg_audio_frame(bytes: &[u8]) -> Option<(MediaKind, &'static str)> {
    let [b0, b1, b2, ..] = *bytes else { return None };
    if b0 != 0xFF || b1 & 0xE0 != 0xE0 {
        return None;
    }
    let version = (b1 >> 3) & 0b11;
    let layer = (b1 >> 1) & 0b11;
    let bitrate = b2 >> 4;
    let rate = (b2 >> 2) & 0b11;
    if layer == 0 {
        // ADTS: MPEG-4 AAC; a sampling-frequency index of 13 and up is reserved.
        return (b1 & 0xF6 == 0xF0 && (b2 >> 2) & 0x0F < 13).then_some((MediaKind::Audio, "audio/aac"));
    }
    (version != 0b01 && bitrate != 0x0F && rate != 0b11).then_some((MediaKind::Audio, "audio/mpeg"))
}

/// Names of the ZIP entries whose local headers start in the first 8 KiB.
pub(super) fn zip_entry_names(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let window = &bytes[..bytes.len().min(8192)];
    (0..window.len().saturating_sub(30)).filter(|&i| at(window, i, b"PK\x03\x04")).filter_map(move |i| {
        let len = usize::from(u16::from_le_bytes([*bytes.get(i + 26)?, *bytes.get(i + 27)?]));
        bytes.get(i + 30..i + 30 + len)
    })
}

/// Office Open XML and OpenDocument files are ZIP archives; tell them apart by their entries.
pub(super) fn zip_mime(bytes: &[u8]) -> &'static str {
    // OpenDocument stores an uncompressed `mimetype` entry first, its content right after.
    if at(bytes, 30, b"mimetype") {
        for (_, mime) in EXTENSIONS.iter().filter(|(ext, _)| matches!(*ext, "odt" | "ods" | "odp" | "epub")) {
            if at(bytes, 38, mime.as_bytes()) {
                return mime;
            }
        }
    }
    for name in zip_entry_names(bytes) {
        if name.starts_with(b"word/") {
            return DOCX;
        } else if name.starts_with(b"xl/") {
            return XLSX;
        } else if name.starts_with(b"ppt/") {
            return PPTX;
        }
    }
    ZIP
}

/// The essence (`type/subtype`, lower case) of a declared MIME type, when well formed and
/// more specific than "some bytes".
pub(super) fn clean_mime(raw: &str) -> Option<String> {
    let essence = raw.split(';').next()?.trim().to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let (top, sub) = essence.split_once('/')?;
    let generic = matches!(essence.as_str(), OCTET | "binary/octet-stream" | "application/unknown");
    (token(top) && token(sub) && !generic).then_some(essence)
}

pub(super) fn extension(filename: &str) -> Option<String> {
    let (stem, ext) = filename.rsplit_once('.')?;
    (!stem.is_empty()).then(|| ext.to_ascii_lowercase())
}

pub(super) fn mime_of_extension(ext: &str) -> Option<&'static str> {
    EXTENSIONS.iter().find(|(e, _)| *e == ext).map(|(_, m)| *m)
}

pub(super) fn extension_of_mime(mime: &str) -> Option<&'static str> {
    EXTENSIONS.iter().find(|(_, m)| *m == mime).map(|(e, _)| *e)
}

pub(super) fn describe(sniffed: Option<(MediaKind, &'static str)>) -> String {
    match sniffed {
        Some((_, mime)) => mime.to_string(),
        None => "unrecognised data".into(),
    }
}
