//! Inputs → the files to read, in a reproducible order, with a stable document id for each.
//!
//! Directories are walked with the `ignore` crate's walker, sorted by file name. Symbolic
//! links are not followed unless asked (`--follow-links`), so loops and a file seen twice
//! through a link are impossible by default; when they are followed, a loop is reported and
//! a file reached a second time (same canonical path) is skipped as a duplicate. Hidden
//! files and folders (a leading `.`, which covers `.git`, `.hg`, `.svn`) are left out and
//! counted when `hidden` is off.
//!
//! With [`WalkOptions::ignore_files`] a folder is read as ripgrep reads it: what
//! `.gitignore` (inside a git repository), `.ignore` and `.git/info/exclude` exclude, in the
//! folder and the folders above it, is left out — but never silently: every excluded file
//! or folder is handed over as a skip with its reason. The user's global git excludes are
//! not read, so a scan reads the same files on every machine. [`Filter`] adds ripgrep's
//! `--type`, `--type-not` and `--glob`; what they leave out was asked for, and is counted.

use super::STDIN;
use crate::error::{Error, Result};
use ignore::overrides::{Override, OverrideBuilder};
use ignore::types::{Types, TypesBuilder};
use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    /// Not read, with the reason (a link not followed, a loop, an unreadable folder, a path
    /// an ignore file excludes).
    Skipped {
        path: PathBuf,
        /// The id a document there would have (a shard lists only its own skips).
        id: String,
        reason: String,
    },
}

/// How to walk.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Include hidden files and folders.
    pub hidden: bool,
    pub follow_links: bool,
    /// Leave out what `.gitignore`, `.ignore` and `.git/info/exclude` exclude (each listed
    /// as a skip).
    pub ignore_files: bool,
    /// `--type`, `--type-not`, `--glob`.
    pub filter: Option<Filter>,
}

/// ripgrep's file filters: file types by name (ripgrep's own table) and globs.
#[derive(Debug, Clone)]
pub struct Filter {
    types: Option<Types>,
    /// The type names asked for and left out, as given (a scan's identity holds them).
    select: Vec<String>,
    negate: Vec<String>,
    /// Matched relative to each input folder (so one matcher is built per folder).
    globs: Vec<String>,
}

impl Filter {
    /// `select`: only files of these types; `negate`: no files of these; `globs`: as
    /// ripgrep's `--glob` (a match is read, `!GLOB` is left out; with any positive glob,
    /// files matching none are left out). `None` when nothing is asked. An unknown type or
    /// a malformed glob is a usage error naming it.
    pub fn new(select: &[String], negate: &[String], globs: &[String]) -> Result<Option<Filter>> {
        if select.is_empty() && negate.is_empty() && globs.is_empty() {
            return Ok(None);
        }
        let types = if select.is_empty() && negate.is_empty() {
            None
        } else {
            let mut b = TypesBuilder::new();
            b.add_defaults();
            for t in select {
                b.select(t);
            }
            for t in negate {
                b.negate(t);
            }
            Some(b.build().map_err(|e| {
                Error::Usage(format!(
                    "--type: {e} (the names are ripgrep's: see --type-list)"
                ))
            })?)
        };
        let f = Filter {
            types,
            select: select.to_vec(),
            negate: negate.to_vec(),
            globs: globs.to_vec(),
        };
        f.globs_at(Path::new("."))?;
        Ok(Some(f))
    }

    /// The filter as asked: `(types, types left out, globs)`.
    pub fn spec(&self) -> (&[String], &[String], &[String]) {
        (&self.select, &self.negate, &self.globs)
    }

    fn globs_at(&self, root: &Path) -> Result<Option<Override>> {
        if self.globs.is_empty() {
            return Ok(None);
        }
        let mut b = OverrideBuilder::new(root);
        for g in &self.globs {
            b.add(g)
                .map_err(|e| Error::Usage(format!("--glob {g:?}: {e}")))?;
        }
        Ok(Some(
            b.build()
                .map_err(|e| Error::Usage(format!("--glob: {e}")))?,
        ))
    }
}

