//! Renders pairing QR codes for the dashboard and the API: SVG for pages, PNG for clients that
//! want an image file.
//!
//! Both come from the same `qrcode` module matrix with a four-module quiet zone (the margin
//! scanners need), dark modules on white.

use qrcode::render::svg;
use qrcode::{Color, QrCode};

/// The code drawn with Unicode half blocks, for terminals (`wa-gateway device qr`).
pub fn terminal(data: &str) -> Result<String, QrError> {
    Ok(encode(data)?
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// Modules of white margin around the code, as the QR standard asks.
const QUIET_ZONE: usize = 4;
/// Pixels per module in the SVG's nominal size (it scales without loss anyway).
const SVG_MODULE_PX: u32 = 8;
/// The largest PNG scale accepted, so a request cannot ask for a huge image.
pub const MAX_PNG_SCALE: u32 = 32;

/// Why a QR code could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The data does not fit in a QR code (too long).
    #[error("cannot encode the data as a QR code: {0}")]
    Encode(String),
    /// The PNG scale is outside `1..=MAX_PNG_SCALE`.
    #[error("the PNG scale must be between 1 and {MAX_PNG_SCALE}, got {0}")]
    Scale(u32),
    /// The PNG encoder failed.
    #[error("cannot write the PNG: {0}")]
    Png(String),
}

fn encode(data: &str) -> Result<QrCode, QrError> {
    QrCode::new(data.as_bytes()).map_err(|e| QrError::Encode(e.to_string()))
}

/// A standalone SVG document (`<svg xmlns=…>…</svg>`, no XML prolog, so it can also be inlined
/// in HTML) showing `data` as a QR code with a quiet zone.
pub fn svg(data: &str) -> Result<String, QrError> {
    let code = encode(data)?;
    let doc = code
        .render::<svg::Color>()
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .quiet_zone(true)
        .module_dimensions(SVG_MODULE_PX, SVG_MODULE_PX)
        .build();
    Ok(match doc.find("<svg") {
        Some(start) => doc[start..].to_string(),
        None => doc,
    })
}

/// An 8-bit grayscale PNG of `data` as a QR code, `scale` pixels per module (1 to
/// [`MAX_PNG_SCALE`]), with a four-module quiet zone on every side.
pub fn png(data: &str, scale: u32) -> Result<Vec<u8>, QrError> {
    if scale == 0 || scale > MAX_PNG_SCALE {
        return Err(QrError::Scale(scale));
    }
    let code = encode(data)?;
    let modules = code.width();
    let colors = code.to_colors();
    let scale = scale as usize;
    let side_modules = modules + 2 * QUIET_ZONE;
    let side = side_modules * scale;

    // One row of pixels per module row, repeated `scale` times.
    let mut pixels = Vec::with_capacity(side * side);
    for my in 0..side_modules {
        let mut row = Vec::with_capacity(side);
        for mx in 0..side_modules {
            let dark = mx >= QUIET_ZONE
                && my >= QUIET_ZONE
                && mx < QUIET_ZONE + modules
                && my < QUIET_ZONE + modules
                && colors[(my - QUIET_ZONE) * modules + (mx - QUIET_ZONE)] == Color::Dark;
            let value = if dark { 0u8 } else { 255u8 };
            row.extend(std::iter::repeat_n(value, scale));
        }
        for _ in 0..scale {
            pixels.extend_from_slice(&row);
        }
    }

    let side = u32::try_from(side).map_err(|_| QrError::Png("image too large".into()))?;
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| QrError::Png(e.to_string()))?;
        writer.write_image_data(&pixels).map_err(|e| QrError::Png(e.to_string()))?;
        writer.finish().map_err(|e| QrError::Png(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAIRING: &str = "2@AbCdEf0123456789,bm9pc2Uta2V5LWJhc2U2NA==,aWRlbnRpdHk=,YWR2LXNlY3JldA==,1";

    fn decode(bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("png frame");
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    #[test]
    fn the_png_decodes_to_the_module_count_plus_quiet_zone_times_scale() {
        let modules = QrCode::new(PAIRING.as_bytes()).unwrap().width() as u32;
        let bytes = png(PAIRING, 4).unwrap();
        assert!(bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]));
        let (info, pixels) = decode(&bytes);
        let side = (modules + 8) * 4;
        assert_eq!((info.width, info.height), (side, side));
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        // The quiet zone is white; the finder pattern's corner module is dark.
        assert_eq!(pixels[0], 255);
        let corner = (4 * 4 * side + 4 * 4) as usize;
        assert_eq!(pixels[corner], 0);
        assert!(pixels.iter().all(|&p| p == 0 || p == 255));
    }

    #[test]
    fn the_svg_is_a_standalone_document_with_dark_modules_on_white() {
        let doc = svg(PAIRING).unwrap();
        assert!(doc.starts_with("<svg"), "{}", &doc[..40]);
        assert!(doc.contains("xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(doc.contains("fill=\"#ffffff\"") && doc.contains("fill=\"#000000\""));
        assert!(doc.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn a_bad_scale_or_oversized_data_is_an_error_not_a_panic() {
        assert!(matches!(png("x", 0), Err(QrError::Scale(0))));
        assert!(matches!(png("x", 1000), Err(QrError::Scale(1000))));
        let huge = "x".repeat(10_000);
        assert!(matches!(svg(&huge), Err(QrError::Encode(_))));
        assert!(matches!(png(&huge, 2), Err(QrError::Encode(_))));
        assert!(png("", 1).is_ok());
    }
}
