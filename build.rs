//! Compiles src/io/render/jpeg_layout.c against the headers of the libjpeg that `mozjpeg-sys`
//! builds (`DEP_JPEG_INCLUDE`: its generated jconfig.h, then its vendored source), so that
//! `render::jpeg_rows` can compare the C compiler's offsets of the fields it reads with its
//! own before it touches libjpeg's private state.

fn main() {
    println!("cargo:rerun-if-changed=src/io/render/jpeg_layout.c");
    println!("cargo:rerun-if-env-changed=DEP_JPEG_INCLUDE");
    let include = std::env::var_os("DEP_JPEG_INCLUDE")
        .expect("DEP_JPEG_INCLUDE: set by mozjpeg-sys (links = \"jpeg\") for its dependents");
    cc::Build::new()
        .file("src/io/render/jpeg_layout.c")
        .includes(std::env::split_paths(&include))
        .warnings(true)
        .compile("imgserv_jpeg_layout");
}
