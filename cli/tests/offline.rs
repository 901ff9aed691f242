//! The `wisp` binary without a server: config handling, completions, and the errors that must
//! be caught before (or instead of) any request.

mod common;

use common::{Env, free_port, write_file};

#[test]
fn completions_cover_every_verb() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let run = env.wisp(["completions", shell]).ok();
        for verb in [
            "action",
            "activation",
            "package",
            "namespace",
            "property",
            "admin",
            "up",
            "invoke",
            "url",
        ] {
            assert!(run.stdout.contains(verb), "{shell} completions lack {verb}");
        }
    }
    assert!(
        env.wisp(["completions", "bash"])
            .ok()
            .stdout
            .contains("complete -F _wisp")
    );
    // A usage error is clap's (exit status 2, with the accepted values).
    let bad = env.wisp(["completions", "tcsh"]);
    assert_eq!(bad.code, Some(2));
    assert!(
        bad.stderr.contains("tcsh") && bad.stderr.contains("bash"),
        "{}",
        bad.stderr
    );
}

#[test]
fn property_set_get_unset_keep_other_lines() {
    let env = Env::new();
    std::fs::write(
        env.config_file(),
        "# mine\nNAMESPACE=guest\nAPIGW_ACCESS_TOKEN=tok\n",
    )
    .unwrap();
    env.wisp([
        "property",
        "set",
        "--apihost",
        "127.0.0.1:9",
        "--auth",
        "u:k",
    ])
    .ok();
    let text = std::fs::read_to_string(env.config_file()).unwrap();
    assert_eq!(
        text,
        "# mine\nNAMESPACE=guest\nAPIGW_ACCESS_TOKEN=tok\nAPIHOST=127.0.0.1:9\nAUTH=u:k\n"
    );
    // A loopback host without a scheme means http (others https, as in wsk).
    let get = env.wisp(["property", "get", "--apihost"]).ok();
    assert_eq!(get.stdout.trim(), "whisk API host  http://127.0.0.1:9");
    let get = env.wisp(["property", "get", "--auth"]).ok();
    assert_eq!(get.stdout.trim(), "whisk auth      u:k");
    let all = env.wisp(["--json", "property", "get"]).ok().json();
    assert_eq!(all["apihost"], "http://127.0.0.1:9");
    assert_eq!(all["auth"], "u:k");
    assert_eq!(all["config"], env.config_file().to_str().unwrap());

    // Environment overrides the file.
    let mut cmd = env.command();
    cmd.args(["--json", "property", "get"])
        .env("WISP_APIHOST", "wisp.example.com")
        .env("WISP_AUTH", "x:y");
    let run = common::Run::of(&mut cmd).ok().json();
    assert_eq!(run["apihost"], "https://wisp.example.com");
    assert_eq!(run["auth"], "x:y");

    env.wisp(["property", "unset", "--auth"]).ok();
    let text = std::fs::read_to_string(env.config_file()).unwrap();
    assert_eq!(
        text,
        "# mine\nNAMESPACE=guest\nAPIGW_ACCESS_TOKEN=tok\nAPIHOST=127.0.0.1:9\n"
    );
    let get = env.wisp(["property", "get", "--auth"]).ok();
    assert_eq!(get.stdout.trim(), "whisk auth      (not set)");
    env.wisp(["action", "list"])
        .fails_with("no auth key configured");
    env.wisp(["property", "set"]).fails_with("nothing to set");
    env.wisp(["property", "set", "--auth", "nocolon"])
        .fails_with("UUID:KEY");
    env.wisp(["property", "set", "--apihost", "ftp://x"])
        .fails_with("http or https");
}

#[test]
fn unconfigured_cli_says_how_to_configure() {
    let env = Env::new();
    env.wisp(["action", "list"])
        .fails_with("no API host configured: start a local platform with `wisp up`");
}

#[test]
fn unreachable_server_is_one_clear_line() {
    let env = Env::new();
    let port = free_port();
    let host = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["action", "list"],
        vec!["invoke", "hello", "name=x"],
        vec!["activation", "list"],
        vec!["namespace", "list"],
        vec!["package", "list"],
    ] {
        let mut full = vec!["--apihost", host.as_str(), "--auth", "u:k"];
        full.extend(args);
        let line = env.wisp(&full).fails_with(&format!(
            "cannot reach wisp at {host}: connection refused — is `wisp up` running?"
        ));
        assert!(!line.contains('\n'));
    }
}

#[test]
fn local_file_errors_come_before_any_request() {
    let env = Env::new();
    // The host is unreachable: these fail on the file, before trying it.
    let base = ["--apihost", "127.0.0.1:9", "--auth", "u:k"];
    let dir = env.dir.path();
    let missing = dir.join("missing.wasm");
    let mut args: Vec<&str> = base.to_vec();
    let missing_s = missing.to_str().unwrap();
    args.extend(["action", "create", "a", missing_s]);
    env.wisp(&args).fails_with("No such file or directory");

    let script = write_file(dir, "not.wasm", "#!/bin/sh\necho hi\n");
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["action", "create", "a", script.to_str().unwrap()]);
    env.wisp(&args).fails_with("is not a WebAssembly module");

    let empty_dir = dir.join("proj");
    std::fs::create_dir_all(&empty_dir).unwrap();
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["action", "create", "a", empty_dir.to_str().unwrap()]);
    env.wisp(&args).fails_with("without a Cargo.toml");

    let mut args: Vec<&str> = base.to_vec();
    args.extend(["action", "create", "a"]);
    env.wisp(&args).fails_with("needs a .wasm file");

    let mut args: Vec<&str> = base.to_vec();
    args.extend(["action", "get", "bad..name"]);
    env.wisp(&args).fails_with("invalid action name");

    let mut args: Vec<&str> = base.to_vec();
    args.extend(["activation", "get", "not-an-id"]);
    env.wisp(&args).fails_with("is not an activation id");

    let mut args: Vec<&str> = base.to_vec();
    args.extend(["invoke", "hello", "oops"]);
    env.wisp(&args).fails_with("is not KEY=VALUE");

    // A source kind needs text: a binary file is refused before any request.
    let binary = dir.join("blob.js");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["action", "create", "a", binary.to_str().unwrap()]);
    env.wisp(&args).fails_with("is not UTF-8 text");

    let mut args: Vec<&str> = base.to_vec();
    args.extend([
        "action",
        "create",
        "a",
        script.to_str().unwrap(),
        "--kind",
        "node js",
    ]);
    env.wisp(&args).fails_with("invalid kind");
}

#[test]
fn admin_needs_the_admin_key() {
    let env = Env::new();
    env.wisp(["--apihost", "127.0.0.1:9", "admin", "user", "list"])
        .fails_with("WISP_ADMIN_KEY");
}

#[test]
fn up_refuses_a_taken_port_in_one_line() {
    let env = Env::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let data = env.data_dir();
    env.wisp(["up", "--port", &port, "--data-dir", data.to_str().unwrap()])
        .fails_with(&format!("port {port} on 127.0.0.1 is already in use"));
}

#[test]
fn without_wsk_config_file_the_config_is_home_wskprops() {
    let env = Env::new();
    let mut cmd = env.command();
    cmd.args(["property", "set", "--apihost", "http://10.1.2.3:3233"])
        .env_remove("WSK_CONFIG_FILE");
    common::Run::of(&mut cmd).ok();
    let text = std::fs::read_to_string(env.home().join(".wskprops")).unwrap();
    assert_eq!(text, "APIHOST=http://10.1.2.3:3233\n");
    assert!(!env.config_file().exists());
}