/// ripgrep's file types: each name with its globs, sorted by name (`--type-list`).
pub fn type_list() -> Vec<(String, Vec<String>)> {
    let mut b = TypesBuilder::new();
    b.add_defaults();
    b.definitions()
        .into_iter()
        .map(|d| (d.name().to_string(), d.globs().to_vec()))
        .collect()
}

/// What a walk left out without listing it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Left {
    /// Hidden files and folders (without `hidden`).
    pub hidden: usize,
    /// Files not of the `--type`s asked for, or of a `--type-not`.
    pub by_type: usize,
    /// Files and folders a `--glob` leaves out.
    pub by_glob: usize,
}

/// The reason given for a path an ignore file excludes.
pub const IGNORED: &str =
    "excluded by an ignore file (.gitignore, .ignore or .git/info/exclude); --no-ignore reads it";

/// Walks `inputs` in order and hands each file (or skip) to `visit`; returns what was left
/// out unlisted. Stops at the first `Err` of `visit`.
pub fn walk<E>(
    inputs: &[PathBuf],
    opts: &WalkOptions,
    mut visit: impl FnMut(Found) -> std::result::Result<(), E>,
) -> std::result::Result<Left, E> {
    let mut left = Left::default();
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
            // a file named on the command line is read even if hidden, ignored or a link
            visit(Found::File(FileEntry {
                path: input.clone(),
                id: root_name,
            }))?;
            continue;
        }
        let id_of = |p: &Path| join_id(&root_name, p.strip_prefix(input).unwrap_or(p));
        let types = opts.filter.as_ref().and_then(|f| f.types.clone());
        // validated when the filter was made; a root the globs cannot be built for reads all
        let globs = opts
            .filter
            .as_ref()
            .and_then(|f| f.globs_at(input).ok().flatten());
        let mut builder = ignore::WalkBuilder::new(input);
        builder
            .standard_filters(false)
            .follow_links(opts.follow_links)
            .sort_by_file_name(|a, b| a.cmp(b));
        if opts.ignore_files {
            builder
                .ignore(true)
                .git_ignore(true)
                .git_exclude(true)
                .parents(true)
                .require_git(true);
        }
        if let Some(t) = &types {
            builder.types(t.clone());
        }
        if let Some(g) = &globs {
            builder.overrides(g.clone());
        }
        // What the walker leaves out is found by listing each folder it enters: a name it
        // never hands over (nor our hidden filter refuses) was excluded by its rules.
        let tracked = opts.ignore_files || types.is_some() || globs.is_some();
        let refused: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
        let show_hidden = opts.hidden;
        let refused_in = refused.clone();
        builder.filter_entry(move |e| {
            if show_hidden || e.depth() == 0 {
                return true;
            }
            let hidden = e.file_name().to_string_lossy().starts_with('.');
            if hidden {
                refused_in
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(e.path().to_path_buf());
            }
            !hidden
        });
        let mut open = OpenFolders::default();
        let report = |left: &mut Left, done: Vec<(PathBuf, BTreeSet<OsString>)>| {
            let mut found = Vec::new();
            for (dir, names) in done {
                for name in names {
                    let path = dir.join(&name);
                    let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
                    if !show_hidden && name.to_string_lossy().starts_with('.') {
                        left.hidden += 1;
                    } else if globs
                        .as_ref()
                        .is_some_and(|g| g.matched(&path, is_dir).is_ignore())
                    {
                        left.by_glob += 1;
                    } else if types
                        .as_ref()
                        .is_some_and(|t| t.matched(&path, is_dir).is_ignore())
                    {
                        left.by_type += 1;
                    } else {
                        let reason = if is_dir {
                            format!("{IGNORED} (a folder: nothing below it was read)")
                        } else {
                            IGNORED.to_string()
                        };
                        let id = id_of(&path);
                        found.push(Found::Skipped { path, id, reason });
                    }
                }
            }
            found
        };
        for entry in builder.build() {
            for p in refused.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
                left.hidden += 1;
                open.remove(&p);
            }
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let path = error_path(&e).unwrap_or_else(|| input.clone());
                    if tracked {
                        for f in report(&mut left, open.close_to(&path)) {
                            visit(f)?;
                        }
                        open.remove(&path);
                    }
                    let reason = match &e {
                        _ if is_loop(&e) => {
                            "symbolic link loop (a link to one of its own parent folders)".into()
                        }
                        _ => format!("cannot read: {}", strip_path(&e.to_string())),
                    };
                    visit(Found::Skipped {
                        id: id_of(&path),
                        path,
                        reason,
                    })?;
                    continue;
                }
            };
            let ft = entry.file_type();
            if tracked {
                if entry.depth() > 0 {
                    for f in report(&mut left, open.close_to(entry.path())) {
                        visit(f)?;
                    }
                    open.remove(entry.path());
                }
                if ft.is_some_and(|t| t.is_dir()) {
                    open.enter(entry.path());
                }
            }
            if entry.path_is_symlink() && !opts.follow_links {
                visit(Found::Skipped {
                    id: id_of(entry.path()),
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
                    id: id_of(entry.path()),
                    path: entry.path().to_path_buf(),
                    reason: "not a regular file".into(),
                })?;
                continue;
            }
            if opts.follow_links {
                let canon = std::fs::canonicalize(entry.path()).unwrap_or(entry.path().into());
                if !seen.insert(canon.clone()) {
                    visit(Found::Skipped {
                        id: id_of(entry.path()),
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
        for p in refused.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            left.hidden += 1;
            open.remove(&p);
        }
        for f in report(&mut left, open.close_all()) {
            visit(f)?;
        }
    }
    Ok(left)
}

/// The folders of the walk's current path, each with the names in it not yet handed over
/// (the walk is depth first, so a folder is complete when an entry outside it arrives).
#[derive(Default)]
struct OpenFolders {
    stack: Vec<(PathBuf, BTreeSet<OsString>)>,
}

impl OpenFolders {
    /// A folder the walk entered: everything in it is pending.
    fn enter(&mut self, dir: &Path) {
        let names = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
            .unwrap_or_default();
        self.stack.push((dir.to_path_buf(), names));
    }

    /// `path` was handed over (or refused by a filter of ours): no longer pending.
    fn remove(&mut self, path: &Path) {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        if let Some((_, names)) = self.stack.iter_mut().rev().find(|(d, _)| d == parent) {
            names.remove(name);
        }
    }

    /// Closes the folders `path` is not in: they are complete. Nothing is closed when
    /// `path`'s folder is not open (an entry the walk reports out of order).
    fn close_to(&mut self, path: &Path) -> Vec<(PathBuf, BTreeSet<OsString>)> {
        let Some(parent) = path.parent() else {
            return Vec::new();
        };
        let Some(at) = self.stack.iter().rposition(|(d, _)| d == parent) else {
            return Vec::new();
        };
        let mut done = self.stack.split_off(at + 1);
        done.reverse();
        done
    }

    fn close_all(&mut self) -> Vec<(PathBuf, BTreeSet<OsString>)> {
        let mut done = std::mem::take(&mut self.stack);
        done.reverse();
        done
    }
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
        let left = walk::<()>(inputs, &opts, |x| {
            match x {
                Found::File(e) => f.push(e.id),
                Found::Skipped { path, reason, .. } => s.push(format!(
                    "{}: {reason}",
                    path.file_name().unwrap().to_string_lossy()
                )),
            }
            Ok(())
        })
        .unwrap();
        (f, s, left.hidden)
    }

    fn walked(root: &Path, opts: WalkOptions) -> (Vec<String>, Vec<String>, Left) {
        let (mut f, mut s) = (Vec::new(), Vec::new());
        let left = walk::<()>(&[root.to_path_buf()], &opts, |x| {
            match x {
                Found::File(e) => f.push(e.id),
                Found::Skipped { path, reason, .. } => s.push(format!(
                    "{}: {reason}",
                    path.strip_prefix(root).unwrap().display()
                )),
            }
            Ok(())
        })
        .unwrap();
        (f, s, left)
    }

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (name, body) in files {
            let p = root.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
    }

    /// A git repository: `.gitignore` at the top and in a sub-folder (with a negation),
    /// `.ignore`, and `.git/info/exclude`; every excluded path is listed with its reason,
    /// `--no-ignore` reads them all.
    #[test]
    fn ignore_files_exclude_as_ripgrep_and_every_exclusion_is_listed() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("repo");
        write(
            &root,
            &[
                (".git/info/exclude", "secret.txt\n"),
                (".git/HEAD", "ref: refs/heads/main\n"),
                (".gitignore", "target/\n*.log\n"),
                (".ignore", "vendor/\n"),
                ("src/main.rs", "fn main() {}"),
                ("src/.gitignore", "gen_*.rs\n!gen_keep.rs\n"),
                ("src/gen_a.rs", "x"),
                ("src/gen_keep.rs", "x"),
                ("target/debug/app", "x"),
                ("vendor/lib.c", "x"),
                ("build.log", "x"),
                ("secret.txt", "x"),
                ("README", "x"),
            ],
        );
        let opts = WalkOptions {
            ignore_files: true,
            ..Default::default()
        };
        let (f, s, left) = walked(&root, opts);
        assert_eq!(
            f,
            ["repo/README", "repo/src/gen_keep.rs", "repo/src/main.rs"]
        );
        let mut listed: Vec<&str> = s.iter().map(|s| s.split(':').next().unwrap()).collect();
        listed.sort();
        assert_eq!(
            listed,
            [
                "build.log",
                "secret.txt",
                "src/gen_a.rs",
                "target",
                "vendor"
            ],
            "{s:#?}"
        );
        assert!(s.iter().all(|s| s.contains("--no-ignore")), "{s:#?}");
        assert!(s
            .iter()
            .any(|s| s.starts_with("target:") && s.contains("a folder")));
        assert_eq!(left.hidden, 4, ".git, .gitignore, .ignore, src/.gitignore");
        let (f, s, _) = walked(&root, WalkOptions::default());
        assert_eq!(
            f.len(),
            8,
            "without the rules everything not hidden is read: {f:?}"
        );
        assert!(s.is_empty());
    }

    /// `.gitignore` outside a git repository is not read (ripgrep's rule); `.ignore` is.
    #[test]
    fn gitignore_needs_a_repository_and_ignore_does_not() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("export");
        write(
            &root,
            &[
                (".gitignore", "a.txt\n"),
                (".ignore", "b.txt\n"),
                ("a.txt", "a"),
                ("b.txt", "b"),
            ],
        );
        let opts = WalkOptions {
            ignore_files: true,
            ..Default::default()
        };
        let (f, s, _) = walked(&root, opts);
        assert_eq!(f, ["export/a.txt"]);
        assert_eq!(s.len(), 1);
        assert!(s[0].starts_with("b.txt:"), "{s:?}");
    }

    #[test]
    fn types_and_globs_filter_and_are_counted() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("c");
        write(
            &root,
            &[
                ("a.rs", "x"),
                ("b.py", "x"),
                ("c.md", "x"),
                ("gen/d.rs", "x"),
                ("Cargo.lock", "x"),
            ],
        );
        let filter = |sel: &[&str], neg: &[&str], globs: &[&str]| {
            let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            WalkOptions {
                filter: Filter::new(&v(sel), &v(neg), &v(globs)).unwrap(),
                ..Default::default()
            }
        };
        let (f, s, left) = walked(&root, filter(&["rust"], &[], &[]));
        assert_eq!(f, ["c/a.rs", "c/gen/d.rs"]);
        assert!(s.is_empty());
        assert_eq!(left.by_type, 3, "b.py, c.md, Cargo.lock");
        let (f, _, left) = walked(
            &root,
            filter(&[], &["py", "markdown"], &["!gen/", "!*.lock"]),
        );
        assert_eq!(f, ["c/a.rs"]);
        assert_eq!((left.by_type, left.by_glob), (2, 2));
        let (f, _, left) = walked(&root, filter(&[], &[], &["*.md", "*.py"]));
        assert_eq!(f, ["c/b.py", "c/c.md"]);
        assert_eq!(left.by_glob, 3, "a.rs, Cargo.lock, gen/d.rs");
        let e = Filter::new(&["klingon".into()], &[], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("klingon"), "{e}");
        let e = Filter::new(&[], &[], &["a[".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("a["), "{e}");
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
