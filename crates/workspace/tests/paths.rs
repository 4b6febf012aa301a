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

mod files {
    use botarmy_workspace::{ChangeKind, FileError, Files, PathError};

    #[test]
    fn read_write_edit_list_and_search_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("wt");
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), "needle in git").unwrap();
        let files = Files::new(&root);

        let made = files
            .write("src/main.rs", "fn main() {\n    println!(\"hi\");\n}\n")
            .unwrap();
        assert_eq!(
            (made.path.as_str(), made.kind),
            ("src/main.rs", ChangeKind::Created)
        );
        let changed = files
            .edit("src/main.rs", "println!(\"hi\")", "println!(\"hello\")")
            .unwrap();
        assert_eq!(changed.kind, ChangeKind::Modified);
        assert!(files.read("src/main.rs").unwrap().contains("hello"));
        // An edit must match exactly once.
        files.write("twice.txt", "a a").unwrap();
        assert!(matches!(
            files.edit("twice.txt", "a", "b"),
            Err(FileError::EditNotUnique { count: 2, .. })
        ));
        assert!(matches!(
            files.edit("twice.txt", "zzz", "b"),
            Err(FileError::EditNotUnique { count: 0, .. })
        ));

        let names: Vec<String> = files
            .list("")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["src/", "twice.txt"]);

        files
            .write("notes.md", "a needle here\nnone\nneedle again\n")
            .unwrap();
        let found = files.search("needle", "").unwrap();
        let at: Vec<(String, usize)> = found.iter().map(|m| (m.path.clone(), m.line)).collect();
        assert_eq!(
            at,
            [("notes.md".to_string(), 1), ("notes.md".to_string(), 3)]
        );

        // Escapes fail for every tool, and nothing is written outside.
        assert!(matches!(
            files.write("../evil.txt", "x"),
            Err(FileError::Path(PathError::Escapes(_)))
        ));
        assert!(matches!(
            files.read("/etc/hostname"),
            Err(FileError::Path(PathError::Absolute(_)))
        ));
        assert!(files.list("..").is_err());
        assert!(files.search("root", "/etc").is_err());
        assert!(!dir.path().join("evil.txt").exists());
        // A link to the outside is not followed by search either.
        std::fs::write(dir.path().join("outside.txt"), "needle outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.txt"), root.join("link.txt")).unwrap();
        assert_eq!(files.search("outside", "").unwrap(), []);
        assert!(files.read("link.txt").is_err());
        // Missing files are named.
        let err = files.read("nope.rs").unwrap_err().to_string();
        assert!(err.starts_with("nope.rs:"), "{err}");
    }
}
