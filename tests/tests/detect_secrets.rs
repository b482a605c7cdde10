//! Our redaction against detect-secrets (`PyPI`), side by side on the same 472 strings.
//!
//! Ignored by default: it needs a Python with detect-secrets, given by
//! `HH_DETECT_SECRETS_PYTHON`. `scripts/detect_secrets_compare.sh` installs it into
//! `target/detect-secrets-venv` and runs this test.
//!
//! Ours: a case is caught when no 8-character piece of the secret is in the exported span
//! (real spans, through the real export path). Theirs: a case is caught when
//! `detect-secrets scan` reports any finding in a file holding the string, tried as `.txt`,
//! `.py` and `.yaml` (their keyword rules depend on the file type; any of the three counts).

mod secret_cases;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use honeyhive_runtime::testing::Recorder;
use secret_cases::{PLACES, exported_text, leaks, run, secrets, text_in};

const SCAN: &str = r"
import os, sys
from detect_secrets import SecretsCollection
from detect_secrets.settings import default_settings
d = sys.argv[1]
paths = [os.path.join(d, f) for f in sorted(os.listdir(d))]
found = SecretsCollection()
with default_settings():
    found.scan_files(*paths, num_processors=1)
for filename, _ in found:
    print(os.path.basename(filename).split('.')[0])
";

fn detect_secrets_hits(python: &str, texts: &[String]) -> BTreeSet<usize> {
    let dir = std::env::temp_dir().join(format!("hh-detect-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, text) in texts.iter().enumerate() {
        for ext in ["txt", "py", "yaml"] {
            std::fs::write(dir.join(format!("{i}.{ext}")), format!("{text}\n")).unwrap();
        }
    }
    let out = Command::new(python)
        .args(["-c", SCAN])
        .arg(Path::new(&dir))
        .output()
        .expect("run the detect-secrets python");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "detect-secrets failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

#[test]
#[ignore = "needs detect-secrets: run scripts/detect_secrets_compare.sh"]
fn our_recall_is_at_least_detect_secrets_on_the_same_strings() {
    let python = std::env::var("HH_DETECT_SECRETS_PYTHON")
        .expect("HH_DETECT_SECRETS_PYTHON: a python with detect-secrets installed");
    let rec = Recorder::start();
    let mut texts = Vec::new();
    let mut ours = Vec::new();
    let mut labels = Vec::new();
    let mut seen = 0;
    for secret in secrets() {
        for place in PLACES {
            let text = text_in(place, &secret);
            run(place, &text);
            let spans = rec.spans();
            let exported: String = spans[seen..].iter().map(exported_text).collect();
            seen = spans.len();
            ours.push(!leaks(&secret.secret, &exported));
            labels.push((secret.format, place));
            texts.push(text);
        }
    }
    let theirs = detect_secrets_hits(&python, &texts);
    let ours_count = ours.iter().filter(|c| **c).count();
    let theirs_count = theirs.len();
    println!("format                          ours  detect-secrets (of 8 places)");
    for (k, chunk) in labels.chunks(PLACES.len()).enumerate() {
        let cases = k * PLACES.len()..(k + 1) * PLACES.len();
        let o = cases.clone().filter(|&i| ours[i]).count();
        let t = cases.filter(|i| theirs.contains(i)).count();
        println!("{:<32}{o:>4}{t:>8}", chunk[0].0);
    }
    let total = texts.len();
    println!("recall: ours {ours_count}/{total}, detect-secrets {theirs_count}/{total}");
    assert!(
        ours_count >= theirs_count,
        "ours {ours_count} < detect-secrets {theirs_count}"
    );
    // Every case detect-secrets catches, we catch too.
    let missed: Vec<_> = theirs
        .iter()
        .filter(|&&i| !ours[i])
        .map(|&i| labels[i])
        .collect();
    assert!(
        missed.is_empty(),
        "caught by detect-secrets only: {missed:?}"
    );
}
