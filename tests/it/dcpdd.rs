//! DC-PDD end to end: `miascan freq build` counts a reference corpus exactly as an
//! independent tokenisation does, and `--freq-table` gives the score the authors' formula
//! gives over transformers' log-probs (`golden-dcpdd.jsonl`,
//! scripts/fixtures/golden-dcpdd.py); a table is tied to its vocabulary and its hash to a
//! calibration.

use crate::common;
use miascan::score::freq::FreqTable;
use std::path::Path;
use std::process::Output;

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The tiny passages, and the non-member ones (the reference corpus) in their own file.
fn corpus(dir: &Path) -> (String, String) {
    let all = common::golden().join("tiny/passages.jsonl");
    let non: Vec<String> = std::fs::read_to_string(&all)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"member\": false"))
        .map(String::from)
        .collect();
    assert_eq!(non.len(), 60);
    let path = dir.join("reference.jsonl");
    std::fs::write(&path, non.join("\n") + "\n").unwrap();
    (all.display().to_string(), path.display().to_string())
}

#[test]
fn dcpdd_matches_the_authors_formula_over_an_independent_tokenisation_and_forward() {
    let dir = tempfile::tempdir().unwrap();
    let (all, reference) = corpus(dir.path());
    for arch in ["llama", "qwen2", "gemma2"] {
        let model = common::golden().join("tiny").join(arch);
        let golden = jsonl(&model.join("golden-dcpdd.jsonl"));
        let table = dir.path().join(format!("{arch}.freq"));
        let m = model.display().to_string();
        let t = table.display().to_string();
        ok(common::cli(&[
            "freq", "build", "-q", "-m", &m, &reference, "-o", &t,
        ]));
        // the counts: every token of the 60 reference passages, as transformers tokenised them
        let loaded = FreqTable::load(&table).unwrap();
        let want: Vec<u64> = golden[0]["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        assert_eq!(loaded.header.vocab_size, want.len(), "{arch}");
        assert_eq!(loaded.header.total, golden[0]["total"].as_u64().unwrap());
        assert_eq!(loaded.header.documents, 60);
        for (id, &c) in want.iter().enumerate() {
            assert_eq!(
                loaded.count(id as u32),
                Some(c),
                "{arch}: count of token {id}"
            );
        }
        // the score, every passage
        let out = dir.path().join(format!("{arch}.jsonl"));
        let o = out.display().to_string();
        ok(common::cli(&[
            "score",
            "-m",
            &m,
            "--freq-table",
            &t,
            "--scores",
            "dcpdd",
            "-o",
            &o,
            &all,
        ]));
        let got = jsonl(&out);
        assert_eq!(got.len(), golden.len() - 1);
        let mut clipped = 0;
        for (g, r) in golden[1..].iter().zip(&got) {
            assert_eq!(g["id"], r["id"]);
            let (want, have) = (
                g["dcpdd"].as_f64().unwrap(),
                r["scores"]["dcpdd"].as_f64().unwrap(),
            );
            assert!(
                (want - have).abs() < 1e-6,
                "{arch} {}: {have} vs {want}",
                g["id"]
            );
            clipped += usize::from(want < 0.01);
        }
        // at least half the passages have tokens under the clip (gemma2, which learnt its
        // members, has every member token clipped): the mean is not a constant
        assert!(clipped >= 60, "{arch}: {clipped}");
    }
}

#[test]
fn a_table_of_another_vocabulary_or_a_damaged_one_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = common::golden().join("tiny/llama").display().to_string();
    let doc = dir.path().join("doc.txt");
    std::fs::write(
        &doc,
        "The ferry leaves at nine. Tickets are sold on board.\n",
    )
    .unwrap();
    let table = dir.path().join("t.freq");
    let t = table.display().to_string();
    let d = doc.display().to_string();
    ok(common::cli(&[
        "freq", "build", "-q", "-m", &tiny, &d, "-o", &t,
    ]));
    // the SmolLM2 vocabulary is another: refused, both vocabularies named
    let smol = common::model("SmolLM2-135M-Instruct.Q4_1.gguf")
        .display()
        .to_string();
    let o = common::cli(&["score", "-m", &smol, "--freq-table", &t, &d]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("--freq-table: built with the vocabulary")
            && e.contains("512 tokens")
            && e.contains("49152 tokens"),
        "{e}"
    );
    // one byte changed: the checksum catches it
    let mut bytes = std::fs::read(&table).unwrap();
    bytes[40] ^= 0x20;
    std::fs::write(&table, &bytes).unwrap();
    let o = common::cli(&["score", "-m", &tiny, "--freq-table", &t, &d]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{e}");
    assert!(e.contains("t.freq") && e.contains("checksum"), "{e}");
    // dcpdd without a table
    let o = common::cli(&["score", "-m", &tiny, "--scores", "dcpdd", &d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--freq-table FILE"));
}

/// The tiny corpus and two tables of the tiny llama's vocabulary: `a` over the reference
/// passages, `b` over all of them.
struct Tables {
    all: String,
    reference: String,
    tiny: String,
    a: String,
    b: String,
}

fn two_tables(dir: &Path) -> Tables {
    let (all, reference) = corpus(dir);
    let tiny = common::golden().join("tiny/llama").display().to_string();
    let a = dir.join("a.freq").display().to_string();
    let b = dir.join("b.freq").display().to_string();
    ok(common::cli(&[
        "freq", "build", "-q", "-m", &tiny, &reference, "-o", &a,
    ]));
    ok(common::cli(&[
        "freq", "build", "-q", "-m", &tiny, &all, "-o", &b,
    ]));
    Tables {
        all,
        reference,
        tiny,
        a,
        b,
    }
}

#[test]
fn a_calibration_made_with_one_table_refuses_a_run_with_another() {
    let dir = tempfile::tempdir().unwrap();
    let Tables {
        all,
        reference,
        tiny,
        a,
        b,
    } = two_tables(dir.path());
    let cal = dir.path().join("cal.json").display().to_string();
    ok(common::cli(&[
        "calibrate",
        "-m",
        &tiny,
        "--freq-table",
        &a,
        "--no-lowercase",
        "--out",
        &cal,
        "--nonmembers",
        &reference,
    ]));
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cal).unwrap()).unwrap();
    assert!(c["scores"]["dcpdd"].as_array().unwrap().len() == 60);
    let sha = FreqTable::load(Path::new(&a)).unwrap().sha256().to_string();
    assert_eq!(c["settings"]["freq_table"], sha.as_str());
    // the same table: p-values; another: refused, naming the table
    ok(common::cli(&[
        "score",
        "-m",
        &tiny,
        "--freq-table",
        &a,
        "--no-lowercase",
        "--calibration",
        &cal,
        &all,
    ]));
    let o = common::cli(&[
        "score",
        "-m",
        &tiny,
        "--freq-table",
        &b,
        "--no-lowercase",
        "--calibration",
        &cal,
        &all,
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("token frequency table sha256"), "{e}");
}

#[test]
fn a_scan_with_a_table_reports_dcpdd_and_refuses_to_resume_with_another() {
    let dir = tempfile::tempdir().unwrap();
    let Tables {
        all,
        reference,
        tiny,
        a,
        b,
    } = two_tables(dir.path());
    let out = dir.path().join("scan").display().to_string();
    let scan = |table: &str, extra: &[&str]| {
        let mut args = vec![
            "scan",
            &all,
            "-q",
            "--no-lowercase",
            "-m",
            &tiny,
            "--freq-table",
            table,
            "--out",
            &out,
            "--nonmembers",
            &reference,
        ];
        args.extend(extra);
        common::cli(&args)
    };
    ok(scan(&a, &[]));
    let recs = std::fs::read_to_string(Path::new(&out).join("passages.jsonl")).unwrap();
    let lines: Vec<&str> = recs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no passage records");
    for line in lines {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let v = r["scores"]["dcpdd"].as_f64();
        // (a mean of values clipped at 0.01: at most 0.01 but for rounding)
        assert!(
            v.is_some_and(|v| (0.0..=0.01 + 1e-12).contains(&v)),
            "dcpdd in every record: {line}"
        );
    }
    let o = scan(&b, &["--resume"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("run differently"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    ok(scan(&a, &["--resume"]));
}
