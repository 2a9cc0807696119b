//! Finding and loading OpenVINO's C library at run time, so one vigild binary
//! runs against the Yocto image's OpenVINO, a pip wheel or a system install.

use std::path::{Path, PathBuf};

/// The places looked at, in order; the first that loads wins.
fn candidates(configured: Option<&Path>) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    if let Some(p) = configured {
        out.push(("detector.openvino_lib".to_string(), p.to_path_buf()));
    }
    if let Some(p) = std::env::var_os("OPENVINO_LIB") {
        out.push(("$OPENVINO_LIB".to_string(), PathBuf::from(p)));
    }
    // A Python venv with the `openvino` wheel, as `cargo xtask` makes one.
    if let Some(libs) = std::env::var_os("VIRTUAL_ENV").and_then(|venv| wheel_libs(Path::new(&venv))) {
        out.push(("$VIRTUAL_ENV's openvino wheel".to_string(), libs));
    }
    out
}

/// `<venv>/lib/python3.X/site-packages/openvino/libs`, if there is one.
fn wheel_libs(venv: &Path) -> Option<PathBuf> {
    std::fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/openvino/libs"))
        .find(|p| p.is_dir())
}

/// `path` itself if it is a file, else the `libopenvino_c.so*` inside it (the
/// wheel ships only a versioned name such as `libopenvino_c.so.2641`).
fn library_file(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libopenvino_c.so")))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Loads OpenVINO once per process; later calls are no-ops. The error lists
/// every place tried and how to point vigild at the library.
pub fn load(configured: Option<&Path>) -> Result<String, String> {
    let mut tried = Vec::new();
    for (why, path) in candidates(configured) {
        match library_file(&path) {
            Some(file) => match openvino_sys::library::load_from(file.clone()) {
                Ok(()) => return Ok(file.display().to_string()),
                Err(e) => tried.push(format!("{why} {}: {e}", file.display())),
            },
            None => tried.push(format!("{why} {}: no libopenvino_c.so there", path.display())),
        }
    }
    match openvino_sys::library::load() {
        Ok(()) => Ok(openvino_sys::library::find().map(|p| p.display().to_string()).unwrap_or_default()),
        Err(e) => {
            tried.push(format!("system search (LD_LIBRARY_PATH, /usr/lib, /opt/intel/openvino): {e}"));
            Err(format!(
                "cannot load the OpenVINO runtime; tried {}. Install OpenVINO (the `openvino` pip wheel works) and set detector.openvino_lib or OPENVINO_LIB to libopenvino_c.so or its folder",
                tried.join("; ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_versioned_wheel_library_in_a_folder() {
        let dir = std::env::temp_dir().join(format!("vigil-ov-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("libopenvino.so.2641"), b"").unwrap();
        std::fs::write(dir.join("libopenvino_c.so.2641"), b"").unwrap();
        assert_eq!(library_file(&dir), Some(dir.join("libopenvino_c.so.2641")));
        assert_eq!(library_file(&dir.join("libopenvino_c.so.2641")), Some(dir.join("libopenvino_c.so.2641")));
        assert_eq!(library_file(&dir.join("missing")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
