//! `miascan scan` end to end with the default model: formats and skips, escaping in the
//! report, the report in a real browser, resume after `kill -9`, shards + merge.
use crate::common;

use miascan::record::PassageRecord;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary with SmolLM2 as its default model.
fn with_smollm2() -> Command {
    let mut c = common::miascan();
    c.env("MIASCAN_MODEL", common::model(common::SMOLLM2));
    c
}

fn run(args: &[&str]) -> Output {
    with_smollm2().args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A collection of `n` documents of varied length and format (text, markdown, JSONL rows,
/// CSV rows), deterministic.
fn collection(dir: &Path, n: usize) -> PathBuf {
    let root = dir.join("coll");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let words = [
        "the",
        "harbour",
        "committee",
        "met",
        "on",
        "Tuesday",
        "to",
        "discuss",
        "the",
        "new",
        "lighthouse",
        "budget",
        "and",
        "a",
        "river",
        "ferry",
        "schedule",
        "for",
        "spring",
        "while",
        "fishermen",
        "asked",
        "about",
        "nets",
        "tides",
        "weather",
    ];
    let mut text = |len: usize| -> String {
        let mut s = String::new();
        for i in 0..len {
            if i > 0 {
                s.push(if i % 17 == 0 { '\n' } else { ' ' });
            }
            s.push_str(words[rng.random_range(0..words.len())]);
        }
        s.push('.');
        s
    };
    let mut jsonl = String::new();
    let mut csv = String::from("id,text\n");
    for i in 0..n {
        let len = [5, 40, 150, 400][i % 4];
        let t = text(len);
        match i % 4 {
            0 => std::fs::write(root.join(format!("doc{i:03}.txt")), &t).unwrap(),
            1 => std::fs::write(root.join(format!("sub/doc{i:03}.md")), &t).unwrap(),
            2 => jsonl.push_str(&format!(
                "{}\n",
                serde_json::json!({"id": format!("r{i}"), "text": t})
            )),
            _ => csv.push_str(&format!("c{i},\"{}\"\n", t.replace('"', "\"\""))),
        }
    }
    std::fs::write(root.join("rows.jsonl"), jsonl).unwrap();
    std::fs::write(root.join("sub/table.csv"), csv).unwrap();
    root
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn records(dir: &Path) -> Vec<PassageRecord> {
    read(&dir.join("passages.jsonl"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// summary.json without the run's own timing.
/// The passages of one document, in order.
fn passages_of<'a>(recs: &'a [PassageRecord], doc: &str) -> Vec<&'a PassageRecord> {
    recs.iter()
        .filter(|r| r.document.as_deref() == Some(doc))
        .collect()
}

fn summary(dir: &Path) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&read(&dir.join("summary.json"))).unwrap();
    v["run"] = serde_json::Value::Null;
    v
}

#[test]
fn messy_folder_is_scanned_skips_are_listed_and_the_report_escapes_everything() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("messy");
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/index"), b"DIRC\0\0\0\x02").unwrap();
    std::fs::write(root.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    let evil = "<script>alert(1)</script> and \"><img src=x onerror=alert(2)>";
    std::fs::write(
        root.join("\"><img src=x onerror=alert(3)>.txt"),
        format!("A harbour report. {evil} The ferry leaves at noon."),
    )
    .unwrap();
    std::fs::write(
        root.join("page.html"),
        format!(
            "<html><head><script>var secret = 1;</script><style>p{{}}</style></head><body><p>Visible {}</p></body></html>",
            evil.replace('<', "&lt;")
        ),
    )
    .unwrap();
    std::fs::write(root.join("logo.png"), b"\x89PNG\r\n\x1a\n\0\0\0").unwrap();
    // no extension, a PDF: content decides (text is read, the PDF is named and skipped)
    std::fs::write(root.join("NOTICE"), "Harbour notice: the ferry is late.\n").unwrap();
    std::fs::write(root.join("scan.pdf"), b"%PDF-1.4\n%\xe2\xe3\n").unwrap();
    std::fs::write(root.join("latin1.txt"), b"caf\xe9 au lait").unwrap();
    std::fs::write(root.join("empty.md"), b"").unwrap();
    std::fs::write(
        root.join("rows.jsonl"),
        "{\"text\": \"fine row\"}\n{broken\n",
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(
        &mut gz,
        "compressed notes about tides ".repeat(50).as_bytes(),
    )
    .unwrap();
    let mut gz = gz.finish().unwrap();
    gz.truncate(gz.len() / 2);
    std::fs::write(root.join("cut.txt.gz"), gz).unwrap();
    // a compression bomb: 64 MiB of one letter in ~64 KB, skipped by its ratio, not scored
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut bomb, &vec![b'a'; 64 << 20]).unwrap();
    std::fs::write(root.join("bomb.txt.gz"), bomb.finish().unwrap()).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&root, root.join("loop")).unwrap();

    let out = d.path().join("out");
    let o = run(&["scan", p(&root), "-o", p(&out), "--no-lowercase", "-q"]);
    assert_eq!(o.status.code(), Some(5), "skips → exit 5: {}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_str(&read(&out.join("summary.json"))).unwrap();
    let skipped: Vec<String> = s["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            format!(
                "{} | {}",
                k["source"].as_str().unwrap(),
                k["reason"].as_str().unwrap()
            )
        })
        .collect();
    let has = |file: &str, reason: &str| {
        skipped
            .iter()
            .any(|k| k.contains(file) && k.contains(reason))
    };
    assert!(has("logo.png", "binary data (NUL byte"), "{skipped:#?}");
    assert!(has("scan.pdf", "PDF: malformed"), "{skipped:#?}");
    assert!(
        has("latin1.txt", "invalid UTF-8 at byte offset 3"),
        "{skipped:#?}"
    );
    assert!(has("empty.md", "empty"), "{skipped:#?}");
    assert!(has("rows.jsonl:2", "malformed JSON"), "{skipped:#?}");
    assert!(has("cut.txt.gz", "cannot decompress"), "{skipped:#?}");
    assert!(
        has("bomb.txt.gz", "expands more than 200:1"),
        "{skipped:#?}"
    );
    assert!(has("loop", "symbolic link"), "{skipped:#?}");
    assert!(
        !skipped.iter().any(|k| k.contains(".git")),
        "hidden folders are left out"
    );
    assert_eq!(s["run"]["hidden_left_out"], 1, "the .git folder is counted");
    assert_eq!(
        s["documents"], 4,
        "the evil file, the page, NOTICE and the fine row"
    );

    // the HTML page's script and style are never scored; its visible text is
    let recs = records(&out);
    let page = recs
        .iter()
        .find(|r| r.document.as_deref() == Some("messy/page.html"))
        .unwrap();
    assert!(page.n_tokens > 10);
    let heat = read(&out.join("heatmaps.jsonl"));
    assert!(!heat.contains("secret"), "script content was scored");
    // ranks: 1 = the model's first guess; a token with p > 0.5 must be it
    let mut checked = 0;
    for l in heat.lines() {
        let r: PassageRecord = serde_json::from_str(l).unwrap();
        let (lp, ranks) = (r.token_logprobs.unwrap(), r.token_ranks.unwrap());
        assert_eq!(lp.len(), ranks.len());
        for (l, k) in lp.iter().zip(&ranks) {
            assert!(*k >= 1);
            if l.exp() > 0.5 {
                assert_eq!(*k, 1, "p = {}", l.exp());
                checked += 1;
            }
        }
    }
    assert!(checked > 0);

    // everything shown is escaped: no tag from the data survives
    let html = read(&out.join("report.html"));
    assert!(
        !html.to_lowercase().contains("<script"),
        "a script tag in the report"
    );
    assert!(
        !html.to_lowercase().contains("<img"),
        "an img tag in the report"
    );
    assert!(
        html.contains("&lt;img src=x onerror=alert(3)&gt;.txt"),
        "the file name is shown as text"
    );
    // the passage's tokens ("<", "script", ">" ...) are shown escaped in its heat map
    assert!(html.contains("messy/&quot;&gt;&lt;img"), "{html}");
    assert!(
        html.contains("&gt;</span>")
            || html.contains("&gt;\"</span>")
            || html.matches("&lt;").count() > 5,
        "the text is shown as text"
    );

    // passages.jsonl round-trips through eval --scored's reader
    let back = miascan::input::scored::read_scored(&[out.join("passages.jsonl")], None).unwrap();
    assert_eq!(back.len(), recs.len());
}

