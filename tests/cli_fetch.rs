//! `convlens fetch vgg16` against a file served on 127.0.0.1: verifies the hash, converts, and
//! the result is then the default VGG16 weights; a wrong hash is refused.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

/// Serves `body` over HTTP/1.0 to every connection, forever (the test process ends it).
fn serve(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/vgg16_weights_tf_dim_ordering_tf_kernels.h5", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(stream, "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n", body.len());
            let _ = stream.write_all(&body);
        }
    });
    url
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn fetch_verifies_converts_and_becomes_the_default() {
    let body = std::fs::read(format!("{}/tests/fixtures/vgg16_tiny_keras_official.h5", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let md5 = md5_hex(&body);
    let url = serve(body);
    let cache = std::env::temp_dir().join(format!("convlens-fetch-{}", std::process::id()));
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_convlens")).args(args).env("XDG_CACHE_HOME", &cache).output().unwrap();

    let bad = run(&["fetch", "vgg16", "--url", &url, "--md5", "00000000000000000000000000000000"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("refusing"), "{}", String::from_utf8_lossy(&bad.stderr));

    let good = run(&["fetch", "vgg16", "--url", &url, "--md5", &md5]);
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    assert!(cache.join("convlens/vgg16.safetensors").exists());
    let layers = run(&["layers", "--model", "vgg16", "--backend", "cpu", "--json"]);
    assert!(layers.status.success(), "{}", String::from_utf8_lossy(&layers.stderr));
    assert!(String::from_utf8_lossy(&layers.stdout).contains("block5_conv3"));
}
