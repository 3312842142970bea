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
}