/// Loads the report in headless Chromium and fails on any console message (an error, a
/// blocked script, a blocked load). Chromium comes from Debian's package (installed by
/// .ci/run); where it is absent the test says so, and fails when MIASCAN_REQUIRE_BROWSER
/// is set (CI).
#[test]
fn the_report_loads_in_a_browser_without_console_errors() {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(chromium) = chromium else {
        assert!(
            std::env::var_os("MIASCAN_REQUIRE_BROWSER").is_none(),
            "no chromium, but MIASCAN_REQUIRE_BROWSER is set"
        );
        eprintln!("NOT RUN: no chromium on this machine (apt-get install chromium)");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let root = collection(d.path(), 8);
    std::fs::write(
        root.join("x<script>alert(1)<.txt"),
        "<img src=x onerror=alert(1)> text",
    )
    .unwrap();
    let out = d.path().join("out");
    let o = run(&["scan", p(&root), "-o", p(&out), "--no-lowercase", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let url = format!("file://{}", p(&out.join("report.html")));
    let o = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            &url,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "chromium failed: {}", stderr(&o));
    let console: Vec<String> = stderr(&o)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(dom.contains("Top documents"), "the page rendered");
}

#[test]
fn a_scan_killed_at_random_points_resumes_to_the_same_outputs() {
    let d = tempfile::tempdir().unwrap();
    let root = collection(d.path(), 48);
    let common = ["--no-lowercase", "--batch-tokens", "128", "-q"];
    let full = d.path().join("full");
    let started = std::time::Instant::now();
    let o = run(&[&["scan", p(&root), "-o", p(&full)][..], &common].concat());
    let total = started.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let n_commits = read(&full.join("scan.log.jsonl"))
        .matches("\"commit\"")
        .count();
    assert!(n_commits >= 10, "many groups: {n_commits}");

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for k in 0..3 {
        let dir = d.path().join(format!("killed{k}"));
        let mut kills = 0;
        // kill up to three times, then let it finish
        loop {
            let mut args = vec!["scan", p(&root), "-o", p(&dir)];
            args.extend(common);
            if dir.join("scan.log.jsonl").exists() {
                args.push("--resume");
            }
            if kills < 3 {
                let mut child = with_smollm2().args(&args).spawn().unwrap();
                if kills == 0 {
                    // the first kill lands inside the log for sure: once k + 2 groups are
                    // committed (the later ones at random moments)
                    let log = dir.join("scan.log.jsonl");
                    let commits = || {
                        std::fs::read_to_string(&log).map_or(0, |t| t.matches("\"commit\"").count())
                    };
                    while commits() < k + 2 && child.try_wait().unwrap().is_none() {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                } else {
                    let at = rng.random_range(0.05..1.0) * total.as_secs_f64();
                    std::thread::sleep(std::time::Duration::from_secs_f64(at));
                }
                let done = child.try_wait().unwrap().is_some();
                child.kill().ok(); // SIGKILL
                child.wait().unwrap();
                if kills == 0 {
                    let c = read(&dir.join("scan.log.jsonl"))
                        .matches("\"commit\"")
                        .count();
                    assert!(
                        !done && c >= k + 2 && c < n_commits && !dir.join("summary.json").exists(),
                        "round {k}: the kill must land inside a partly written log ({c} of \
                         {n_commits} groups committed, finished: {done})"
                    );
                }
                kills += 1;
                if done {
                    break;
                }
            } else {
                let o = run(&args);
                assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
                break;
            }
        }
        if !dir.join("summary.json").exists() {
            let o = run(&[&["scan", p(&root), "-o", p(&dir), "--resume"][..], &common].concat());
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        }
        assert_eq!(
            read(&dir.join("passages.jsonl")),
            read(&full.join("passages.jsonl")),
            "passages after {kills} kills (round {k})"
        );
        assert_eq!(
            read(&dir.join("documents.csv")),
            read(&full.join("documents.csv"))
        );
        assert_eq!(summary(&dir), summary(&full));
    }

    // resuming with other settings is refused, saying what differs
    let o = run(&[
        "scan",
        p(&root),
        "-o",
        p(&full),
        "--resume",
        "--passage-tokens",
        "64",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("passage_tokens: 128 vs 64"),
        "{}",
        stderr(&o)
    );
    // and a second scan into a finished directory needs --resume or --force
    let o = run(&[&["scan", p(&root), "-o", p(&full)][..], &common].concat());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));
}

#[test]
fn three_shards_merged_equal_one_scan() {
    let d = tempfile::tempdir().unwrap();
    let root = collection(d.path(), 24);
    let common = ["--no-lowercase", "-q"];
    let single = d.path().join("single");
    let o = run(&[&["scan", p(&root), "-o", p(&single)][..], &common].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut dirs = Vec::new();
    for i in 0..3 {
        let dir = d.path().join(format!("shard{i}"));
        let shard = format!("{i}/3");
        let o = run(&[
            &["scan", p(&root), "-o", p(&dir), "--shard", &shard][..],
            &common,
        ]
        .concat());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        dirs.push(dir);
    }
    let merged = d.path().join("merged");
    // a missing shard is reported
    let o = run(&["merge", p(&dirs[0]), p(&dirs[2]), "-o", p(&merged), "-q"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("missing shard(s) 1/3"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "merge",
        p(&dirs[0]),
        p(&dirs[0]),
        p(&dirs[1]),
        p(&dirs[2]),
        "-o",
        p(&merged),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("shard 0/3 given 2 times"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "merge",
        p(&dirs[0]),
        p(&dirs[1]),
        p(&dirs[2]),
        "-o",
        p(&merged),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let by_id = |v: Vec<PassageRecord>| {
        let mut v = v;
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    };
    let (a, b) = (by_id(records(&single)), by_id(records(&merged)));
    assert_eq!(a.len(), b.len());
    let mut max_diff = 0f64;
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.id, x.n_tokens, x.span), (&y.id, y.n_tokens, y.span));
        assert_eq!(
            x.scores.0.len(),
            y.scores.0.len(),
            "{}: the same scores",
            x.id
        );
        for ((n1, v1), (n2, v2)) in x.scores.0.iter().zip(&y.scores.0) {
            assert_eq!(n1, n2);
            if let (Some(v1), Some(v2)) = (v1, v2) {
                max_diff = max_diff.max((v1 - v2).abs());
            } else {
                assert_eq!(v1, v2);
            }
        }
    }
    // packing passages with other neighbours may move the last bits of a matmul
    assert!(max_diff < 1e-5, "scores differ by {max_diff}");
    let docs = |dir: &Path| {
        let mut lines: Vec<String> = read(&dir.join("documents.csv"))
            .lines()
            .map(|l| l.split(',').take(5).collect::<Vec<_>>().join(","))
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(docs(&single), docs(&merged));
    let (s1, s2) = (summary(&single), summary(&merged));
    assert_eq!(s1["documents"], s2["documents"]);
    assert_eq!(s1["passages"], s2["passages"]);
    assert_eq!(s1["tokens"], s2["tokens"]);
    // the run header is typed: a scan and a merge write the same keys, and the merge sums
    // its shards' tokens (which, without resumes, are the single scan's)
    let run = |dir: &Path| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&read(&dir.join("summary.json"))).unwrap()["run"]
            .clone()
    };
    let (r1, r2) = (run(&single), run(&merged));
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&r1), keys(&r2));
    assert_eq!(r1["tokens_scored"], r2["tokens_scored"]);
    assert_eq!(r2["merged_from"].as_array().unwrap().len(), 3);
}

/// `miascan score … | head -1` and `scan`'s siblings: a reader that goes away is not an
/// error. The reader closes the pipe after the first line; miascan must exit 0, silently.
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("many.jsonl");
    let lines: String = (0..200)
        .map(|i| format!("{{\"text\": \"passage number {i} about the harbour and its ferry.\"}}\n"))
        .collect();
    std::fs::write(&f, lines).unwrap();
    let mut child = with_smollm2()
        .args(["score", p(&f), "--no-lowercase", "--batch-tokens", "64"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("{\"id\""), "{first}");
    // stdout is dropped here: the pipe is closed
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "no message: {}", stderr(&o));
}

