//! Label maps: one name per line, or the `names:` section of the
//! `metadata.yaml` that Ultralytics writes beside an OpenVINO export.

use std::path::Path;

/// Class names by index from a label file's text; `path` decides the format.
pub fn parse_labels(text: &str, path: &Path) -> Result<Vec<String>, String> {
    let yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
    if yaml { ultralytics_names(text) } else { Ok(plain(text)) }
}

fn plain(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
}

/// The `names:` mapping (`  0: person`) or inline list (`names: [a, b]`).
fn ultralytics_names(text: &str) -> Result<Vec<String>, String> {
    let mut lines = text.lines().enumerate();
    let Some((_, first)) = lines.by_ref().find(|(_, l)| l.starts_with("names:")) else {
        return Err("no `names:` section: is this an Ultralytics metadata.yaml?".into());
    };
    let inline = first["names:".len()..].trim();
    if let Some(list) = inline.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
        return Ok(list.split(',').map(|n| unquote(n.trim()).to_string()).filter(|n| !n.is_empty()).collect());
    }
    let mut names: Vec<Option<String>> = Vec::new();
    for (n, line) in lines {
        if !line.starts_with([' ', '\t']) || line.trim().is_empty() {
            break;
        }
        let (index, name) = line
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("line {}: expected `index: name` under names:", n + 1))?;
        let index: usize =
            index.trim().parse().map_err(|_| format!("line {}: {:?} is not a class index", n + 1, index.trim()))?;
        if index >= 10_000 {
            return Err(format!("line {}: class index {index} is implausibly large", n + 1));
        }
        if names.len() <= index {
            names.resize(index + 1, None);
        }
        names[index] = Some(unquote(name.trim()).to_string());
    }
    names.into_iter().enumerate().map(|(i, n)| n.ok_or_else(|| format!("names: class {i} has no name"))).collect()
}

fn unquote(s: &str) -> &str {
    s.strip_prefix(['\'', '"']).and_then(|s| s.strip_suffix(['\'', '"'])).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_files_skip_blanks_and_comments() {
        let labels = parse_labels("# demo\nhandgun\n\n phone \n", Path::new("demo.labels")).unwrap();
        assert_eq!(labels, ["handgun", "phone"]);
    }

    #[test]
    fn ultralytics_metadata_mapping() {
        let yaml = "description: x\nstride: 32\nnames:\n  0: person\n  1: 'bicycle'\n  2: handgun\nimgsz:\n- 640\n";
        assert_eq!(parse_labels(yaml, Path::new("metadata.yaml")).unwrap(), ["person", "bicycle", "handgun"]);
    }

    #[test]
    fn ultralytics_metadata_inline_list() {
        let yaml = "names: ['knife', \"handgun\"]\n";
        assert_eq!(parse_labels(yaml, Path::new("m.yml")).unwrap(), ["knife", "handgun"]);
    }

    #[test]
    fn gaps_in_the_mapping_are_errors() {
        let err = parse_labels("names:\n  0: a\n  2: c\n", Path::new("m.yaml")).unwrap_err();
        assert_eq!(err, "names: class 1 has no name");
        let err = parse_labels("stride: 32\n", Path::new("m.yaml")).unwrap_err();
        assert!(err.contains("no `names:` section"));
    }
}
