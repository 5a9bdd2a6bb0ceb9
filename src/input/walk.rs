//! Inputs → the files to read, in a reproducible order, with a stable document id for each.
//!
//! Directories are walked with the `ignore` crate's walker, sorted by file name. Symbolic
//! links are not followed unless asked (`--follow-links`), so loops and a file seen twice
//! through a link are impossible by default; when they are followed, a loop is reported and
//! a file reached a second time (same canonical path) is skipped as a duplicate. Hidden
//! files and folders (a leading `.`, which covers `.git`, `.hg`, `.svn`) are left out and
//! counted when `hidden` is off.

use super::STDIN;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub path: PathBuf,
    /// The document id: the path relative to the input root, prefixed with the root's own
    /// name (`collection/sub/a.txt`), so it does not depend on the current directory.
    pub id: String,
}

/// Something found while walking.
#[derive(Debug)]
pub enum Found {
    File(FileEntry),
    /// Not read, with the reason (a link not followed, a loop, an unreadable folder).
    Skipped {
        path: PathBuf,
        reason: String,
    },
}

/// How to walk.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalkOptions {
    /// Include hidden files and folders.
    pub hidden: bool,
    pub follow_links: bool,
}

/// Walks `inputs` in order and hands each file (or skip) to `visit`; returns how many
/// hidden entries were left out. Stops at the first `Err` of `visit`.
pub fn walk<E>(
    inputs: &[PathBuf],
    opts: WalkOptions,
    mut visit: impl FnMut(Found) -> Result<(), E>,
) -> Result<usize, E> {
    let hidden_count = Arc::new(AtomicUsize::new(0));
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for input in inputs {
        if input.as_os_str() == STDIN {
            visit(Found::File(FileEntry {
                path: input.clone(),
                id: STDIN.into(),
            }))?;
            continue;
        }
        let root_name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| input.display().to_string());
        let is_dir = std::fs::metadata(input).is_ok_and(|m| m.is_dir());
        if !is_dir {
            // a file named on the command line is read even if hidden or a link
            visit(Found::File(FileEntry {
                path: input.clone(),
                id: root_name,
            }))?;
            continue;
        }
        let counter = hidden_count.clone();
        let show_hidden = opts.hidden;
        let walker = ignore::WalkBuilder::new(input)
            .standard_filters(false)
            .follow_links(opts.follow_links)
            .sort_by_file_name(|a, b| a.cmp(b))
            .filter_entry(move |e| {
                if show_hidden || e.depth() == 0 {
                    return true;
                }
                let hidden = e.file_name().to_string_lossy().starts_with('.');
                if hidden {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                !hidden
            })
            .build();
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let path = error_path(&e).unwrap_or_else(|| input.clone());
                    let reason = match &e {
                        _ if is_loop(&e) => {
                            "symbolic link loop (a link to one of its own parent folders)".into()
                        }
                        _ => format!("cannot read: {}", strip_path(&e.to_string())),
                    };
                    visit(Found::Skipped { path, reason })?;
                    continue;
                }
            };
            let ft = entry.file_type();
            if entry.path_is_symlink() && !opts.follow_links {
                visit(Found::Skipped {
                    path: entry.path().to_path_buf(),
                    reason: "symbolic link, not followed (use --follow-links)".into(),
                })?;
                continue;
            }
            if ft.is_some_and(|t| t.is_dir()) {
                continue;
            }
            if !ft.is_some_and(|t| t.is_file()) {
                visit(Found::Skipped {
                    path: entry.path().to_path_buf(),
                    reason: "not a regular file".into(),
                })?;
                continue;
            }
            if opts.follow_links {
                let canon = std::fs::canonicalize(entry.path()).unwrap_or(entry.path().into());
                if !seen.insert(canon.clone()) {
                    visit(Found::Skipped {
                        path: entry.path().to_path_buf(),
                        reason: format!(
                            "the same file as one already read ({}), reached through a link",
                            canon.display()
                        ),
                    })?;
                    continue;
                }
            }
            let rel = entry.path().strip_prefix(input).unwrap_or(entry.path());
            visit(Found::File(FileEntry {
                path: entry.path().to_path_buf(),
                id: join_id(&root_name, rel),
            }))?;
        }
    }
    Ok(hidden_count.load(Ordering::Relaxed))
}

/// `root/rel` with `/` separators on every platform.
fn join_id(root: &str, rel: &Path) -> String {
    let mut id = root.to_string();
    for c in rel.components() {
        id.push('/');
        id.push_str(&c.as_os_str().to_string_lossy());
    }
    id
}

fn is_loop(e: &ignore::Error) -> bool {
    match e {
        ignore::Error::Loop { .. } => true,
        ignore::Error::WithPath { err, .. } | ignore::Error::WithDepth { err, .. } => is_loop(err),
        ignore::Error::WithLineNumber { err, .. } => is_loop(err),
        _ => false,
    }
}

fn error_path(e: &ignore::Error) -> Option<PathBuf> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::Loop { child, .. } => Some(child.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        _ => None,
    }
}

/// ignore's messages start with the path, which the skip record already names.
fn strip_path(msg: &str) -> String {
    msg.rsplit(": ").next().unwrap_or(msg).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(inputs: &[PathBuf], opts: WalkOptions) -> (Vec<String>, Vec<String>, usize) {
        let (mut f, mut s) = (Vec::new(), Vec::new());
        let hidden = walk::<()>(inputs, opts, |x| {
            match x {
                Found::File(e) => f.push(e.id),
                Found::Skipped { path, reason } => s.push(format!(
                    "{}: {reason}",
                    path.file_name().unwrap().to_string_lossy()
                )),
            }
            Ok(())
        })
        .unwrap();
        (f, s, hidden)
    }

    #[test]
    fn ids_are_relative_sorted_and_hidden_folders_counted() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("coll");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("b.txt"), "b").unwrap();
        std::fs::write(root.join("sub/a.txt"), "a").unwrap();
        std::fs::write(root.join(".git/index"), "x").unwrap();
        std::fs::write(root.join(".env"), "x").unwrap();
        let (f, s, hidden) = files(std::slice::from_ref(&root), WalkOptions::default());
        assert_eq!(f, ["coll/b.txt", "coll/sub/a.txt"]);
        assert!(s.is_empty());
        assert_eq!(hidden, 2);
        let (f, _, hidden) = files(
            &[root],
            WalkOptions {
                hidden: true,
                ..Default::default()
            },
        );
        assert_eq!(f.len(), 4);
        assert_eq!(hidden, 0);
    }

    #[cfg(unix)]
    #[test]
    fn links_are_not_followed_and_loops_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("c");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/x.txt"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("b")).unwrap();
        std::os::unix::fs::symlink(&root, root.join("a/loop")).unwrap();
        let (f, s, _) = files(std::slice::from_ref(&root), WalkOptions::default());
        assert_eq!(f, ["c/a/x.txt"]);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s.iter().all(|s| s.contains("not followed")), "{s:?}");
        let (f, s, _) = files(
            &[root],
            WalkOptions {
                follow_links: true,
                ..Default::default()
            },
        );
        assert_eq!(f, ["c/a/x.txt"], "the file behind the link is read once");
        assert!(s.iter().any(|s| s.contains("loop")), "{s:?}");
        assert!(s.iter().any(|s| s.contains("same file")), "{s:?}");
    }
}
