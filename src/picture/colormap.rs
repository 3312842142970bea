//! Colormaps from a value in [0, 1] to RGB. Viridis and magma are matplotlib's maps sampled at 33
//! points and interpolated (within 3/255 of matplotlib's 256-entry tables); JET is OpenCV's
//! `COLORMAP_JET` piecewise-linear ramp, as the book's overlay uses.

use crate::choice::{self, ValueEnum};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Colormap {
    Viridis,
    Magma,
    Jet,
    Gray,
}

/// matplotlib's viridis sampled at 33 evenly spaced points (matplotlib 3.11), interpolated linearly.
const VIRIDIS: [[u8; 3]; 33] = [
    [68, 1, 84],
    [71, 13, 96],
    [72, 24, 106],
    [72, 35, 116],
    [71, 45, 123],
    [69, 55, 129],
    [66, 64, 134],
    [62, 73, 137],
    [59, 82, 139],
    [55, 91, 141],
    [51, 99, 141],
    [47, 107, 142],
    [44, 114, 142],
    [41, 122, 142],
    [38, 130, 142],
    [35, 137, 142],
    [33, 145, 140],
    [31, 152, 139],
    [31, 160, 136],
    [34, 167, 133],
    [40, 174, 128],
    [50, 182, 122],
    [63, 188, 115],
    [78, 195, 107],
    [94, 201, 98],
    [112, 207, 87],
    [132, 212, 75],
    [152, 216, 62],
    [173, 220, 48],
    [194, 223, 35],
    [216, 226, 25],
    [236, 229, 27],
    [253, 231, 37],
];

/// matplotlib's magma sampled at 33 evenly spaced points (matplotlib 3.11), interpolated linearly.
const MAGMA: [[u8; 3]; 33] = [
    [0, 0, 4],
    [3, 3, 18],
    [10, 8, 34],
    [19, 13, 52],
    [29, 17, 71],
    [41, 17, 90],
    [54, 16, 107],
    [68, 15, 118],
    [81, 18, 124],
    [93, 23, 127],
    [106, 28, 129],
    [118, 33, 129],
    [131, 38, 129],
    [144, 42, 129],
    [156, 46, 127],
    [170, 51, 125],
    [183, 55, 121],
    [196, 60, 117],
    [208, 65, 111],
    [220, 72, 105],
    [231, 82, 99],
    [239, 93, 94],
    [245, 107, 92],
    [249, 121, 93],
    [252, 137, 97],
    [253, 152, 105],
    [254, 167, 114],
    [254, 182, 124],
    [254, 196, 136],
    [254, 211, 149],
    [253, 226, 163],
    [252, 240, 178],
    [252, 253, 191],
];

impl Colormap {
    pub fn parse(name: &str) -> Result<Self> {
        choice::parse("colormap", name)
    }

    /// RGB for `t` in [0, 1] (clamped; NaN maps to 0).
    /// The colour of every 8-bit level (level / 255): one lookup per pixel when drawing many.
    pub fn levels(self) -> [[u8; 3]; 256] {
        std::array::from_fn(|level| self.rgb(level as f32 / 255.0))
    }

    pub fn rgb(self, t: f32) -> [u8; 3] {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let rgb = match self {
            Self::Viridis => return sampled(&VIRIDIS, t),
            Self::Magma => return sampled(&MAGMA, t),
            Self::Jet => {
                let ramp = |center: f32| (1.5 - (4.0 * t - center).abs()).clamp(0.0, 1.0);
                [ramp(3.0), ramp(2.0), ramp(1.0)]
            }
            Self::Gray => [t; 3],
        };
        rgb.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
    }
}

fn sampled(table: &[[u8; 3]; 33], t: f32) -> [u8; 3] {
    let x = t * 32.0;
    let i = (x as usize).min(31);
    let f = x - i as f32;
    [0, 1, 2].map(|k| (table[i][k] as f32 * (1.0 - f) + table[i + 1][k] as f32 * f).round() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [u8; 3], b: [u8; 3]) -> bool {
        a.iter().zip(b).all(|(x, y)| (*x as i32 - y as i32).abs() <= 4)
    }

    #[test]
    fn endpoints_match_matplotlib_and_opencv() {
        assert!(close(Colormap::Viridis.rgb(0.0), [68, 1, 84]), "{:?}", Colormap::Viridis.rgb(0.0));
        assert!(close(Colormap::Viridis.rgb(1.0), [253, 231, 37]), "{:?}", Colormap::Viridis.rgb(1.0));
        assert!(close(Colormap::Magma.rgb(0.0), [0, 0, 4]));
        assert!(close(Colormap::Magma.rgb(1.0), [252, 253, 191]), "{:?}", Colormap::Magma.rgb(1.0));
        assert_eq!(Colormap::Jet.rgb(0.0), [0, 0, 128]);
        assert_eq!(Colormap::Jet.rgb(1.0), [128, 0, 0]);
        assert_eq!(Colormap::Jet.rgb(0.5), [128, 255, 128]);
        assert_eq!(Colormap::Gray.rgb(f32::NAN), [0, 0, 0]);
    }
}
