//! `wisp action create NAME DIR` builds a Cargo project for wasm32-wasip1 first.

mod common;

use common::{Env, Platform, write_file};

/// A dependency-free action: reads the params, answers with their size.
const MAIN_RS: &str = r#"use std::io::Read;
fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    eprintln!("built action ran");
    println!("{{\"built\":true,\"input_len\":{}}}", input.len());
}
"#;

fn project(root: &std::path::Path, name: &str, main_rs: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    write_file(
        &dir,
        "Cargo.toml",
        &format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n"
        ),
    );
    write_file(&dir.join("src"), "main.rs", main_rs);
    dir
}

#[test]
fn create_from_a_cargo_project_builds_it_first() {
    let env = Env::new();
    let _up = Platform::start(&env, &[]);
    let root = env.dir.path();
    let dir = project(root, "built-action", MAIN_RS);
    let target = root.join("target");

    let mut cmd = env.command();
    cmd.args(["action", "create", "built", dir.to_str().unwrap()])
        .env("CARGO_TARGET_DIR", &target);
    common::Run::of(&mut cmd).ok();
    assert!(
        target
            .join("wasm32-wasip1/release/built-action.wasm")
            .is_file()
    );
    let r = env.wisp(["invoke", "built", "a=1"]).ok().json();
    assert_eq!(r["built"], true, "{r}");
    assert!(
        r["input_len"].as_u64().unwrap() >= r#"{"a":1}"#.len() as u64,
        "{r}"
    );

    // A project that does not compile: cargo's messages, then one error line, exit 1.
    let broken = project(
        root,
        "broken-action",
        "fn main() { let x: u32 = \"no\"; }\n",
    );
    let mut cmd = env.command();
    cmd.args(["action", "create", "broken", broken.to_str().unwrap()])
        .env("CARGO_TARGET_DIR", &target);
    let run = common::Run::of(&mut cmd);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("mismatched types"), "{}", run.stderr);
    let last = run.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("error: cargo build --release --target wasm32-wasip1 failed in"),
        "{last}"
    );
    env.wisp(["action", "get", "broken"]).fails_with("HTTP 404");
}
