//! QR codes of an otpauth URI: for a terminal (Unicode half blocks, plain or with ANSI
//! colours; the module sends the same text through the PAM conversation), and as PNG or
//! SVG images.

#![forbid(unsafe_code)]

use std::fmt::{self, Write as _};

use clap::ValueEnum;
use qrcode::{Color, EcLevel, QrCode};
use zeroize::Zeroizing;

/// The text does not fit in a QR code, or the image could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrError(String);

impl fmt::Display for QrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QR code: {}", self.0)
    }
}

impl std::error::Error for QrError {}

/// How to draw the code in the terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TerminalQr {
    /// Unicode half blocks in the terminal's own colours (light text on a dark
    /// background reads as dark modules on a light field).
    Utf8,
    /// Half blocks with explicit black and white ANSI colours: readable on any theme.
    Ansi,
    /// No QR code in the terminal.
    None,
}

/// The modules of a QR code, dark or light, row by row, with no quiet zone.
pub struct Modules {
    width: usize,
    dark: Vec<bool>,
}

impl Modules {
    pub fn encode(text: &str) -> Result<Modules, QrError> {
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
            .map_err(|e| QrError(e.to_string()))?;
        let width = code.width();
        let dark = code
            .to_colors()
            .into_iter()
            .map(|c| c == Color::Dark)
            .collect();
        Ok(Modules { width, dark })
    }

    /// Whether the module at (x, y) is dark; outside the code (the quiet zone) is light.
    fn is_dark(&self, x: isize, y: isize) -> bool {
        let inside = |v: isize| v >= 0 && (v as usize) < self.width;
        inside(x) && inside(y) && self.dark[y as usize * self.width + x as usize]
    }

    /// The code as terminal lines, two module rows per line, with a quiet zone of
    /// `quiet` modules.
    pub fn terminal(&self, style: TerminalQr, quiet: usize) -> String {
        let q = quiet as isize;
        let size = self.width as isize;
        let mut out = String::new();
        let mut y = -q;
        while y < size + q {
            for x in -q..size + q {
                let top = self.is_dark(x, y);
                let bottom = self.is_dark(x, y + 1);
                match style {
                    // Draw the light modules with the foreground colour.
                    TerminalQr::Utf8 => out.push(match (top, bottom) {
                        (false, false) => '█',
                        (false, true) => '▀',
                        (true, false) => '▄',
                        (true, true) => ' ',
                    }),
                    TerminalQr::Ansi => {
                        let fg = if top { 30 } else { 97 };
                        let bg = if bottom { 40 } else { 107 };
                        let _ = write!(out, "\x1b[{fg};{bg}m▀");
                    }
                    TerminalQr::None => {}
                }
            }
            if style == TerminalQr::Ansi {
                out.push_str("\x1b[0m");
            }
            out.push('\n');
            y += 2;
        }
        out
    }

    /// A grayscale PNG, `scale` pixels per module, quiet zone of four modules.
    pub fn png(&self, scale: usize) -> Result<Zeroizing<Vec<u8>>, QrError> {
        let side = (self.width + 8) * scale;
        let mut pixels = Zeroizing::new(Vec::with_capacity(side * side));
        for py in 0..side {
            for px in 0..side {
                let x = (px / scale) as isize - 4;
                let y = (py / scale) as isize - 4;
                pixels.push(if self.is_dark(x, y) { 0 } else { 255 });
            }
        }
        let mut file = Zeroizing::new(Vec::with_capacity(side * side / 4 + 1024));
        {
            let side = u32::try_from(side).map_err(|_| QrError("too large".into()))?;
            let mut encoder = png::Encoder::new(&mut *file, side, side);
            encoder.set_color(png::ColorType::Grayscale);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder
                .write_header()
                .map_err(|e| QrError(format!("cannot encode the PNG: {e}")))?;
            writer
                .write_image_data(&pixels)
                .map_err(|e| QrError(format!("cannot encode the PNG: {e}")))?;
        }
        Ok(file)
    }

    /// An SVG document: a white field and one black square per dark module.
    pub fn svg(&self) -> Zeroizing<String> {
        let side = self.width + 8;
        let mut svg = Zeroizing::new(String::with_capacity(
            64 * self.width * self.width / 2 + 512,
        ));
        let _ = write!(
            svg,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
             viewBox=\"0 0 {side} {side}\" width=\"{px}\" height=\"{px}\" shape-rendering=\"crispEdges\">\n\
             <rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/>\n<path fill=\"#000\" d=\"",
            px = side * 8
        );
        for y in 0..self.width {
            for x in 0..self.width {
                if self.dark[y * self.width + x] {
                    let _ = write!(svg, "M{} {}h1v1h-1z", x + 4, y + 4);
                }
            }
        }
        svg.push_str("\"/>\n</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_rendering_has_a_quiet_zone_and_two_rows_per_line() {
        let modules = Modules::encode("otpauth://totp/x:y?secret=JBSWY3DPEHPK3PXP").unwrap();
        let text = modules.terminal(TerminalQr::Utf8, 2);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), (modules.width + 4).div_ceil(2));
        assert!(lines.iter().all(|l| l.chars().count() == modules.width + 4));
        assert!(lines[0].chars().all(|c| c == '█'), "quiet zone is light");
        assert_eq!(modules.terminal(TerminalQr::None, 2).trim(), "");
    }

    #[test]
    fn svg_and_png_are_well_formed() {
        let modules = Modules::encode("otpauth://totp/x:y?secret=JBSWY3DPEHPK3PXP").unwrap();
        let svg = modules.svg();
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
        let png = modules.png(4).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
