//! Every page of `docs/` (and the README) is included by this crate's `lib.rs`, so
//! its Rust code blocks run as doc tests; a new page that is not fails here.

use std::path::Path;

#[test]
fn every_page_is_a_doc_test_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("read src/lib.rs");
    let mut pages = vec!["README.md".to_string()];
    for entry in std::fs::read_dir(root.join("docs")).expect("read docs/") {
        let name = entry
            .expect("docs/ entry")
            .file_name()
            .into_string()
            .expect("UTF-8 name");
        if name.ends_with(".md") {
            pages.push(format!("docs/{name}"));
        }
    }
    assert!(pages.len() > 5, "found only {pages:?}");
    let missing: Vec<&String> = pages
        .iter()
        .filter(|page| !lib.contains(&format!("include_str!(\"../../../{page}\")")))
        .collect();
    assert!(
        missing.is_empty(),
        "pages not included in tests/docs/src/lib.rs: {missing:?}"
    );
}
