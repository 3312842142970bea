//! Colormaps from a value in [0, 1] to RGB. Viridis and magma use the published degree-6
//! polynomial fits of matplotlib's maps (max error under 1/255 per channel is not claimed, ~2/255
//! is typical); JET is OpenCV's `COLORMAP_JET` piecewise-linear ramp, as the book's overlay uses.

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colormap {
    Viridis,
    Magma,
    Jet,
    Gray,
}

const VIRIDIS: [[f32; 3]; 7] = [
    [0.277_727_33, 0.005_407_344_5, 0.334_099_8],
    [0.105_093_04, 1.404_613_5, 1.384_590_2],
    [-0.330_861_83, 0.214_847_56, 0.095_095_16],
    [-4.634_230_6, -5.799_101, -19.332_441],
    [6.228_27, 14.179_933, 56.690_55],
    [4.776_385, -13.745_145, -65.353_03],
    [-5.435_456, 4.645_852_6, 26.312_435],
];

const MAGMA: [[f32; 3]; 7] = [
    [-0.002_136_485, -0.000_749_655, -0.005_386_128],
    [0.251_660_54, 0.677_523_24, 2.494_026_6],
    [8.353_717, -3.577_719_5, 0.314_467_9],
    [-27.668_733, 14.264_731, -13.649_213],
    [52.176_14, -27.943_607, 12.944_169],
    [-50.768_524, 29.046_583, 4.234_153],
    [18.655_705, -11.489_774, -5.601_961_5],
];

impl Colormap {
    pub const ALL: [Colormap; 4] = [Self::Viridis, Self::Magma, Self::Jet, Self::Gray];

    pub fn name(self) -> &'static str {
        match self {
            Self::Viridis => "viridis",
            Self::Magma => "magma",
            Self::Jet => "jet",
            Self::Gray => "gray",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| Error::invalid(format!("unknown colormap '{name}': choose viridis, magma, jet or gray")))
    }

    /// RGB for `t` in [0, 1] (clamped; NaN maps to 0).
    pub fn rgb(self, t: f32) -> [u8; 3] {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let rgb = match self {
            Self::Viridis => polynomial(&VIRIDIS, t),
            Self::Magma => polynomial(&MAGMA, t),
            Self::Jet => {
                let ramp = |center: f32| (1.5 - (4.0 * t - center).abs()).clamp(0.0, 1.0);
                [ramp(3.0), ramp(2.0), ramp(1.0)]
            }
            Self::Gray => [t; 3],
        };
        rgb.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
    }
}

fn polynomial(c: &[[f32; 3]; 7], t: f32) -> [f32; 3] {
    [0, 1, 2].map(|k| c.iter().rev().fold(0.0, |acc, coef| acc * t + coef[k]))
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
