//! Decoding photos (any common format, with limits so a hostile header cannot make us allocate
//! gigabytes), downscaling huge ones, and the bilinear squash to a network's square input.
//! ConvLens squashes (no crop): the whole photo is seen, at the cost of its aspect ratio.

use burn::tensor::{Device, Tensor, TensorData};
use image::{imageops::FilterType, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// An RGB photo, 8 bits per channel.
pub type Photo = RgbImage;

/// Largest photo we decode: 100 megapixels (a 50 MP camera photo is fine; a forged header is not).
const MAX_PIXELS: u64 = 100_000_000;
/// Longest side kept after decoding: enough for a sharp overlay, small enough to stay quick.
pub const MAX_SIDE: u32 = 2048;

/// Decodes any common image format (JPEG, PNG, WebP, GIF, BMP) to RGB, downscaling photos whose
/// longest side exceeds `MAX_SIDE`.
pub fn decode(bytes: &[u8]) -> Result<Photo> {
    let reader = ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| Error::image_from("cannot inspect the file", e))?;
    if reader.format().is_none() {
        return Err(Error::image("not an image file (expected JPEG, PNG, WebP, GIF or BMP)"));
    }
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(Error::image("the JPEG file is truncated (it has no end-of-image marker)"));
    }
    let mut reader = reader;
    reader.limits(decode_limits());
    let (w, h) = reader.into_dimensions().map_err(|e| Error::image_from("cannot read its size", e))?;
    if w == 0 || h == 0 {
        return Err(Error::image("the image is empty"));
    }
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(Error::image(format!(
            "the image is {w}×{h} ({:.0} megapixels); ConvLens reads up to {} megapixels: downscale it first",
            w as f64 * h as f64 / 1e6,
            MAX_PIXELS / 1_000_000
        )));
    }
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| Error::image_from("cannot inspect the file", e))?;
    reader.limits(decode_limits());
    let image = reader.decode().map_err(|e| Error::image_from("cannot decode it", e))?.into_rgb8();
    Ok(fit_within(image, MAX_SIDE))
}

/// JPEG decoders fill a truncated file with gray and carry on; we would rather say so. Walks the
/// marker segments to the first scan (skipping EXIF thumbnails, which carry their own end marker),
/// then looks for the end-of-image marker: inside entropy-coded data 0xFF is always stuffed, so
/// FF D9 appears only at the real end (data appended after it, as in motion photos, is fine).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return false;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        let length = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if marker == 0xDA {
            return bytes[i + 2 + length.min(bytes.len() - i - 2)..].windows(2).any(|w| w == [0xFF, 0xD9]);
        }
        i += 2 + length;
    }
    false
}

/// Allocation cap for decoding: the largest accepted photo as RGBA plus decoder scratch space.
fn decode_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 4 + (64 << 20));
    limits
}

/// Downscales (keeping the aspect ratio) so the longest side is at most `max_side`.
pub fn fit_within(photo: Photo, max_side: u32) -> Photo {
    let (w, h) = photo.dimensions();
    if w.max(h) <= max_side {
        return photo;
    }
    let scale = max_side as f64 / w.max(h) as f64;
    let (nw, nh) = (((w as f64 * scale).round() as u32).max(1), ((h as f64 * scale).round() as u32).max(1));
    image::imageops::resize(&photo, nw, nh, FilterType::Triangle)
}

/// Bilinear squash to [height, width] (no crop). A photo already that size is returned untouched.
pub fn squash(photo: &Photo, [height, width]: [usize; 2]) -> Photo {
    let (w, h) = (width as u32, height as u32);
    if photo.dimensions() == (w, h) {
        return photo.clone();
    }
    image::imageops::resize(photo, w, h, FilterType::Triangle)
}

/// Photos of equal size -> [N, 3, H, W] RGB pixel values 0–255 as f32.
pub fn to_pixels(photos: &[Photo], device: &Device) -> Result<Tensor<4>> {
    let (w, h) = photos.first().map(|p| p.dimensions()).ok_or_else(|| Error::invalid("no photo given"))?;
    if photos.iter().any(|p| p.dimensions() != (w, h)) {
        return Err(Error::invalid("photos in one batch must have the same size"));
    }
    let data: Vec<f32> = photos.iter().flat_map(planes).collect();
    Ok(Tensor::from_data(TensorData::new(data, [photos.len(), 3, h as usize, w as usize]), device))
}

/// A photo's pixels 0–255 as f32, channel-major [3][H·W].
pub fn planes(photo: &Photo) -> Vec<f32> {
    let plane = (photo.width() * photo.height()) as usize;
    let mut data = vec![0f32; 3 * plane];
    for (i, px) in photo.pixels().enumerate() {
        for c in 0..3 {
            data[c * plane + i] = px[c] as f32;
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_text() {
        let err = decode(b"hello, I am not a picture").unwrap_err().to_string();
        assert!(err.contains("not an image"), "{err}");
    }

    #[test]
    fn truncated_jpeg_is_detected() {
        let photo = Photo::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
        let mut jpeg = Vec::new();
        photo.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
        assert!(jpeg_is_complete(&jpeg));
        assert_eq!(decode(&jpeg).unwrap().dimensions(), (64, 48));
        let err = decode(&jpeg[..jpeg.len() - 40]).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn squash_keeps_same_size_untouched() {
        let p = Photo::from_fn(7, 7, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 5]));
        assert_eq!(squash(&p, [7, 7]), p);
        assert_eq!(squash(&p, [3, 5]).dimensions(), (5, 3));
    }

    #[test]
    fn fit_within_keeps_aspect() {
        let p = Photo::new(4000, 1000);
        assert_eq!(fit_within(p, 2048).dimensions(), (2048, 512));
    }
}