/// A git repository scanned as ripgrep reads it: what `.gitignore` and `.ignore` exclude is
/// listed in `excluded` (not a problem: exit 0), `--type` narrows and is counted, and every
/// passage of a text file names its lines, checked against a count over the file itself.
#[test]
fn a_code_repository_is_read_as_ripgrep_reads_it_with_line_numbers() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("repo");
    let code: String = (1..=60)
        .map(|i| {
            format!(
                "fn harbour_{i}(tide: u32) -> u32 {{ tide * {i} + {} }}\n",
                i % 7
            )
        })
        .collect();
    for (name, body) in [
        (".git/HEAD", "ref: refs/heads/main\n".to_string()),
        (".gitignore", "target/\n*.log\n".to_string()),
        (".ignore", "vendor/\n".to_string()),
        ("src/main.rs", code.clone()),
        (
            "README",
            "The harbour crate computes ferry tides.\n".to_string(),
        ),
        ("target/gen.rs", "fn generated() {}\n".to_string()),
        ("vendor/lib.rs", "fn vendored() {}\n".to_string()),
        ("build.log", "compiling harbour\n".to_string()),
    ] {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    let out = d.path().join("out");
    let args = ["--no-lowercase", "-q", "--passage-tokens", "48"];
    let o = run(&[&["scan", p(&root), "-o", p(&out)][..], &args].concat());
    assert_eq!(
        o.status.code(),
        Some(0),
        "exclusions are not skips: {}",
        stderr(&o)
    );
    let s: serde_json::Value = serde_json::from_str(&read(&out.join("summary.json"))).unwrap();
    let excluded: Vec<String> = s["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["source"]
                .as_str()
                .unwrap()
                .rsplit("repo/")
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(excluded, ["build.log", "target", "vendor"], "{s:#}");
    assert_eq!(s["skipped"].as_array().unwrap().len(), 0);
    assert_eq!(s["documents"], 2, "README and src/main.rs");
    let recs = records(&out);
    let code_recs = passages_of(&recs, "repo/src/main.rs");
    assert!(code_recs.len() >= 3, "{} passages", code_recs.len());
    let line_of = |pos: u64| code[..pos as usize].matches('\n').count() as u64 + 1;
    let mut last = 0;
    for r in &code_recs {
        let [a, b] = r.span.unwrap();
        assert_eq!(r.lines, Some([line_of(a), line_of(b - 1)]), "{}", r.id);
        last = last.max(r.lines.unwrap()[1]);
    }
    assert_eq!(last, 60, "the last passage ends on the file's last line");
    let report = read(&out.join("report.html"));
    assert!(
        report.contains("Left out by ignore files"),
        "the report lists exclusions"
    );
    assert!(report.contains(" · lines "), "heat maps name their lines");

    // --no-ignore reads everything; --type rust keeps Rust files and counts the rest
    let out2 = d.path().join("out2");
    let o = run(&[
        &[
            "scan",
            p(&root),
            "-o",
            p(&out2),
            "--no-ignore",
            "--type",
            "rust",
        ][..],
        &args,
    ]
    .concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_str(&read(&out2.join("summary.json"))).unwrap();
    assert_eq!(
        s["documents"], 3,
        "src/main.rs, target/gen.rs, vendor/lib.rs: {s:#}"
    );
    assert_eq!(s["excluded"].as_array().unwrap().len(), 0);
    assert_eq!(s["run"]["type_left_out"], 2, "README and build.log");
    let o = run(&["scan", p(&root), "-o", p(&out2), "--type", "klingon"]);
    assert_eq!(o.status.code(), Some(2), "an unknown type is a usage error");
    assert!(stderr(&o).contains("klingon"), "{}", stderr(&o));
}

/// Books, papers and office files in one folder: every readable one scored, every
/// unreadable one skipped naming why (exit 5: something was skipped); PDF passages name
/// their pages in the id, the record and the report, and the pages agree with the text's
/// page starts.
#[test]
fn books_papers_and_office_files_are_scanned_and_pdf_passages_name_their_pages() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("case");
    std::fs::create_dir_all(&root).unwrap();
    for (from, to) in [
        ("pdf/paper.pdf", "paper.pdf"),
        ("pdf/locked.pdf", "locked.pdf"),
        ("pdf/scanned.pdf", "scanned.pdf"),
        ("epub/book.epub", "book.epub"),
        ("office/letter.docx", "letter.docx"),
        ("office/letter.odt", "letter.odt"),
        ("office/bomb.docx", "bomb.docx"),
    ] {
        std::fs::copy(data.join(from), root.join(to)).unwrap();
    }
    let out = d.path().join("out");
    let o = run(&[
        "scan",
        p(&root),
        "-o",
        p(&out),
        "-q",
        "--no-lowercase",
        "--passage-tokens",
        "24",
    ]);
    assert_eq!(o.status.code(), Some(5), "skips: exit 5: {}", stderr(&o));
    let s = summary(&out);
    let skipped: Vec<String> = s["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            format!(
                "{} {}",
                k["source"].as_str().unwrap().rsplit('/').next().unwrap(),
                k["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(
        skipped[0].starts_with("bomb.docx ") && skipped[0].contains("ZIP bomb"),
        "{skipped:?}"
    );
    assert!(
        skipped[1].starts_with("locked.pdf PDF: encrypted"),
        "{skipped:?}"
    );
    assert!(
        skipped[2].starts_with("scanned.pdf PDF: no text layer"),
        "{skipped:?}"
    );
    // 3 EPUB parts, the DOCX, the ODT, the PDF
    assert_eq!(s["documents"], 6, "{s:#}");
    let recs = records(&out);
    let pdf = passages_of(&recs, "case/paper.pdf");
    assert!(pdf.len() >= 3, "{} passages", pdf.len());
    let (mut first, mut last) = (u64::MAX, 0);
    for r in &pdf {
        let [a, b] = r.pages.expect("a PDF passage names its pages");
        assert!(a <= b && b <= 3, "{}: {a}-{b}", r.id);
        let want = if a == b {
            format!(".page-{a}")
        } else {
            format!(".pages-{a}-{b}")
        };
        assert!(r.id.ends_with(&want), "{} names {want}", r.id);
        assert!(r.lines.is_none(), "a PDF's text has no file lines");
        first = first.min(a);
        last = last.max(b);
    }
    assert_eq!((first, last), (1, 3), "the passages cover pages 1 to 3");
    assert!(
        pdf.iter()
            .any(|r| r.pages.unwrap()[0] < r.pages.unwrap()[1]),
        "the sentence over the page break is one passage"
    );
    let office: Vec<_> = recs
        .iter()
        .filter(|r| {
            r.document
                .as_deref()
                .is_some_and(|d| d.ends_with("letter.docx") || d.ends_with("letter.odt"))
        })
        .collect();
    assert!(office
        .iter()
        .all(|r| r.pages.is_none() && r.lines.is_none()));
    assert!(recs
        .iter()
        .any(|r| r.document.as_deref() == Some("case/book.epub#text/c-tides")));
}

/// `scan --nonmembers` calibrates first, keeps the calibration beside the results, decides
/// with it, and a resume recomputes the same calibration (the header's hash matches).
#[test]
fn nonmembers_given_to_scan_calibrate_it_and_a_resume_matches() {
    let d = tempfile::tempdir().unwrap();
    let coll = d.path().join("coll");
    let non = d.path().join("non");
    std::fs::create_dir_all(&coll).unwrap();
    std::fs::create_dir_all(&non).unwrap();
    std::fs::write(
        coll.join("a.txt"),
        "The harbour committee met on Tuesday to discuss the lighthouse budget.",
    )
    .unwrap();
    let body: String = (0..40)
        .map(|i| format!("Note {i}: the ferry left the slip at {i} past the hour with cargo. "))
        .collect();
    std::fs::write(non.join("notes.txt"), body).unwrap();
    let out = d.path().join("out");
    let args = ["--no-lowercase", "-q", "--passage-tokens", "24"];
    let scan = |extra: &[&str]| {
        run(&[
            &["scan", p(&coll), "-o", p(&out), "--nonmembers", p(&non)][..],
            &args,
            extra,
        ]
        .concat())
    };
    let o = scan(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cal: serde_json::Value =
        serde_json::from_str(&read(&out.join("calibration.json"))).unwrap();
    assert_eq!(
        cal["settings"]["passage_tokens"], 24,
        "cut as the scan cuts"
    );
    let n = cal["n"].as_u64().unwrap();
    assert!(n >= 10, "{n} non-member passages");
    let s: serde_json::Value = serde_json::from_str(&read(&out.join("summary.json"))).unwrap();
    assert_eq!(s["verdict"]["calibration_n"], n);
    assert!(s["verdict"]["decided_by"].is_string(), "{s:#}");
    assert!(records(&out).iter().all(|r| r.p_values.is_some()));
    let o = scan(&["--resume"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "the same calibration resumes: {}",
        stderr(&o)
    );
    let o = run(&[
        &["scan", p(&coll), "-o", p(&out), "--nonmembers", p(&non)][..],
        &["--calibration", p(&out.join("calibration.json"))],
    ]
    .concat());
    assert_eq!(
        o.status.code(),
        Some(2),
        "one source of calibration: {}",
        stderr(&o)
    );
}

/// A whole scan is one library call (`scan::conduct::conduct`), and it writes what the
/// command line writes for the same settings, byte for byte.
#[test]
fn a_whole_scan_is_one_library_call_equal_to_the_command_line() {
    use miascan::chunk::ChunkOptions;
    use miascan::input::walk::WalkOptions;
    use miascan::input::{CollectOptions, ReadOptions};
    use miascan::models::{ModelSpec, Models};
    use miascan::scan::conduct::{conduct, Event, ScanJob, Start};
    use miascan::scan::ScanOptions;
    use miascan::scorer::ScoreOptions;
    let d = tempfile::tempdir().unwrap();
    let docs = d.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    let texts = common::jsonl_texts(&common::golden().join("tiny/passages.jsonl"));
    for (i, body) in texts.chunks(10).take(4).enumerate() {
        std::fs::write(docs.join(format!("doc{i}.txt")), body.join("\n\n")).unwrap();
    }
    let model = common::golden().join("tiny/llama");
    let models = Models::load(
        &ModelSpec::new(model.to_str().unwrap()),
        ScoreOptions {
            lowercase: false,
            ..ScoreOptions::default()
        },
    )
    .unwrap();
    let job = ScanJob {
        inputs: vec![docs.clone()],
        out: d.path().join("library"),
        options: ScanOptions {
            collect: CollectOptions {
                read: ReadOptions::default(),
                walk: WalkOptions {
                    ignore_files: true,
                    ..WalkOptions::default()
                },
                strict: false,
                relative_ids: true,
                segment_bytes: 1 << 20,
                ..CollectOptions::default()
            },
            chunk: ChunkOptions {
                passage_tokens: 64,
                overlap: 0,
            },
            shard: None,
        },
        fdr: 0.05,
        heatmaps: 2,
        start: Start::New,
    };
    let mut scanned = 0;
    let o = conduct(&job, &models, None, &mut |e| {
        if let Event::Scanned(s) = e {
            scanned = s.passages;
        }
    })
    .unwrap();
    assert!(scanned > 4 && o.summary.passages == scanned, "{scanned}");
    assert_eq!(o.summary.documents, 4);
    let cli = d.path().join("cli");
    let out = common::miascan()
        .args([
            "scan",
            "-q",
            "--no-lowercase",
            "--passage-tokens",
            "64",
            "--heatmaps",
            "2",
            "-m",
        ])
        .arg(&model)
        .arg(&docs)
        .arg("-o")
        .arg(&cli)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["passages.jsonl", "documents.csv", "heatmaps.jsonl"] {
        let (a, b) = (
            std::fs::read(job.out.join(f)).unwrap(),
            std::fs::read(cli.join(f)).unwrap(),
        );
        assert!(
            !a.is_empty() && a == b,
            "{f} differs between the library call and the CLI"
        );
    }
}
