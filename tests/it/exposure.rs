//! `miascan exposure` on the canary checkpoint (tests/data/canary, made by
//! scripts/fixtures/make-canary-model.py): canaries inserted into the training data 1, 2, 4, 8 and 16
//! times rank high among random fills of their template, and never-inserted controls get
//! uniform p-values (the null the p-value is exact under).

use crate::common;
use rand::{Rng, SeedableRng};

fn canary_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/canary")
}

fn exposure(args: &[String]) -> std::process::Output {
    common::miascan()
        .arg("exposure")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn inserted_canaries_are_exposed_and_controls_are_uniform() {
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(canary_dir().join("canaries.json")).unwrap())
            .unwrap();
    let template = spec["template"].as_str().unwrap().to_string();
    let canaries: Vec<(String, u64)> = spec["canaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["secret"].as_str().unwrap().into(),
                c["insertions"].as_u64().unwrap(),
            )
        })
        .collect();
    // controls: the fixture's 20, and 200 more random fills drawn here (never trained on;
    // a collision with a trained fill has probability below 1e-3)
    let mut controls: Vec<String> = spec["controls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().into())
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2019);
    for _ in 0..200 {
        let digits: String = (0..6)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        controls.push(template.replace("{digits:6}", &digits));
    }
    let mut args: Vec<String> = vec![
        "-m".into(),
        canary_dir().display().to_string(),
        "--template".into(),
        template.clone(),
        "--samples".into(),
        "1000".into(),
    ];
    for s in canaries.iter().map(|c| &c.0).chain(&controls) {
        args.push("--secret".into());
        args.push(s.clone());
    }
    let o = exposure(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), canaries.len() + controls.len());
    let f = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap();
    for (r, (secret, n)) in rows.iter().zip(&canaries) {
        assert_eq!(r["secret"].as_str(), Some(secret.as_str()));
        assert_eq!(r["fills"], 1000);
        assert_eq!(r["enumerated"], false);
        eprintln!(
            "canary x{n:>2}: rank {:>4}, p {:.4}, exposure {:.2}, extrapolated {:.2} bits",
            r["rank"],
            f(r, "p_value"),
            f(r, "exposure"),
            f(r, "exposure_extrapolated")
        );
        if *n >= 4 {
            assert!(f(r, "p_value") <= 0.01, "x{n}: {r}");
        } else {
            // seen once or twice: weakly exposed, but each in the top quarter of its fills
            // (four never-seen secrets would all be there with probability 0.25^4 = 0.004)
            assert!(f(r, "p_value") <= 0.25, "x{n}: {r}");
        }
        if *n == 16 {
            assert_eq!(r["rank"], 1, "x16: {r}");
            assert!(f(r, "exposure_extrapolated") >= 15.0, "x16: {r}");
        }
    }
    let mut p: Vec<f64> = rows[canaries.len()..]
        .iter()
        .map(|r| f(r, "p_value"))
        .collect();
    p.sort_by(f64::total_cmp);
    let n = p.len() as f64;
    let ks = p
        .iter()
        .enumerate()
        .map(|(i, &x)| ((i + 1) as f64 / n - x).max(x - i as f64 / n))
        .fold(0f64, f64::max);
    let mean = p.iter().sum::<f64>() / n;
    let low = p.iter().filter(|&&x| x <= 0.05).count() as f64 / n;
    eprintln!(
        "controls: n {n}, mean p {mean:.3}, KS D {ks:.3} (1% critical {:.3}), p <= 0.05: {low:.3}, min p {:.4}",
        1.63 / n.sqrt(),
        p[0]
    );
    assert!(
        ks < 1.63 / n.sqrt(),
        "control p-values are not uniform: D = {ks}"
    );
    assert!((0.4..0.6).contains(&mean), "mean control p-value {mean}");
    assert!(low <= 0.1, "{low} of the controls at p <= 0.05");
}

#[test]
fn small_spaces_are_enumerated_and_bad_secrets_refused() {
    let m = canary_dir().display().to_string();
    let args = |secret: &str| -> Vec<String> {
        [
            "-m",
            &m,
            "--template",
            "my account number is {digits:2}",
            "--secret",
            secret,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let o = exposure(&args("my account number is 42"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // every other fill of the 100 is compared: the p-value and exposure are exact
    assert_eq!(
        (r["enumerated"].as_bool(), r["fills"].as_u64()),
        (Some(true), Some(99))
    );
    let rank = r["rank"].as_f64().unwrap();
    assert!((r["exposure"].as_f64().unwrap() - (100f64.log2() - rank.log2())).abs() < 1e-9);
    let o = exposure(&args("my account number is 4x"));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a fill of the template"));
}
