//! RGBA canvases: tiling many small pictures into one grid (the book's channel and filter grids),
//! blending a heatmap over a photo, and PNG encoding.

use image::{ImageEncoder, RgbImage};

use crate::error::{Error, Result};

/// An RGBA picture, row-major, 4 bytes per pixel: what the page draws and the CLI saves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgba {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Rgba {
    pub fn filled(width: usize, height: usize, rgb: [u8; 3]) -> Self {
        let data = (0..width * height).flat_map(|_| [rgb[0], rgb[1], rgb[2], 255]).collect();
        Self { width, height, data }
    }

    /// From one byte per pixel through a colour function.
    pub fn from_fn(width: usize, height: usize, mut color: impl FnMut(usize, usize) -> [u8; 3]) -> Self {
        let mut data = Vec::with_capacity(width * height * 4);
        for y in 0..height {
            for x in 0..width {
                let [r, g, b] = color(x, y);
                data.extend_from_slice(&[r, g, b, 255]);
            }
        }
        Self { width, height, data }
    }

    /// From pixel levels held channel-major, [3][H·W] (as `photo::planes` lays them out), rounded
    /// and clamped to 0–255.
    pub fn from_planes(values: &[f32], width: usize, height: usize) -> Self {
        let plane = width * height;
        Self::from_fn(width, height, |x, y| [0, 1, 2].map(|c| values[c * plane + y * width + x].round() as u8))
    }

    pub fn from_rgb(photo: &RgbImage) -> Self {
        let (w, h) = photo.dimensions();
        Self { width: w as usize, height: h as usize, data: photo.pixels().flat_map(|p| [p[0], p[1], p[2], 255]).collect() }
    }

    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 4;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Copies `tile` with its top-left corner at (x, y).
    pub fn paste(&mut self, tile: &Rgba, x: usize, y: usize) {
        for row in 0..tile.height.min(self.height.saturating_sub(y)) {
            let width = tile.width.min(self.width.saturating_sub(x));
            let src = row * tile.width * 4;
            let dst = ((y + row) * self.width + x) * 4;
            self.data[dst..dst + width * 4].copy_from_slice(&tile.data[src..src + width * 4]);
        }
    }

    /// Encodes as PNG.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&self.data, self.width as u32, self.height as u32, image::ExtendedColorType::Rgba8)
            .map_err(|e| Error::image_from("PNG encoding failed", e))?;
        Ok(out)
    }
}

/// An animated GIF that loops: `frames` (all the size of the first) `frame_ms` apart, the last
/// held three times as long. Colours are quantized per frame (NeuQuant, speed 10).
pub fn animated_gif(frames: &[Rgba], frame_ms: u32) -> Result<Vec<u8>> {
    use image::codecs::gif::{GifEncoder, Repeat};
    use image::{Delay, Frame, RgbaImage};
    let first = frames.first().ok_or_else(|| Error::image("an animation needs at least one frame"))?;
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut out, 10);
        encoder.set_repeat(Repeat::Infinite).map_err(|e| Error::image_from("GIF encoding failed", e))?;
        for (i, frame) in frames.iter().enumerate() {
            if (frame.width, frame.height) != (first.width, first.height) {
                return Err(Error::image("the animation's frames differ in size"));
            }
            let picture = RgbaImage::from_raw(frame.width as u32, frame.height as u32, frame.data.clone())
                .ok_or_else(|| Error::image("a frame has the wrong number of pixels"))?;
            let ms = if i + 1 == frames.len() { frame_ms * 3 } else { frame_ms };
            encoder
                .encode_frame(Frame::from_parts(picture, 0, 0, Delay::from_numer_denom_ms(ms, 1)))
                .map_err(|e| Error::image_from("GIF encoding failed", e))?;
        }
    }
    Ok(out)
}

/// Tiles equally sized pictures `per_row` to a row, `margin` pixels apart (and around), on a
/// background colour. The book: 16 per row for channels; 8×8 with 5 px margins for filters.
pub fn tile(tiles: &[Rgba], per_row: usize, margin: usize, background: [u8; 3]) -> Rgba {
    let Some(first) = tiles.first() else { return Rgba::filled(1, 1, background) };
    let (tw, th) = (first.width, first.height);
    let cols = per_row.clamp(1, tiles.len());
    let rows = tiles.len().div_ceil(cols);
    let mut canvas = Rgba::filled(cols * tw + (cols + 1) * margin, rows * th + (rows + 1) * margin, background);
    for (i, t) in tiles.iter().enumerate() {
        let (r, c) = (i / cols, i % cols);
        canvas.paste(t, margin + c * (tw + margin), margin + r * (th + margin));
    }
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_places_each_tile() {
        let tiles: Vec<Rgba> = (0..5).map(|i| Rgba::filled(2, 2, [i * 10, 0, 0])).collect();
        let grid = tile(&tiles, 4, 1, [255, 255, 255]);
        assert_eq!((grid.width, grid.height), (4 * 2 + 5, 2 * 2 + 3));
        assert_eq!(grid.pixel(0, 0), [255, 255, 255]);
        assert_eq!(grid.pixel(1, 1), [0, 0, 0]);
        assert_eq!(grid.pixel(4, 1), [10, 0, 0]);
        assert_eq!(grid.pixel(1, 4), [40, 0, 0]);
        assert!(!grid.to_png().unwrap().is_empty());
    }

    #[test]
    fn animated_gif_keeps_every_frame_and_loops() {
        use image::AnimationDecoder;
        let frames: Vec<Rgba> = (0..3).map(|i| Rgba::filled(6, 4, [i * 100, 50, 200])).collect();
        let gif = animated_gif(&frames, 100).unwrap();
        let decoded = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&gif)).unwrap().into_frames().collect_frames().unwrap();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[2].delay().numer_denom_ms(), (300, 1));
        assert_eq!(decoded[1].buffer().get_pixel(2, 2).0[0], 100);
        assert!(animated_gif(&[], 100).is_err());
        assert!(animated_gif(&[frames[0].clone(), Rgba::filled(2, 2, [0; 3])], 100).is_err());
    }
}
