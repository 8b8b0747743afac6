use super::*;

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let script = String::from_utf8(completion_script(shell)).unwrap();
        assert!(script.contains("facteurctl"), "{shell}");
        assert!(script.contains("incoming-port"), "{shell}");
        assert!(!script.contains("incoming-password"), "{shell}");
    }
}

#[test]
fn the_main_page_is_roff() {
    let page = String::from_utf8(main_page().unwrap()).unwrap();
    assert!(page.starts_with(".ie"), "{}", &page[..40.min(page.len())]);
    assert!(page.contains("facteurctl"));
}

#[test]
fn pages_are_written_per_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    // A directory that does not exist yet is created.
    let dir = tmp.path().join("man1");
    write_pages(&dir).unwrap();
    for name in [
        "facteurctl.1",
        "facteurctl-account.1",
        "facteurctl-account-add.1",
        "facteurctl-account-set.1",
        "facteurctl-messages.1",
        "facteurctl-watch.1",
        "facteurctl-folders.1",
        // Listed in --help now, so they have pages too.
        "facteurctl-completions.1",
        "facteurctl-man.1",
    ] {
        let path = dir.join(name);
        assert!(path.is_file(), "{}", path.display());
    }
}
