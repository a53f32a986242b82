//! Start-up errors of the real binary: a clear message naming the key, exit code 2.

mod common;

use std::process::Command;

fn run(args: &[&str], file: Option<&str>) -> (Option<i32>, String) {
    let dir = common::TempDir::new("startup");
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem-collector"));
    command.args(args).env_remove("TANDEM_META_PIXEL_ID").env_remove("TANDEM_GA4_MEASUREMENT_ID").env_remove("TANDEM_TIKTOK_PIXEL_ID");
    if let Some(text) = file {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).expect("write config");
        command.arg("--config").arg(path);
    }
    let output = command.output().expect("run binary");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn bad_configuration_exits_2_naming_the_key() {
    for (args, file, key) in [
        (vec!["--max-body", "1"], None, "`--max-body`"),
        (vec!["--listen", "localhost"], None, "`--listen`"),
        (vec!["--allowed-origin", "*"], None, "`--allowed-origin`"),
        (vec![], Some("[outbox]\nretry_base_ms = \"soon\"\n"), "`outbox.retry_base_ms`"),
        (vec![], Some("[meta]\npixel_id = \"123\"\n"), "`meta.access_token`"),
        (vec![], Some("listn = \"127.0.0.1:1\"\n"), "`listn`"),
        (vec!["--db", "/nonexistent-dir/for/sure/tandem.db", "--listen", "127.0.0.1:0"], None, "cannot open database"),
    ] {
        let (code, stderr) = run(&args, file);
        assert_eq!(code, Some(2), "{args:?} {file:?}: {stderr}");
        assert!(stderr.contains(key), "{args:?} {file:?}: {stderr}");
    }
}

#[test]
fn help_and_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_tandem-collector")).arg("--help").output().expect("run");
    assert_eq!(output.status.code(), Some(0));
    let usage = String::from_utf8_lossy(&output.stdout);
    for flag in ["--allowed-origin", "--collect-path", "TANDEM_COLLECT_PATH", "--cookie-domain", "TANDEM_COOKIE_DOMAIN"] {
        assert!(usage.contains(flag), "{flag} missing from --help");
    }
}
