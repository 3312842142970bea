//! Named choices (preprocessing, colormap, CAM method, ascent mode, score, backend): each enum
//! derives clap's `ValueEnum`, so its spellings are written once and serve the CLI's `--help`,
//! the page's options and weights metadata alike.

pub use clap::ValueEnum;

use crate::error::{Error, Result};

/// The variant `text` names (its name or an alias); an unknown name lists the known ones.
pub fn parse<T: ValueEnum>(what: &str, text: &str) -> Result<T> {
    T::from_str(text, false).map_err(|_| Error::invalid(format!("unknown {what} '{text}': choose {}", names::<T>().join(", "))))
}

/// The name a variant is written as.
pub fn name<T: ValueEnum>(value: &T) -> String {
    value.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
}

/// Every variant's name, in declaration order.
pub fn names<T: ValueEnum>() -> Vec<String> {
    T::value_variants().iter().map(name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::Preprocessing;
    use crate::viz::gradcam::CamMethod;

    #[test]
    fn names_and_aliases_round_trip() {
        assert_eq!(parse::<Preprocessing>("preprocessing", "0..1").unwrap(), Preprocessing::Unit);
        assert_eq!(name(&Preprocessing::Unit), "unit");
        assert_eq!(parse::<CamMethod>("method", "grad-cam++").unwrap(), CamMethod::GradCamPlusPlus);
        let err = parse::<CamMethod>("method", "smoothgrad").unwrap_err().to_string();
        assert!(err.contains("unknown method 'smoothgrad': choose gradcam, gradcam++, layercam"), "{err}");
    }
}
