//! Every verb of the real `wisp` binary against a real `wisp up` (scheduler + 2 runtimes in one
//! child process) on a free port, each test with its own data dir, HOME and config file.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Env, PATIENCE, Platform, eventually, function, write_file};
use serde_json::json;

fn path_of(name: &str) -> String {
    function(name).to_str().unwrap().to_string()
}

#[test]
fn action_create_get_list_invoke_update_delete() {
    let env = Env::new();
    let up = Platform::start(&env, &[]);
    // `wisp up` printed and saved the API host and key.
    assert!(
        up.banner.contains(&format!("  APIHOST={}", up.apihost)),
        "{:?}",
        up.banner
    );
    let props = std::fs::read_to_string(env.config_file()).unwrap();
    assert!(
        props.contains(&format!("APIHOST={}\n", up.apihost)),
        "{props}"
    );
    assert!(props.contains(&format!("AUTH={}\n", up.auth)), "{props}");

    let hello = path_of("hello");
    let created = env.wisp(["action", "create", "hello", &hello]).ok();
    assert_eq!(created.stdout.trim(), "ok: created action hello");
    env.wisp(["action", "create", "hello", &hello])
        .fails_with("cannot create action hello");

    // get: pretty JSON, no code unless asked.
    let doc = env.wisp(["action", "get", "hello"]).ok().json();
    assert_eq!(doc["name"], "hello");
    assert_eq!(doc["namespace"], "guest");
    assert_eq!(doc["exec"]["kind"], "wasm");
    assert!(doc["exec"].get("code").is_none(), "{doc}");
    let with_code = env.wisp(["action", "get", "hello", "--code"]).ok().json();
    use base64::Engine as _;
    let code = base64::engine::general_purpose::STANDARD
        .decode(with_code["exec"]["code"].as_str().unwrap())
        .unwrap();
    assert_eq!(code, std::fs::read(&hello).unwrap());

    // list: a table, or a JSON array.
    let table = env.wisp(["action", "list"]).ok().stdout;
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("ACTION"), "{table}");
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("/guest/hello") && row.contains("wasm") && row.contains("private"),
        "{table}"
    );
    let list = env.wisp(["--json", "action", "list"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "hello");

    // invoke: result only, the `invoke` shortcut, the whole record, non-blocking.
    let r = env
        .wisp([
            "action", "invoke", "hello", "-p", "name", "World", "--result",
        ])
        .ok()
        .json();
    assert_eq!(r, json!({"greeting": "Hello, World!"}));
    let r = env.wisp(["invoke", "hello", "name=Ann"]).ok().json();
    assert_eq!(r, json!({"greeting": "Hello, Ann!"}));
    let rec = env
        .wisp([
            "--json", "action", "invoke", "hello", "-b", "-p", "name", "Bo",
        ])
        .ok()
        .json();
    assert_eq!(rec["response"]["status"], "success");
    assert_eq!(rec["response"]["result"]["greeting"], "Hello, Bo!");
    assert!(
        rec["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("greeting Bo")),
        "{rec}"
    );
    let accepted = env
        .wisp(["--json", "action", "invoke", "hello"])
        .ok()
        .json();
    let id = accepted["activationId"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    let plain = env.wisp(["action", "invoke", "hello"]).ok();
    assert!(
        plain.stdout.starts_with("ok: invoked hello with id "),
        "{}",
        plain.stdout
    );
    let rec = eventually("the non-blocking activation's record", || {
        let r = env.wisp(["activation", "get", &id]);
        r.success.then(|| r.json())
    });
    assert_eq!(rec["response"]["result"]["greeting"], "Hello, stranger!");

    // update: parameters and limits; the version moves on.
    env.wisp([
        "action",
        "update",
        "hello",
        "-p",
        "name",
        "Default",
        "--memory",
        "64",
        "--timeout",
        "5000",
    ])
    .ok();
    let updated = env.wisp(["action", "get", "hello"]).ok().json();
    assert_ne!(updated["version"], doc["version"]);
    assert_eq!(updated["limits"]["memory"], 64);
    assert_eq!(updated["limits"]["timeout"], 5000);
    assert_eq!(
        updated["parameters"],
        json!([{"key": "name", "value": "Default"}])
    );
    let r = env.wisp(["invoke", "hello"]).ok().json();
    assert_eq!(r, json!({"greeting": "Hello, Default!"}));
    env.wisp([
        "action",
        "update",
        "hello",
        "-a",
        "description",
        "greets",
        "--web",
        "raw",
        "--logsize",
        "1",
        "--concurrency",
        "2",
    ])
    .ok();
    let updated = env.wisp(["action", "get", "hello"]).ok().json();
    let annotations = updated["annotations"].as_array().unwrap();
    for (k, v) in [
        ("description", json!("greets")),
        ("web-export", json!(true)),
        ("raw-http", json!(true)),
    ] {
        assert!(
            annotations.iter().any(|a| a["key"] == k && a["value"] == v),
            "{k}={v} missing in {updated}"
        );
    }
    assert_eq!(updated["limits"]["logs"], 1);
    assert_eq!(updated["limits"]["concurrency"], 2);
    // New code with update; a param file and -p flags merge (flags win).
    let params = write_file(env.dir.path(), "p.json", r#"{"a": 1, "b": "file"}"#);
    env.wisp(["action", "update", "hello", &path_of("echo")])
        .ok();
    let r = env
        .wisp([
            "action",
            "invoke",
            "hello",
            "-r",
            "-P",
            params.to_str().unwrap(),
            "-p",
            "b",
            "[1,2]",
        ])
        .ok()
        .json();
    assert_eq!(r["a"], 1);
    assert_eq!(r["b"], json!([1, 2]));

    // A failing action: its answer is printed, the command fails with one line.
    env.wisp(["action", "create", "trap", &path_of("trap")])
        .ok();
    let failed = env.wisp(["--json", "action", "invoke", "trap", "-b"]);
    let line = failed.fails_with("ended with status 'action developer error'");
    assert!(line.contains("of trap"), "{line}");
    assert_eq!(
        failed.json()["response"]["status"],
        "action developer error"
    );
    env.wisp(["invoke", "trap"]).fails_with("failed (HTTP 502)");

    // A module larger than the server accepts (48 MB, OpenWhisk's code limit): a clear 413
    // that says how big it was.
    let mut big = b"\0asm\x01\0\0\0".to_vec();
    big.resize(49 << 20, 0);
    let big_path = env.dir.path().join("big.wasm");
    std::fs::write(&big_path, &big).unwrap();
    let line = env
        .wisp(["action", "create", "big", big_path.to_str().unwrap()])
        .fails_with("HTTP 413");
    assert!(line.contains("the module is 50176 KB"), "{line}");

    // delete, then everything about it is a clear 404.
    let deleted = env.wisp(["action", "delete", "hello"]).ok();
    assert_eq!(deleted.stdout.trim(), "ok: deleted action hello");
    env.wisp(["action", "get", "hello"])
        .fails_with("cannot get action hello");
    env.wisp(["action", "get", "hello"]).fails_with("HTTP 404");
    env.wisp(["action", "delete", "hello"])
        .fails_with("HTTP 404");
    env.wisp(["invoke", "hello"]).fails_with("HTTP 404");
    let list = env.wisp(["--json", "action", "list"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    // The admin API is disabled when `wisp up` has no admin key.
    let mut cmd = env.command();
    cmd.args(["admin", "user", "list"])
        .env("WISP_ADMIN_KEY", "whatever");
    common::Run::of(&mut cmd).fails_with("HTTP 403");
}

#[test]
fn wrong_key_is_refused_in_one_line() {
    let env = Env::new();
    let up = Platform::start(&env, &[]);
    let uuid = up.auth.split(':').next().unwrap();
    let wrong = format!("{uuid}:not-the-key");
    env.wisp(["-u", &wrong, "action", "list"])
        .fails_with("the credentials were refused (HTTP 401");
    let mut cmd = env.command();
    cmd.args(["namespace", "list"]).env("WISP_AUTH", &wrong);
    common::Run::of(&mut cmd).fails_with("HTTP 401");
    // The right key (from the config file) still works.
    let ns = env.wisp(["--json", "namespace", "list"]).ok().json();
    assert_eq!(ns, json!(["guest"]));
}

#[test]
fn activations_list_get_logs_result_and_poll() {
    let env = Env::new();
    let _up = Platform::start(&env, &[]);
    env.wisp(["action", "create", "hello", &path_of("hello")])
        .ok();
    env.wisp(["activation", "get", "--last"])
        .fails_with("no activations yet");
    let rec = env
        .wisp([
            "--json", "action", "invoke", "hello", "-b", "-p", "name", "Log",
        ])
        .ok()
        .json();
    let id = rec["activationId"].as_str().unwrap().to_string();

    let listed = eventually("the activation in the list", || {
        let l = env
            .wisp(["--json", "activation", "list", "hello", "--limit", "5"])
            .ok()
            .json();
        (l.as_array().unwrap().len() == 1).then_some(l)
    });
    assert_eq!(listed[0]["activationId"], id.as_str());
    assert_eq!(listed[0]["name"], "hello");
    let table = env.wisp(["activation", "list"]).ok().stdout;
    assert!(table.starts_with("DATETIME"), "{table}");
    let row = table
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("success") && row.contains("guest/hello"),
        "{row}"
    );

    let got = env.wisp(["activation", "get", "--last"]).ok().json();
    assert_eq!(got["activationId"], id.as_str());
    assert_eq!(
        got["response"]["result"],
        json!({"greeting": "Hello, Log!"})
    );

    let logs = env.wisp(["activation", "logs", &id]).ok().stdout;
    assert!(
        logs.lines()
            .any(|l| l.ends_with("hello: greeting Log") && l.contains("Z std")),
        "{logs}"
    );
    let stripped = env
        .wisp(["activation", "logs", "--last", "--strip"])
        .ok()
        .stdout;
    assert!(
        stripped.lines().any(|l| l == "hello: greeting Log"),
        "{stripped}"
    );
    assert_eq!(env.wisp(["logs", &id]).ok().stdout, logs);
    let logs_json = env.wisp(["--json", "logs", &id]).ok().json();
    assert_eq!(logs_json["activationId"], id.as_str());

    let result = env.wisp(["activation", "result", &id]).ok().json();
    assert_eq!(result, json!({"greeting": "Hello, Log!"}));
    assert_eq!(env.wisp(["result", "--last"]).ok().json(), result);

    let unknown = "0".repeat(32);
    env.wisp(["activation", "get", &unknown])
        .fails_with("HTTP 404");
    env.wisp(["activation", "logs", &unknown])
        .fails_with("HTTP 404");

    // poll: prints activations that happen after it started, with their logs.
    let mut poll = PollChild::spawn(&env);
    let rec = env
        .wisp([
            "--json", "action", "invoke", "hello", "-b", "-p", "name", "Poll",
        ])
        .ok()
        .json();
    let new_id = rec["activationId"].as_str().unwrap().to_string();
    let header = poll.line_containing(&new_id);
    assert_eq!(header, format!("Activation: 'hello' ({new_id}) success"));
    let log = poll.line_containing("greeting Poll");
    assert!(log.starts_with("  "), "{log:?}");
    assert!(
        !poll.seen.iter().any(|l| l.contains(&id)),
        "poll printed an activation older than itself: {:?}",
        poll.seen
    );
    drop(poll);
    // --exit ends it on its own.
    env.wisp(["activation", "poll", "--exit", "1"]).ok();
}

/// `wisp activation poll` in the background, killed on drop.
struct PollChild {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl PollChild {
    fn spawn(env: &Env) -> PollChild {
        let mut cmd = env.command();
        cmd.args(["activation", "poll", "--exit", "300", "--interval", "0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // It prints its note once it has taken note of what already exists.
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        stderr.read_line(&mut first).unwrap();
        assert!(first.contains("polling for new activations"), "{first:?}");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        PollChild {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    fn line_containing(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!("poll never printed {needle:?}; it printed {:?}", self.seen);
    }
}

impl Drop for PollChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn packages_namespaces_and_web_urls() {
    let env = Env::new();
    let up = Platform::start(&env, &[]);

    let table = env.wisp(["namespace", "list"]).ok().stdout;
    assert_eq!(
        table.lines().map(str::trim).collect::<Vec<_>>(),
        ["NAMESPACE", "guest"]
    );

    env.wisp([
        "package", "create", "demo", "-p", "greeting", "hi", "--shared", "no",
    ])
    .ok();
    let pkg = env.wisp(["package", "get", "demo"]).ok().json();
    assert_eq!(pkg["name"], "demo");
    assert_eq!(pkg["publish"], false);
    assert_eq!(
        pkg["parameters"],
        json!([{"key": "greeting", "value": "hi"}])
    );
    let table = env.wisp(["package", "list"]).ok().stdout;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("/guest/demo") && l.contains("private")),
        "{table}"
    );
    env.wisp([
        "package", "update", "demo", "--shared", "yes", "-p", "who", "pkg",
    ])
    .ok();
    let pkg = env.wisp(["package", "get", "demo"]).ok().json();
    assert_eq!(pkg["publish"], true);
    let list = env.wisp(["--json", "package", "list"]).ok().json();
    assert_eq!(list[0]["name"], "demo");
    env.wisp(["package", "get", "nope"]).fails_with("HTTP 404");
    env.wisp(["package", "create", "a/b"])
        .fails_with("packages do not nest");

    // An action in the package gets the package's parameters under its invocation's.
    env.wisp(["action", "create", "demo/echo", &path_of("echo")])
        .ok();
    let r = env
        .wisp(["invoke", "demo/echo", "x=1", "who=me"])
        .ok()
        .json();
    assert_eq!(r["x"], 1);
    assert_eq!(r["who"], "me");
    let r = env.wisp(["invoke", "demo/echo"]).ok().json();
    assert_eq!(r["who"], "pkg");
    let listed = env.wisp(["--json", "action", "list"]).ok().json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["namespace"] == "guest/demo" && a["name"] == "echo"),
        "{listed}"
    );

    // Web actions: `url`, `action get --url`, and the URL really serves the page.
    env.wisp([
        "action",
        "create",
        "web-hello",
        &path_of("web-hello"),
        "--web",
        "true",
    ])
    .ok();
    let url = env
        .wisp(["url", "web-hello"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(
        url,
        format!("{}/api/v1/web/guest/default/web-hello", up.apihost)
    );
    assert_eq!(
        env.wisp(["action", "get", "web-hello", "--url"])
            .ok()
            .stdout
            .trim(),
        url
    );
    let (status, body) = http_get(up.port, "/api/v1/web/guest/default/web-hello?name=Web");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello, Web!"), "{body}");
    // Not a web action: the URL is printed with a note.
    let echo_url = env.wisp(["url", "demo/echo"]).ok();
    assert_eq!(
        echo_url.stdout.trim(),
        format!("{}/api/v1/web/guest/demo/echo", up.apihost)
    );
    assert!(
        echo_url.stderr.contains("not a web action"),
        "{}",
        echo_url.stderr
    );

    // A sequence: echo's result is hello's params.
    env.wisp(["action", "create", "hello", &path_of("hello")])
        .ok();
    env.wisp(["action", "create", "greet", "--sequence", "demo/echo,hello"])
        .ok();
    let seq = env.wisp(["action", "get", "greet"]).ok().json();
    assert_eq!(
        seq["exec"],
        json!({"kind": "sequence", "components": ["/guest/demo/echo", "/guest/hello"]})
    );
    let r = env.wisp(["invoke", "greet", "name=Seq"]).ok().json();
    assert_eq!(r, json!({"greeting": "Hello, Seq!"}));

    env.wisp(["action", "delete", "demo/echo"]).ok();
    env.wisp(["package", "delete", "demo"]).ok();
    let list = env.wisp(["--json", "package", "list"]).ok().json();
    assert_eq!(list, json!([]));
}

/// A plain HTTP/1.1 GET on 127.0.0.1:port: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn admin_users_add_list_delete() {
    let mut env = Env::new();
    env.vars
        .push(("WISP_ADMIN_KEY".into(), "test-admin-key".into()));
    let _up = Platform::start(&env, &[]);

    let added = env.wisp(["admin", "user", "add", "alice"]).ok();
    let auth = added.stdout.trim().to_string();
    assert_eq!(added.stdout.lines().count(), 1, "{}", added.stdout);
    assert!(
        auth.split_once(':')
            .is_some_and(|(u, k)| !u.is_empty() && !k.is_empty()),
        "{auth}"
    );
    assert!(
        added.stderr.contains("created user alice"),
        "{}",
        added.stderr
    );
    env.wisp(["admin", "user", "add", "alice"])
        .fails_with("HTTP 409");

    let table = env.wisp(["admin", "user", "list"]).ok().stdout;
    assert!(table.lines().any(|l| l.starts_with("alice")), "{table}");
    let users = env.wisp(["--json", "admin", "user", "list"]).ok().json();
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert!(
        names.contains(&"alice") && names.contains(&"guest"),
        "{users}"
    );

    // alice's key works, in her own namespace; guest does not see her actions.
    assert_eq!(
        env.wisp(["--auth", &auth, "--json", "namespace", "list"])
            .ok()
            .json(),
        json!(["alice"])
    );
    env.wisp([
        "--auth",
        &auth,
        "action",
        "create",
        "mine",
        &path_of("hello"),
    ])
    .ok();
    assert_eq!(
        env.wisp(["--auth", &auth, "invoke", "mine", "name=Al"])
            .ok()
            .json()["greeting"],
        "Hello, Al!"
    );
    let guest_list = env.wisp(["--json", "action", "list"]).ok().json();
    assert_eq!(guest_list, json!([]));

    let mut cmd = env.command();
    cmd.args(["admin", "user", "list"])
        .env("WISP_ADMIN_KEY", "wrong");
    let line = common::Run::of(&mut cmd).fails_with("HTTP 401");
    assert!(line.contains("WISP_ADMIN_KEY"), "{line}");

    let deleted = env.wisp(["admin", "user", "delete", "alice"]).ok();
    assert_eq!(deleted.stdout.trim(), "ok: deleted user alice");
    env.wisp(["admin", "user", "delete", "alice"])
        .fails_with("HTTP 404");
    let users = env.wisp(["--json", "admin", "user", "list"]).ok().json();
    assert!(
        !users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["name"] == "alice"),
        "{users}"
    );
    env.wisp(["--auth", &auth, "action", "list"])
        .fails_with("HTTP 401");
}
