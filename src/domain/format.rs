//! The image formats this server reads and writes, told apart by their bytes.

/// Why [`Format::sniff`] found no format of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrecognised {
    /// A known image format this server does not read (`tiff`, `bmp`, ...).
    Unsupported(&'static str),
    /// Not an image format we know of.
    NotAnImage,
}

/// The image formats this server reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    Webp,
}

impl Format {
    /// Identifies a format by its magic bytes (never by a file name).
    pub fn sniff(bytes: &[u8]) -> Result<Format, Unrecognised> {
        match bytes {
            [0xFF, 0xD8, 0xFF, ..] => Ok(Format::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Ok(Format::Png),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Ok(Format::Gif),
            [
                b'R',
                b'I',
                b'F',
                b'F',
                _,
                _,
                _,
                _,
                b'W',
                b'E',
                b'B',
                b'P',
                ..,
            ] => Ok(Format::Webp),
            [b'I', b'I', 0x2A, 0x00, ..] | [b'M', b'M', 0x00, 0x2A, ..] => {
                Err(Unrecognised::Unsupported("tiff"))
            }
            [b'B', b'M', ..] => Err(Unrecognised::Unsupported("bmp")),
            [_, _, _, _, b'f', b't', b'y', b'p', ..] => Err(Unrecognised::Unsupported("avif/heif")),
            [0x00, 0x00, 0x01, 0x00, ..] => Err(Unrecognised::Unsupported("ico")),
            _ => Err(Unrecognised::NotAnImage),
        }
    }

    /// The format a variant of this format is written in: GIF becomes PNG (of the first frame),
    /// everything else keeps its format.
    pub fn output(self) -> Format {
        match self {
            Format::Gif => Format::Png,
            other => other,
        }
    }

    /// File extension, without the dot.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Webp => "webp",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Gif => "image/gif",
            Format::Webp => "image/webp",
        }
    }

    /// The format for a file extension (`jpg`, `jpeg`, `png`, `gif`, `webp`).
    pub fn from_ext(ext: &str) -> Option<Format> {
        match ext.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" => Some(Format::Jpeg),
            "png" => Some(Format::Png),
            "gif" => Some(Format::Gif),
            "webp" => Some(Format::Webp),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert_eq!(
            Format::sniff(b"\xFF\xD8\xFF\xE0rest").unwrap(),
            Format::Jpeg
        );
        assert_eq!(
            Format::sniff(b"\x89PNG\r\n\x1a\n....").unwrap(),
            Format::Png
        );
        assert_eq!(Format::sniff(b"GIF89a....").unwrap(), Format::Gif);
        assert_eq!(
            Format::sniff(b"RIFF\0\0\0\0WEBPVP8 ").unwrap(),
            Format::Webp
        );
        assert!(matches!(Format::sniff(b""), Err(Unrecognised::NotAnImage)));
        assert!(matches!(
            Format::sniff(b"<!DOCTYPE html>"),
            Err(Unrecognised::NotAnImage)
        ));
        assert!(matches!(
            Format::sniff(b"II*\0rest"),
            Err(Unrecognised::Unsupported("tiff"))
        ));
    }
}
