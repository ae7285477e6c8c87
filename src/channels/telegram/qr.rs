//! The login QR: `tg://login?token=<base64url>` and its PNG rendering. Pure; no IO.

use base64::Engine as _;
use qrcode::{Color, EcLevel, QrCode};

/// Pixels per QR module: 8 gives a ~330 px image for a login URL, easy to scan.
const SCALE: usize = 8;
/// The quiet zone the QR standard asks for, in modules.
const QUIET: usize = 4;

/// The URL Telegram apps accept for QR login: base64url without padding.
pub fn login_url(token: &[u8]) -> String {
    format!("tg://login?token={}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token))
}

/// Renders `text` as a black-on-white grayscale PNG.
pub fn render_png(text: &str) -> Result<Vec<u8>, String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|e| e.to_string())?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (idx, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (idx % modules + QUIET, idx / modules + QUIET);
        for y in my * SCALE..(my + 1) * SCALE {
            pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    {
        let side = u32::try_from(side).map_err(|e| e.to_string())?;
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(&pixels).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_url_is_base64url_without_padding() {
        assert_eq!(login_url(&[0xfb, 0xff, 0xfe, 0x01, 0x02, 0x03]), "tg://login?token=-__-AQID");
        assert_eq!(login_url(&[0xff]), "tg://login?token=_w");
    }

    #[test]
    fn rendered_png_starts_with_the_png_signature() {
        let png = render_png("tg://login?token=AAAA").unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
