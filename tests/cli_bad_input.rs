//! Bad input through the `convlens` binary: each case gives one clear line on stderr, a non-zero
//! exit, and no panic.

use std::path::PathBuf;
use std::process::Command;

fn convlens(args: &[&str]) -> (i32, String, String) {
    // The CPU backend keeps the GPU driver's own stderr chatter out of the one-line check.
    let out = Command::new(env!("CARGO_BIN_EXE_convlens")).args(args).args(["--backend", "cpu"]).env("CONVLENS_QUIET", "1").output().expect("runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn temp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convlens-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Fails cleanly: non-zero exit, a message containing `needle`, no panic, one line.
fn assert_clean_failure(args: &[&str], needle: &str) {
    let (code, _, err) = convlens(args);
    assert_ne!(code, 0, "{args:?} should fail");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(err.to_lowercase().contains(&needle.to_lowercase()), "{args:?}: expected '{needle}' in: {err}");
    // One line of ConvLens's own, or clap's argument error, which ends with a pointer to --help.
    assert!(err.trim().lines().count() <= 1 || err.contains("try '--help'"), "{args:?}: expected one line, got: {err}");
}

#[test]
fn unknown_model() {
    assert_clean_failure(&["layers", "--model", "resnet50"], "unknown model 'resnet50'");
}

#[test]
fn unknown_command_and_option() {
    assert_clean_failure(&["frobnicate"], "unrecognized subcommand 'frobnicate'");
    assert_clean_failure(&["layers", "--model", "efficientnet-lite0", "--colour", "red"], "unexpected argument '--colour'");
    // A flag where a value belongs is an error, not a layer called "--json".
    assert_clean_failure(&["gradcam", "--model", "efficientnet-lite0", "--layer", "--json", "cat.jpg"], "a value is required for '--layer");
    assert_clean_failure(&["gradcam", "--model", "efficientnet-lite0", "--method", "smooth", "cat.jpg"], "possible values: gradcam, gradcam++, layercam");
}

#[test]
fn not_an_image() {
    let text = temp("notes.jpg", b"these are my notes, not a photo");
    assert_clean_failure(&["predict", "--model", "efficientnet-lite0", text.to_str().unwrap()], "not an image");
}

#[test]
fn truncated_jpeg() {
    let photo = std::fs::read(format!("{}/www/samples/cat.jpg", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let cut = temp("cut.jpg", &photo[..photo.len() / 3]);
    assert_clean_failure(&["predict", "--model", "efficientnet-lite0", cut.to_str().unwrap()], "truncated");
}

#[test]
fn forged_huge_png_header_is_refused_without_allocating() {
    // A valid PNG signature and IHDR claiming 60000×60000 pixels (3.6 gigapixels), no data.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(60000u32.to_be_bytes());
    ihdr.extend(60000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    for chunk in [&b"IDAT"[..], &b"IEND"[..]] {
        png.extend(0u32.to_be_bytes());
        png.extend(chunk);
        png.extend(crc32(chunk).to_be_bytes());
    }
    let path = temp("huge.png", &png);
    assert_clean_failure(&["predict", "--model", "efficientnet-lite0", path.to_str().unwrap()], "megapixels");
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for b in bytes {
        crc ^= *b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn fifty_megapixel_photo_is_downscaled_and_classified() {
    // 8660×5774 ≈ 50 MP; a flat colour compresses to a few kilobytes.
    let img = image::RgbImage::from_pixel(8660, 5774, image::Rgb([120, 140, 90]));
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    let path = temp("big.png", &bytes);
    let (code, out, err) = convlens(&["predict", "--model", "efficientnet-lite0", "--top", "1", "--json", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
}

#[test]
fn unknown_layer() {
    assert_clean_failure(
        &["activations", "--model", "efficientnet-lite0", "--layer", "block9_conv9", &format!("{}/www/samples/cat.jpg", env!("CARGO_MANIFEST_DIR"))],
        "unknown layer 'block9_conv9'",
    );
}

#[test]
fn weights_of_another_model() {
    assert_clean_failure(&["layers", "--model", "vgg16", "--weights", &fixture("small_convnet_tiny_keras2.h5")], "does not hold VGG16");
    assert_clean_failure(
        &["layers", "--model", "vgg16", "--weights", &format!("{}/weights/efficientnet-lite0.safetensors", env!("CARGO_MANIFEST_DIR"))],
        "efficientnet-lite0 weights, not vgg16",
    );
}

#[test]
fn truncated_and_corrupt_weights() {
    let good = std::fs::read(format!("{}/weights/efficientnet-lite0.safetensors", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let cut = temp("cut.safetensors", &good[..good.len() / 2]);
    assert_clean_failure(&["layers", "--model", "efficientnet-lite0", "--weights", cut.to_str().unwrap()], "cannot use these weights");
    let h5 = std::fs::read(fixture("vgg16_tiny_keras_official.h5")).unwrap();
    let cut = temp("cut.h5", &h5[..h5.len() / 2]);
    assert_clean_failure(&["layers", "--model", "vgg16", "--weights", cut.to_str().unwrap()], "cannot use these weights");
    let mut noise = vec![0u8; 4096];
    noise.iter_mut().enumerate().for_each(|(i, b)| *b = (i * 7919 % 251) as u8);
    let junk = temp("junk.pth", &noise);
    assert_clean_failure(&["layers", "--model", "vgg16", "--weights", junk.to_str().unwrap()], "unrecognised file");
}

#[test]
fn missing_weights_explain_how_to_get_them() {
    assert_clean_failure(&["layers", "--model", "vgg16"], "--weights");
    assert_clean_failure(&["layers", "--model", "small-convnet"], "cats_and_dogs_small_2.h5");
}

/// Probing the GPU without XDG_RUNTIME_DIR (containers, CI) used to print Mesa's
/// "error: XDG_RUNTIME_DIR is invalid" lines on every run; only ConvLens's own note remains.
#[test]
fn adapter_probe_prints_no_driver_alarm() {
    let out = Command::new(env!("CARGO_BIN_EXE_convlens"))
        .args(["layers", "--model", "efficientnet-lite0", "--backend", "auto"])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("convlens: using"), "the adapter was probed: {err}");
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
    assert!(err.lines().all(|l| l.starts_with("convlens:")), "only ConvLens's own lines on stderr: {err}");
}
