//! Link flags: a Lua module on macOS resolves the Lua API from the host
//! interpreter at load time; the `native-kqueue` feature on Linux links
//! libkqueue from `LIBKQUEUE_DIR`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LIBKQUEUE_DIR");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "macos" || os == "ios" {
        println!("cargo:rustc-cdylib-link-arg=-undefined");
        println!("cargo:rustc-cdylib-link-arg=dynamic_lookup");
    }
    if os == "linux" && std::env::var_os("CARGO_FEATURE_NATIVE_KQUEUE").is_some() {
        let Some(dir) = std::env::var_os("LIBKQUEUE_DIR") else {
            println!("cargo:warning=feature native-kqueue needs LIBKQUEUE_DIR=<libkqueue prefix>");
            return;
        };
        let lib = std::path::Path::new(&dir).join("lib");
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-lib=dylib=kqueue");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
