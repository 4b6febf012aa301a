use botarmy_workspace::{PathError, resolve_inside};

#[test]
fn paths_inside_resolve_and_escapes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("wt");
    let outside = dir.path().join("secret");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("key"), "s3cret").unwrap();
    let real_root = root.canonicalize().unwrap();

    // Inside, existing or not.
    assert_eq!(
        resolve_inside(&root, "src/main.rs").unwrap(),
        real_root.join("src/main.rs")
    );
    assert_eq!(
        resolve_inside(&root, "./src/../new/file.txt").unwrap(),
        real_root.join("new/file.txt")
    );

    // Absolute paths and home.
    assert!(matches!(
        resolve_inside(&root, "/etc/passwd"),
        Err(PathError::Absolute(_))
    ));
    assert!(matches!(
        resolve_inside(&root, "~/.ssh/id_rsa"),
        Err(PathError::Absolute(_))
    ));
    // Climbing out.
    assert!(matches!(
        resolve_inside(&root, "../secret/key"),
        Err(PathError::Escapes(_))
    ));
    assert!(matches!(
        resolve_inside(&root, "src/../../secret"),
        Err(PathError::Escapes(_))
    ));

    // Links: one inside that stays inside is fine; one that leads out is refused, also as
    // a folder on the way and also when dangling.
    std::os::unix::fs::symlink(root.join("src"), root.join("code")).unwrap();
    assert_eq!(
        resolve_inside(&root, "code/lib.rs").unwrap(),
        real_root.join("src/lib.rs")
    );
    std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
    let err = resolve_inside(&root, "out/key").unwrap_err();
    assert!(matches!(err, PathError::Link { .. }), "{err}");
    assert!(err.to_string().contains("out/key"), "{err}");
    std::os::unix::fs::symlink(outside.join("key"), root.join("src/k")).unwrap();
    assert!(matches!(
        resolve_inside(&root, "src/k"),
        Err(PathError::Link { .. })
    ));
    std::os::unix::fs::symlink(dir.path().join("nowhere"), root.join("dangling")).unwrap();
    assert!(resolve_inside(&root, "dangling").is_err());

    // Another run's worktree next to this one is outside too.
    std::fs::create_dir_all(dir.path().join("wt-other")).unwrap();
    assert!(resolve_inside(&root, "../wt-other/x").is_err());
}
